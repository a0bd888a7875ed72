"""What `vaebench-grid dask`'s own cluster costs while its tasks wait on their stages: CPU seconds of the
cluster's processes (client + scheduler, nannies, workers) over a window in which each worker runs one
sleeping task, with Dask's default configuration and with vaebench's QUIET_CLUSTER (vaebench/grid/dask.py).

    python bench/dask_idle.py [--seconds 30] [--rounds 2]

Each round starts a fresh 2-worker LocalCluster per setting, alternating (A B A B), and prints the CPU share of
one core with the 1-minute load beside it. Nothing here asserts: the figures are this machine's.
"""

from __future__ import annotations

import argparse
import os
import time


def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def cluster_cpu(quiet: bool, window: float) -> float:
    """CPU seconds the whole cluster spent in `window` seconds while both workers wait on a sleeping task."""
    import psutil
    from dask.distributed import Client, LocalCluster

    from vaebench.grid.dask import local_cluster

    cluster = local_cluster(2) if quiet else LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                         dashboard_address=":0")
    try:
        with Client(cluster) as client:
            futures = [client.submit(sleeper, window + 10, pure=False) for _ in range(2)]
            time.sleep(5)  # the workers settle and start their tasks
            procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
            before = sum(sum(p.cpu_times()[:2]) for p in procs)
            time.sleep(window)
            after = sum(sum(p.cpu_times()[:2]) for p in procs)
            client.gather(futures)
    finally:
        cluster.close()
    return after - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    for r in range(a.rounds):
        for quiet in (False, True):
            cpu = cluster_cpu(quiet, a.seconds)
            print(f"round {r + 1}, {'QUIET_CLUSTER' if quiet else 'Dask defaults'}: {cpu:.2f} CPU s in {a.seconds:g} s "
                  f"= {cpu / a.seconds:.1%} of a core  [load {os.getloadavg()[0]:.2f}]", flush=True)


if __name__ == "__main__":
    main()
