"""Failover benchmark: how long writes stop, and how many acknowledged rows are lost, when
the master's keeper and PostgreSQL are killed with SIGKILL.

A writer inserts one row every 20 ms through the proxy and records every acknowledgement.
Each round kills the current master (keeper + postmaster), measures the longest stretch
without a successful write and the acknowledged rows missing on the new master, then
restarts the killed keeper and waits for the cluster to be healthy again. Runs with Go
Stolon's default timings and with a tight spec, and prints per round, median and max.

    .venv/bin/python benchmarks/failover.py [--rounds 5] [--sync] [--only default|tight]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stolon.local.cluster import LocalCluster
from stolon.plugins import load_plugins
from stolon.testing.writer import Writer

SPECS = {
    # Go Stolon's defaults (sleepInterval 5s, failInterval 20s, proxyCheckInterval 5s, proxyTimeout 15s)
    "default": {
        "sleepInterval": "5s", "failInterval": "20s", "requestTimeout": "10s",
        "proxyCheckInterval": "5s", "proxyTimeout": "15s",
    },
    "tight": {
        "sleepInterval": "1s", "failInterval": "3s", "requestTimeout": "2s",
        "proxyCheckInterval": "1s", "proxyTimeout": "3s",
    },
}  # fmt: skip


def one_round(cluster: LocalCluster, writer: Writer) -> tuple[float, int, str, str]:
    old = cluster.master_keeper()
    assert old is not None
    time.sleep(2)
    killed = time.monotonic()
    cluster.kill_keeper_and_postgres(old)
    deadline = killed + 300
    while time.monotonic() < deadline:
        m = cluster.master_keeper()
        recent = [t for t, ok in writer.attempts[-20:] if ok and t > killed]
        if m not in (None, old) and len(recent) >= 10:
            break
        time.sleep(0.2)
    new = cluster.master_keeper() or "?"
    gap = writer.unavailability(killed - 0.5)
    lost = len(writer.missing(cluster.dsn()))
    cluster.processes[old].start()
    cluster.wait_healthy(300)
    return gap, lost, old, new


def run(name: str, rounds: int, synchronous: bool) -> list[tuple[float, int]]:
    base = Path(tempfile.mkdtemp(prefix="stolon-failover-", dir="/tmp"))
    os.chmod(base, 0o755)
    cluster = LocalCluster.create(
        base / "c", backends=load_plugins(), keepers=3, sentinels=2, synchronous=synchronous, spec=SPECS[name]
    )
    results: list[tuple[float, int]] = []
    try:
        cluster.start()
        cluster.wait_healthy(300)
        writer = Writer(cluster.dsn(), interval=0.02)
        writer.setup()
        writer.start()
        try:
            for i in range(1, rounds + 1):
                gap, lost, old, new = one_round(cluster, writer)
                results.append((gap, lost))
                print(
                    f"  [{name}] round {i}: {old} -> {new}: no successful write for {gap:5.2f}s, {lost} acknowledged rows lost",
                    flush=True,
                )
        finally:
            writer.stop()
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sync", action="store_true", help="synchronous replication")
    ap.add_argument("--only", choices=sorted(SPECS))
    a = ap.parse_args()
    mode = "synchronous" if a.sync else "asynchronous"
    print(
        f"failover benchmark: 3 keepers, 2 sentinels, 1 proxy, embedded store, {mode} replication, {a.rounds} rounds"
    )
    summary = []
    for name in [a.only] if a.only else list(SPECS):
        print(f"spec {name}: {SPECS[name]}", flush=True)
        res = run(name, a.rounds, a.sync)
        gaps = [g for g, _ in res]
        lost = [n for _, n in res]
        summary.append((name, statistics.median(gaps), max(gaps), statistics.median(lost), max(lost)))
    print("\nspec      unavailability median / max     acknowledged rows lost median / max")
    for name, gmed, gmax, lmed, lmax in summary:
        print(f"{name:<9} {gmed:8.2f}s / {gmax:6.2f}s            {lmed:6.1f} / {lmax}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
