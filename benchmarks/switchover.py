"""Planned switchover benchmark: how long writes through the proxy stop during
``stolonctl switchover --wait``, and how many acknowledged rows are lost.

A local cluster (3 keepers, 2 sentinels, 1 proxy, embedded store, the tight spec of
benchmarks/failover.py) with a writer inserting one row every 20 ms through the proxy.
Each round runs ``stolonctl switchover --yes --wait`` (the sentinel picks the target) and
reports the longest stretch without a successful write from the request on, the time
the command took, and the acknowledged rows missing on the new master.

    .venv/bin/python benchmarks/switchover.py [--rounds 3] [--sync] [--hold 5s]

``--hold`` starts the proxy with ``--hold-connections-timeout`` (docs/proxy.md).
(A separate script: benchmarks/failover.py is being extended on another branch.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stolon.local.cluster import LocalCluster
from stolon.plugins import load_plugins
from stolon.testing.writer import Writer

TIGHT = {
    "sleepInterval": "1s", "failInterval": "3s", "requestTimeout": "2s",
    "proxyCheckInterval": "1s", "proxyTimeout": "3s",
}  # fmt: skip


def switchover(cluster: LocalCluster) -> float:
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stolon.cli.stolonctl",
            *cluster.store_args(),
            "switchover",
            "--yes",
            "--wait",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return time.monotonic() - started


def one_round(cluster: LocalCluster, writer: Writer) -> tuple[float, float, int, str, str]:
    old = cluster.master_keeper() or "?"
    time.sleep(2)  # a steady stretch of writes before the request
    started = time.monotonic()
    took = switchover(cluster)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        recent = [t for t, ok in writer.attempts[-20:] if ok and t > started]
        if len(recent) >= 10:
            break
        time.sleep(0.1)
    gap = writer.unavailability(started)
    lost = len(writer.missing(cluster.dsn()))
    new = cluster.master_keeper() or "?"
    cluster.wait_healthy(300)
    return gap, took, lost, old, new


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sync", action="store_true")
    ap.add_argument("--hold", default="", help="the proxy's --hold-connections-timeout (e.g. 5s)")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="stolon-switchover-", dir="/tmp"))
    os.chmod(base, 0o755)
    cluster = LocalCluster.create(
        base / "c", backends=load_plugins(), keepers=3, sentinels=2, synchronous=a.sync, spec=TIGHT
    )
    if a.hold:
        cluster.processes["proxy"].env["STPROXY_HOLD_CONNECTIONS_TIMEOUT"] = a.hold
    mode = "synchronous" if a.sync else "asynchronous"
    print(
        f"switchover benchmark: {mode}, tight spec, proxy hold {a.hold or 'off'}, {a.rounds} rounds",
        flush=True,
    )
    results: list[tuple[float, float, int]] = []
    try:
        cluster.start()
        cluster.wait_healthy(300)
        writer = Writer(cluster.dsn(), interval=0.02)
        writer.setup()
        writer.start()
        try:
            for i in range(1, a.rounds + 1):
                gap, took, lost, old, new = one_round(cluster, writer)
                results.append((gap, took, lost))
                print(
                    f"  round {i}: {old} -> {new}: no successful write for {gap:5.2f}s,"
                    f" stolonctl took {took:5.2f}s, {lost} acknowledged rows lost",
                    flush=True,
                )
        finally:
            writer.stop()
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    gaps = [r[0] for r in results]
    tooks = [r[1] for r in results]
    print(
        f"write gap median {statistics.median(gaps):.2f}s / max {max(gaps):.2f}s;"
        f" stolonctl median {statistics.median(tooks):.2f}s; lost max {max(r[2] for r in results)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
