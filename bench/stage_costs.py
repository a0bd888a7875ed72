"""The default run's cost per stage kind, in core-minutes, from the logs of `vaebench-grid dask`.

    python bench/stage_costs.py [bench/results/seeds_rerun_*.log ...] [--seeds 0] [--done carry/three_seed_stages.txt]

Reads the lines `[i/n] <stage>: ran in <s> s on <host>` of each log (a stage restored from the run-cache cost
nothing and is skipped), sorts the stages into kinds whose cost differs (a z = 2 scoring runs the quadrature, a
CVAE scoring its label marginal, each variant trains its own objective), and prints per kind: the stages
measured, min / median / max seconds, and the core-minutes of every stage of that kind in the pipeline of
params.yaml (the median times the count; each stage runs on one core under `--threads 1`). Then the run's
total projected from the medians and from the minima (the quietest measured), the share measured so far, and
the same for the quick setting (only the stages of the `--seeds` listed). With `--done`, what is left of the run
and its projected cost (to size a session's share of a run longer than a session).

Since 2026-12-07 a grid's line gives each stage's CPU seconds (user + kernel, of `dvc` and the stage's process:
`vaebench-grid dask` reads them with os.wait4), its cost in core-seconds whatever shared the cores, and that is
what is counted where present. Older lines give wall time only, with two one-thread stages at once, as the grid
runs them on 2 cores: work beside the grid in another session (a test run, a helper) took a core from the two
stages (Linux's autogroups share the CPU per session), and until 2026-12-07 every stage ran under the Dask
Nanny's MALLOC_TRIM_THRESHOLD_ (about 1.3x the CPU of a training; bench/stage_env.py): read old figures as upper
bounds. It reads files only (the logs and dvc.yaml through DVC's own graph).
"""

from __future__ import annotations

import argparse
import glob
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^\[\d+/\d+\] (?P<stage>\S+): ran in (?P<s>\d+(?:\.\d+)?) s(?: \(CPU (?P<cpu>\d+(?:\.\d+)?) s\))?")


def kind(stage: str) -> str:
    """The stage's cost class: `train vae`, `train-variant iwae5`, `evaluate z=2`, `evaluate cvae`, ..."""
    name, _, item = stage.partition("@")
    if not item:
        return name
    parts = item.split("-")  # model-zdim-seed, or variant-size-seed
    model, size = parts[0], int(parts[1])
    if name in ("train-variant", "evaluate-variant", "figures-variant"):
        return f"{name} {model}" if name != "figures-variant" else name
    if name == "evaluate":
        return f"evaluate {model}" + (" z<=2 (quadrature)" if size <= 2 else "")
    if name == "train":
        return f"train {model}"
    return name  # figures, exact


def parse(paths: list[Path]) -> dict[str, list[tuple[float, bool]]]:
    """{stage: [(seconds, whether they are CPU seconds) of each measured run]} over the logs: a line's CPU seconds
    where it has them (since 2026-12-07: the core-seconds it cost, whatever shared the cores), else its wall time.
    A training resumed from its partial state logs `ran (resumed)` and is not a measured run."""
    out: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for p in paths:
        for line in p.read_text().splitlines():
            m = LINE.match(line)
            if m:
                out[m["stage"]].append((float(m["cpu"] or m["s"]), m["cpu"] is not None))
    return out


def by_kind(times: dict[str, list[tuple[float, bool]]]) -> tuple[dict[str, list[float]], set[str]]:
    """Each kind's seconds: its CPU-second measurements where it has any (wall times of other runs would mix
    another unit in), else its wall times; and the kinds measured in CPU seconds."""
    runs: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for stage, ts in times.items():
        runs[kind(stage)].extend(ts)
    cpu_kinds = {k for k, ts in runs.items() if any(is_cpu for _, is_cpu in ts)}
    return {k: [t for t, is_cpu in ts if is_cpu or k not in cpu_kinds] for k, ts in runs.items()}, cpu_kinds


def pipeline_stages(root: Path) -> list[str]:
    sys.path.insert(0, str(root))
    from vaebench.grid.stagegraph import stage_graph

    return sorted(stage_graph(root))


def seed_of(stage: str) -> int | None:
    _, _, item = stage.partition("@")
    return int(item.rsplit("-", 1)[1]) if item.count("-") >= 2 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="*", type=Path)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="the quick setting's seeds")
    ap.add_argument("--done", type=Path, help="a file of the stages finished, one per line (carry/three_seed_stages.txt, "
                    "or `vaebench-grid stages --done`): also print what is left and its projected cost")
    a = ap.parse_args()
    logs = a.logs or [Path(p) for p in sorted(glob.glob(str(a.root / "bench/results/seeds_rerun_*.log")))]
    times = parse(logs)
    seconds, cpu_kinds = by_kind(times)
    stages = [s for s in pipeline_stages(a.root) if s not in ("check", "download")]
    count: dict[str, int] = defaultdict(int)
    quick: dict[str, int] = defaultdict(int)
    for s in stages:
        count[kind(s)] += 1
        if seed_of(s) is None or seed_of(s) in a.seeds:
            quick[kind(s)] += 1
    print(f"logs: {', '.join(str(p) for p in logs)}")
    print(f"{'kind':36s} {'stages':>6s} {'measured':>8s} {'min s':>7s} {'median s':>8s} {'max s':>7s}"
          f" {'core-min (median)':>17s} {'(min)':>7s}")
    tot_med = tot_min = quick_med = quick_min = 0.0
    unmeasured = []
    for k in sorted(count):
        ts = seconds.get(k, [])
        if not ts:
            unmeasured.append(f"{k} ({count[k]})")
            print(f"{k:36s} {count[k]:6d} {0:8d} {'':>7s} {'':>8s} {'':>7s} {'not measured':>17s}")
            continue
        med, lo = statistics.median(ts), min(ts)
        tot_med += count[k] * med / 60
        tot_min += count[k] * lo / 60
        quick_med += quick[k] * med / 60
        quick_min += quick[k] * lo / 60
        print(f"{k:36s} {count[k]:6d} {len(ts):8d} {lo:7.0f} {med:8.0f} {max(ts):7.0f}"
              f" {count[k] * med / 60:17.0f} {count[k] * lo / 60:7.0f}")
    done = sum(1 for s in stages if s in times)
    print(f"\nthe run: {len(stages)} stages (check and download aside), {done} measured in these logs "
          f"(kinds counted in CPU seconds: {', '.join(sorted(cpu_kinds)) or 'none'}; the others in wall time)")
    print(f"projected cost: {tot_med:.0f} core-minutes from the medians, {tot_min:.0f} from the minima"
          + (f"; not measured, so not counted: {', '.join(unmeasured)}" if unmeasured else ""))
    print(f"the quick setting (seeds {a.seeds}): {quick_med:.0f} core-minutes from the medians, {quick_min:.0f} from the minima")
    spent = sum(t for ts in times.values() for t, _ in ts) / 60
    print(f"spent in these logs: {spent:.0f} core-minutes (every measured run, repeated ones included; CPU or wall seconds as logged)")
    if a.done:
        finished = set(a.done.read_text().split())
        print(left_to_run([s for s in stages if s not in finished], seconds))


def left_to_run(left: list[str], seconds: dict[str, list[float]], workers: int = 2) -> str:
    """What is left, by kind, and its projected core-minutes from each kind's median and minimum (a kind never
    measured is named, not counted); a resumable training's finished epochs are not subtracted."""
    count: dict[str, int] = defaultdict(int)
    for s in left:
        count[kind(s)] += 1
    med = sum(n * statistics.median(seconds[k]) for k, n in count.items() if seconds.get(k)) / 60
    lo = sum(n * min(seconds[k]) for k, n in count.items() if seconds.get(k)) / 60
    unmeasured = sorted(k for k in count if not seconds.get(k))
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(count.items()))
    return (f"left: {len(left)} stages ({kinds}): {med:.0f} core-minutes from the medians, {lo:.0f} from the minima, "
            f"about {med / 60 / workers:.1f} h on {workers} workers"
            + (f"; not measured, so not counted: {', '.join(unmeasured)}" if unmeasured else ""))


if __name__ == "__main__":
    main()
