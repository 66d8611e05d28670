"""Cost benchmark (issue 12 item 5): what a cluster at rest costs, and how long the sentinel's
decide() takes for a big cluster.

1. **At rest**: 3 keepers, 2 sentinels and 1 proxy (sleepInterval 1s) on the embedded store
   (or ``--store etcd``: a real etcd on free ports), healthy, no client traffic. After a
   warm-up, CPU is measured over ``--seconds`` from ``/proc/<pid>/stat`` (user + system time,
   reaped children included) and shown as % of one core per daemon; the keeper's PostgreSQL
   (postmaster and every backend) is measured on its own and not counted in the keeper.
   Memory: each daemon's RSS at the end and its peak over the window (sampled every 2 s);
   PostgreSQL's as PSS summed over its processes (RSS would count shared buffers once per
   process). With etcd, etcd's own figures are shown too (no target).
2. **decide()**: the pure decision function (``stolon.sentinel.decide``) on a cluster of
   ``--keepers`` keepers (default 100: a master and 99 standbys, one proxy), built with the
   sentinel story builders: steady state asynchronous, steady state synchronous, and the
   master's keeper failed (an election). Median, p90 and max wall time over ``--iterations``
   calls, and the median CPU time of the calling thread (what the call costs even when other
   processes compete for the cores); only the call is timed (building the input is not).

Targets (issue 12): < 1 % of a core and < 80 MB RSS per daemon; decide() < 10 ms.

    .venv/bin/python benchmarks/cost.py                      # both parts, 60 s at rest (~2 min)
    .venv/bin/python benchmarks/cost.py --store etcd
    .venv/bin/python benchmarks/cost.py --decide-only [--iterations 50] [--profile]
    .venv/bin/python benchmarks/cost.py --rest-only --seconds 120 --json cost.json
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stolon.local.cluster import LocalCluster
from stolon.plugins import load_plugins
from stolon.sentinel import decide
from stolon.testing import procstat
from stolon.testing.sentinel_builders import CD, MASTER, NOW, pick_first

CPU_TARGET = 1.0  # % of one core per daemon
RSS_TARGET_MB = 80.0
DECIDE_TARGET_MS = 10.0

REST_SPEC: dict[str, Any] = {"sleepInterval": "1s"}  # on top of the local cluster's spec


# -- decide() ---------------------------------------------------------------------------------
def decide_cluster(n: int, *, synchronous: bool = False, master_down: bool = False) -> CD:
    """A master (db000 on keeper000) with n-1 standbys following it, all healthy, one proxy.

    maxStandbys / maxStandbysPerSender are raised to ``n`` so the sentinel keeps every standby
    (with Go's defaults, 20 and 3, it would start removing them: another workload).
    """
    ids = [f"db{i:03d}" for i in range(n)]
    sync = ids[1:2] if synchronous else None
    b = CD(max_standbys=n, max_standbys_per_sender=n, synchronous_replication=synchronous)
    for i in range(n):
        b.keeper(f"keeper{i:03d}")
    b.db(
        ids[0], "keeper000", role=MASTER, followers=ids[1:], xlog=1_000_000, timeline=1,
        sync=synchronous, sync_standbys=sync, in_sync=sync, cur_sync=sync,
    )  # fmt: skip
    for i in range(1, n):
        b.db(ids[i], f"keeper{i:03d}", follows=ids[0], xlog=1_000_000 - i, timeline=1)
    b.master(ids[0]).proxy(generation=1, master=ids[0], enabled=["proxy1"]).proxy_info("proxy1", 1)
    if master_down:
        b.keeper("keeper000", healthy=False).db(ids[0], healthy=False)
    return b


DECIDE_CASES: dict[str, Callable[[int], CD]] = {
    "steady, asynchronous": decide_cluster,
    "steady, synchronous": lambda n: decide_cluster(n, synchronous=True),
    "master failed (election)": lambda n: decide_cluster(n, master_down=True),
}


@dataclass
class DecideResult:
    case: str
    keepers: int
    iterations: int
    median_ms: float
    p90_ms: float
    max_ms: float
    #: median CPU time of the calling thread: what the call costs, whatever else the machine runs
    cpu_median_ms: float
    outcome: str


def time_decide(b: CD, iterations: int) -> tuple[list[float], list[float], str]:
    """Wall and thread-CPU seconds per decide() call, and what the last call decided."""
    times: list[float] = []
    cpu: list[float] = []
    outcome = ""
    for _ in range(iterations):
        cd, obs, mem, uid = b.build(), b.observations(), b.memory(), b.uid_source()
        c0, t0 = time.thread_time(), time.perf_counter()
        d = decide(cd, obs, mem, NOW, new_uid=uid, pick_index=pick_first)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if d.cluster_data is None or d.cluster_data.cluster is None:
            outcome = f"error: {d.error}"
        else:
            outcome = f"master {d.cluster_data.cluster.status.master}, {len(d.events)} events"
    return times, cpu, outcome


def bench_decide(keepers: int, iterations: int) -> list[DecideResult]:
    out = []
    for case, make in DECIDE_CASES.items():
        b = make(keepers)
        time_decide(b, 2)  # warm caches and imports
        times, cpu, outcome = time_decide(b, iterations)
        ms = sorted(t * 1000 for t in times)
        p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
        cpu_ms = statistics.median(c * 1000 for c in cpu)
        out.append(
            DecideResult(case, keepers, iterations, statistics.median(ms), p90, ms[-1], cpu_ms, outcome)
        )
    return out


def profile_decide(keepers: int, top: int = 20) -> str:
    b = decide_cluster(keepers)
    prof = cProfile.Profile()
    for _ in range(5):
        cd, obs, mem, uid = b.build(), b.observations(), b.memory(), b.uid_source()
        prof.enable()
        decide(cd, obs, mem, NOW, new_uid=uid, pick_index=pick_first)
        prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


# -- at rest ----------------------------------------------------------------------------------
@dataclass
class RestRow:
    name: str
    cpu_percent: float | None
    mem_mb: float | None
    peak_mem_mb: float | None
    #: "rss" for a daemon, "pss" for a PostgreSQL tree, "" when not measured
    mem_kind: str
    targeted: bool


@contextlib.contextmanager
def etcd_server() -> Iterator[Any]:
    try:
        from stolon_store_etcd.testing import EtcdServer
    except ImportError:
        sys.exit("--store etcd needs the etcd plugin: pip install -e plugins/stolon-store-etcd")
    server = EtcdServer(name="stolon-bench")
    try:
        server.start()
        yield server
    finally:
        server.close()


def bench_rest(seconds: float, warmup: float, store: str, log: Callable[[str], None]) -> list[RestRow]:
    base = Path(tempfile.mkdtemp(prefix="stolon-cost-", dir="/tmp"))
    os.chmod(base, 0o755)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, True)
        backend, endpoints, etcd_pid = "embedded", None, None
        if store == "etcd":
            server = stack.enter_context(etcd_server())
            backend, endpoints, etcd_pid = "etcdv3", list(server.endpoints), server.pid
        cluster = LocalCluster.create(
            base / "c",
            backends=load_plugins(),
            keepers=3,
            sentinels=2,
            store_backend=backend,
            store_endpoints=endpoints,
            spec=REST_SPEC,
        )
        stack.callback(cluster.stop)
        cluster.start()
        log("waiting for the cluster to be healthy")
        cluster.wait_healthy(300)
        log(f"healthy; warming up for {warmup:g}s (first checkpoints, slots, proxies settle)")
        time.sleep(warmup)
        ok, what = cluster.healthy()
        if not ok:
            log(f"warning: the cluster is not healthy before the window ({what})")
        leader = cluster.leader_sentinel()
        daemons: dict[str, int] = {}
        postmasters: dict[str, int] = {}
        for name, proc in cluster.processes.items():
            if proc.pid is not None:
                daemons[name] = proc.pid
        for uid in cluster.keeper_uids():
            pm = cluster.postmaster_pid(uid)
            if pm is not None:
                postmasters[uid] = pm
        log(f"measuring for {seconds:g}s")
        first = procstat.snapshot()
        peaks: dict[str, int] = {}

        def sample_memory(snap: procstat.Snapshot) -> None:
            for name, pid in daemons.items():
                if pid in snap.procs:
                    peaks[name] = max(peaks.get(name, 0), snap.procs[pid].rss_bytes)
            for uid, pm in postmasters.items():
                peaks[f"{uid} postgres"] = max(
                    peaks.get(f"{uid} postgres", 0), procstat.tree_pss_bytes(snap, pm)
                )
            if etcd_pid is not None and etcd_pid in snap.procs:
                peaks["etcd"] = max(peaks.get("etcd", 0), snap.procs[etcd_pid].rss_bytes)

        sample_memory(first)
        end = first.at + seconds
        while time.monotonic() < end:
            time.sleep(min(2.0, max(0.0, end - time.monotonic())))
            sample_memory(procstat.snapshot())
        last = procstat.snapshot()
        sample_memory(last)
        ok, what = cluster.healthy()
        if not ok:
            log(f"warning: the cluster is not healthy after the window ({what})")

        mb = 1024.0 * 1024.0
        rows: list[RestRow] = []
        for name, pid in daemons.items():
            exclude = [postmasters[name]] if name in postmasters else []
            label = f"{name} (leader)" if name == leader else name
            rss = last.procs[pid].rss_bytes / mb if pid in last.procs else None
            rows.append(
                RestRow(
                    label, procstat.cpu_percent(first, last, pid, exclude), rss,
                    peaks.get(name, 0) / mb or None, "rss", True,
                )
            )  # fmt: skip
        for uid, pm in postmasters.items():
            name = f"{uid} postgres"
            rows.append(
                RestRow(
                    name, procstat.cpu_percent(first, last, pm), procstat.tree_pss_bytes(last, pm) / mb,
                    peaks.get(name, 0) / mb or None, "pss", False,
                )
            )  # fmt: skip
        if etcd_pid is not None:
            rss = last.procs[etcd_pid].rss_bytes / mb if etcd_pid in last.procs else None
            rows.append(
                RestRow(
                    "etcd", procstat.cpu_percent(first, last, etcd_pid), rss, peaks.get("etcd", 0) / mb or None,
                    "rss", False,
                )
            )  # fmt: skip
        return rows


# -- report -----------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def print_rest(rows: list[RestRow], seconds: float, store: str) -> None:
    print(f"\nAt rest: 3 keepers, 2 sentinels, 1 proxy, sleepInterval 1s, {store} store, {seconds:g}s window")
    print(
        f"{'process':<22} {'CPU % of a core':>15} {'memory MB (peak)':>22}   target (<{CPU_TARGET:g} %, <{RSS_TARGET_MB:g} MB RSS)"
    )
    for r in rows:
        cpu = f"{r.cpu_percent:.2f}" if r.cpu_percent is not None else "gone"
        mem = f"{r.mem_kind.upper()} {r.mem_mb:.1f}" if r.mem_mb is not None else "-"
        peak = f" ({r.peak_mem_mb:.1f})" if r.peak_mem_mb is not None else ""
        target = "(no target)"
        if r.targeted:
            cpu_ok = r.cpu_percent is not None and r.cpu_percent < CPU_TARGET
            mem_ok = r.peak_mem_mb is not None and r.peak_mem_mb < RSS_TARGET_MB
            target = f"CPU {verdict(cpu_ok)}, RSS {verdict(mem_ok)}"
        print(f"{r.name:<22} {cpu:>15} {mem + peak:>22}   {target}")


def print_decide(results: list[DecideResult]) -> None:
    if not results:
        return
    n, it = results[0].keepers, results[0].iterations
    print(
        f"\ndecide() with {n} keepers, {it} calls each (target < {DECIDE_TARGET_MS:g} ms, judged on the"
        " CPU time: wall time also counts waiting for a core on a busy machine)"
    )
    print(f"{'case':<26} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'CPU ms':>8}   target   outcome")
    for r in results:
        print(
            f"{r.case:<26} {r.median_ms:>10.2f} {r.p90_ms:>8.2f} {r.max_ms:>8.2f} {r.cpu_median_ms:>8.2f}   "
            f"{verdict(r.cpu_median_ms < DECIDE_TARGET_MS):<6}   {r.outcome}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--decide-only", action="store_true", help="only the decide() timing (seconds)")
    part.add_argument("--rest-only", action="store_true", help="only the cluster at rest")
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement window at rest (default 60)")
    ap.add_argument(
        "--warmup", type=float, default=20.0, help="wait after healthy before measuring (default 20)"
    )
    ap.add_argument("--store", choices=["embedded", "etcd"], default="embedded")
    ap.add_argument("--keepers", type=int, default=100, help="keepers in the decide() cluster (default 100)")
    ap.add_argument("--iterations", type=int, default=50, help="decide() calls per case (default 50)")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of decide() (steady case)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    a = ap.parse_args(argv)
    for flag, value, low in (
        ("--seconds", a.seconds, 1), ("--keepers", a.keepers, 2), ("--iterations", a.iterations, 1),
    ):  # fmt: skip
        if value < low:
            ap.error(f"{flag} must be at least {low}")
    if a.warmup < 0:
        ap.error("--warmup must be 0 or more")

    def log(msg: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}
    if not a.rest_only:
        results = bench_decide(a.keepers, a.iterations)
        print_decide(results)
        report["decide"] = [asdict(r) for r in results]
        if a.profile:
            print(profile_decide(a.keepers))
    if not a.decide_only:
        rows = bench_rest(a.seconds, a.warmup, a.store, log)
        print_rest(rows, a.seconds, a.store)
        report["rest"] = {"store": a.store, "seconds": a.seconds, "rows": [asdict(r) for r in rows]}
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
