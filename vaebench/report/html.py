"""One self-contained HTML file of the report: it opens offline, from anywhere.

`dvc plots show` writes pages that load Vega from a CDN and stay blank without the internet.
This page is table.md (the one source of the tables' text) rendered to HTML, with every figure
embedded as a base64 PNG and a provenance section; it references nothing outside itself.
Provenance is content, not time: the sources' and the data's hashes, the params, the library
versions and the machine. No commit id: it would change the page's bytes with every commit that
changes nothing on it (the commit that holds the page is its revision), and no timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import platform
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")
_STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #bbb;padding:3px 8px}
td{text-align:right}td:first-child{text-align:left}th{background:#eee}img{max-width:100%;display:block;margin:1em 0}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:13px}figcaption{color:#555;font-size:13px}"""


def _inline(text: str) -> str:
    """Escape, then `code` spans (the only inline markup table.md uses)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def _cells(line: str) -> list[str]:
    # split on | not preceded by a backslash (table.md escapes the | of p(x|y) as \|)
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def markdown_to_html(md: str, base_dir: Path) -> str:
    """The subset of Markdown that table.md uses: #/## headings, pipe tables, paragraphs, images.

    Images are read from `base_dir` / their relative path and embedded as data URIs.
    """
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head, body = _cells(block[0]), [_cells(b) for b in block[2:]]  # block[1] is the |---| rule
            rows = ["<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
            rows += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
            out.append("<table>\n" + "\n".join(rows) + "\n</table>")
        elif m := _IMAGE.match(line.strip()):
            alt, rel = m.groups()
            data = base64.b64encode((base_dir / rel).read_bytes()).decode()
            out.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{html.escape(alt)}</figcaption></figure>")
            i += 1
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "![")):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def loaded_sources() -> list[Path]:
    """The files of the vaebench modules this process has imported.

    For `vaebench report` these are exactly the modules the report stage declares in dvc.yaml (a
    test compares them), so the hash below changes when, and only when, DVC re-runs the report; a
    hash over the whole package would change with any new module and leave a committed report that
    a forced re-run does not reproduce. The code behind each number is in dvc.lock: the md5 of every
    module each training and evaluation stage imports.
    """
    mods = [m for name, m in list(sys.modules.items()) if name == "vaebench" or name.startswith("vaebench.")]
    return sorted({Path(m.__file__) for m in mods if getattr(m, "__file__", None)}, key=_in_package)


def _in_package(path: Path) -> str:
    """`report/build.py`: a module's path inside the package (names repeat across its layers)."""
    return path.resolve().relative_to(Path(__file__).resolve().parents[1]).as_posix()


def sources_sha256(files: list[Path]) -> str:
    """sha256 over source files (path inside the package and bytes, in path order)."""
    h = hashlib.sha256()
    for path in sorted(files, key=_in_package):
        h.update(_in_package(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def machine() -> dict[str, str]:
    """Library versions and the machine, as the report states them."""
    import numpy
    import torch

    from vaebench.numerics import mkl_mode

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "MKL reproducibility mode": mkl_mode(), "platform": platform.platform(terse=True),
            "CPU": cpu, "cores": str(os.cpu_count())}


def write_html(path: Path, table_md: str, base_dir: Path, provenance: Mapping[str, Any], params_yaml: str,
               title: str = "vaebench report") -> None:
    """The page: the report (tables, references, figures) and its provenance."""
    from vaebench import io as vio

    rows = "\n".join(f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(str(v))}</code></td></tr>"
                     for k, v in provenance.items())
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head>\n<body>\n"
        f"{markdown_to_html(table_md, base_dir)}\n"
        "<h2>Provenance</h2>\n<table>\n" + rows + "\n</table>\n"
        f"<h3>params.yaml</h3>\n<pre>{html.escape(params_yaml)}</pre>\n</body></html>\n"
    )
    vio.write_text(path, page)
