"""pgbench directly against PostgreSQL, through stolon-proxy and through HAProxy (TCP mode).

Run on demand (not part of the test suite), as root on a machine with PostgreSQL 15::

    .venv/bin/python benchmarks/proxy_pgbench.py [--duration 20] [--clients 1,16,64]

It starts one PostgreSQL instance (as the ``postgres`` OS user, fsync off), an embedded
store with hand-written cluster data, ``stolon-proxy`` (uvloop when installed) and
``haproxy`` (Debian's, installed with apt-get when absent; its defaults, so one thread
per core), then runs pgbench select-only (``-S``) and TPC-B-like at each client count
with ``-c N -j min(N,2)`` against each target, interleaved, and prints TPS, average
latency, the proxy process's CPU time per transaction and the ratios proxy/direct and
proxy/haproxy. Everything shares the machine's cores: pgbench, PostgreSQL and the proxy
compete for them, as they would on a small host. About 7 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stolon.netutil import free_port
from stolon.plugins import load_plugins
from stolon.store import StoreConfig, open_store
from stolon.testing.pgsandbox import SU_PASSWORD, SU_USER, open_sandbox
from stolon.testing.proxy_harness import CDDef, ProxyProcess, make_cd, master_db, wait_until

WORKLOADS = {"select-only": ["-S"], "tpcb-like": []}


@dataclass
class Result:
    workload: str
    clients: int
    target: str
    tps: float
    latency_ms: float
    #: CPU time of the proxy process per transaction (microseconds); 0 for direct
    cpu_us: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ensure_haproxy() -> str:
    found = shutil.which("haproxy")
    if found:
        return found
    print("installing haproxy with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "haproxy"], check=True, env=env, stdout=subprocess.DEVNULL
    )
    found = shutil.which("haproxy")
    if not found:
        raise SystemExit("haproxy is still not in PATH after apt-get install")
    return found


def start_haproxy(binary: str, workdir: Path, port: int, upstream: int) -> subprocess.Popen[bytes]:
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(
        "global\n"
        "    maxconn 4096\n"
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 5s\n"
        "    timeout client 1h\n"
        "    timeout server 1h\n"
        f"listen pg\n    bind 127.0.0.1:{port}\n    server master 127.0.0.1:{upstream}\n"
    )
    with open(workdir / "haproxy.log", "wb") as log:
        return subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL, stderr=log)


def pgbench(bin_dir: Path, port: int, args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    cmd = [
        str(bin_dir / "pgbench"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        SU_USER,
        "-n",
        *args,
        "postgres",
    ]
    out = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    count = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    if tps is None or lat is None or count is None:
        raise RuntimeError(f"cannot parse pgbench output:\n{out.stdout}")
    return float(tps.group(1)), float(lat.group(1)), int(count.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=20, help="seconds per pgbench run (default 20)")
    ap.add_argument("--clients", default="1,16,64", help="client counts (default 1,16,64)")
    ap.add_argument("--scale", type=int, default=10, help="pgbench scale factor (default 10)")
    ap.add_argument(
        "--targets",
        default="direct,proxy,haproxy",
        help="comma-separated, from direct, proxy, proxy-asyncio (the proxy without uvloop),"
        " haproxy (default: direct,proxy,haproxy)",
    )
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    targets = [t for t in ("direct", "proxy", "proxy-asyncio", "haproxy") if t in args.targets.split(",")]
    haproxy_bin = ensure_haproxy() if "haproxy" in targets else ""
    workdir = Path(tempfile.mkdtemp(prefix="stolon-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    proxies: dict[str, ProxyProcess] = {}
    started = time.monotonic()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)")
    try:
        with open_sandbox("stolon-bench-") as pg:
            inst = pg.primary(
                "bench",
                # synchronous_commit as PostgreSQL's default: the sandbox turns it off for tests
                {
                    "max_connections": "150",
                    "shared_buffers": "128MB",
                    "max_wal_size": "1GB",
                    "synchronous_commit": "on",
                },
            )
            bin_dir = pg.binaries.bin_dir
            env = dict(os.environ, PGPASSWORD=SU_PASSWORD)
            print(f"PostgreSQL {pg.binaries.version()} (fsync off); pgbench -i -s {args.scale}", flush=True)
            subprocess.run(
                [
                    str(bin_dir / "pgbench"),
                    "-i",
                    "-q",
                    "-s",
                    str(args.scale),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(inst.port),
                    "-U",
                    SU_USER,
                    "postgres",
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            ports: dict[str, int] = {"direct": inst.port}
            pids: dict[str, int] = {}
            store_cfg = StoreConfig(
                backend="embedded", cluster_name="bench", endpoints=(str(workdir / "store.db"),)
            )
            store = open_store(store_cfg, load_plugins())
            for name, loop in (("proxy", "auto"), ("proxy-asyncio", "asyncio")):
                if name in targets:
                    ports[name] = free_port()
                    proxies[name] = ProxyProcess(
                        store_cfg, ports[name], ["--event-loop", loop], log_dir=workdir
                    ).start()
            uids = [p.uid() for p in proxies.values()]
            store.put_cluster_data(
                make_cd(
                    CDDef(
                        dbs=[master_db("01", inst.port)],
                        master="01",
                        enabled_proxies=uids,
                        check_interval="2s",
                        timeout="10s",
                    )
                )
            )
            for name, p in proxies.items():
                pids[name] = p.pid
                wait_until(lambda port=ports[name]: psql_ok(bin_dir, port, env), 30, f"{name} to forward")  # type: ignore[misc]
            if "haproxy" in targets:
                ports["haproxy"] = free_port()
                procs.append(start_haproxy(haproxy_bin, workdir, ports["haproxy"], inst.port))
                pids["haproxy"] = procs[-1].pid
                wait_until(lambda: psql_ok(bin_dir, ports["haproxy"], env), 30, "haproxy to forward")
            print(
                f"{args.duration}s per run, -c N -j min(N,2), targets interleaved; {os.cpu_count()} cores shared"
                " by pgbench, PostgreSQL and the proxy",
                flush=True,
            )
            results: list[Result] = []
            for workload, extra in WORKLOADS.items():
                pgbench(bin_dir, inst.port, [*extra, "-c", "4", "-j", "2", "-T", "5"], env)  # warm-up
                for n in clients:
                    for target in targets:
                        pid = pids.get(target)
                        c0 = cpu_seconds(pid) if pid else 0.0
                        tps, lat, count = pgbench(
                            bin_dir,
                            ports[target],
                            [*extra, "-c", str(n), "-j", str(min(n, 2)), "-T", str(args.duration)],
                            env,
                        )
                        cpu_us = (cpu_seconds(pid) - c0) / count * 1e6 if pid else 0.0
                        results.append(Result(workload, n, target, tps, lat, cpu_us))
                        print(
                            f"  {workload:11s} c={n:<3d} {target:14s} tps={tps:9.1f} lat={lat:7.3f} ms"
                            + (f" proxy cpu/tx={cpu_us:5.1f} us" if pid else ""),
                            flush=True,
                        )
            report(results, targets)
            print(
                f"load average at end: {os.getloadavg()[0]:.2f}; total time: {time.monotonic() - started:.0f}s"
            )
            store.close()
    finally:
        for p in proxies.values():
            p.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def psql_ok(bin_dir: Path, port: int, env: dict[str, str]) -> bool:
    out = subprocess.run(
        [
            str(bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            SU_USER,
            "-tAc",
            "select 1",
            "postgres",
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    return out.returncode == 0 and out.stdout.strip() == "1"


def report(results: list[Result], targets: list[str]) -> None:
    by = {(r.workload, r.clients, r.target): r for r in results}
    ratios = [("proxy", "direct"), ("proxy", "haproxy"), ("haproxy", "direct"), ("proxy-asyncio", "direct")]
    ratios = [(a, b) for a, b in ratios if a in targets and b in targets]
    print()
    print("TPS (average latency ms) [proxy CPU per transaction]")
    head = f"{'workload':11s} {'clients':>7s}"
    for t in targets:
        head += f" {t:>28s}"
    for a, b in ratios:
        head += f" {a + '/' + b:>14s}"
    print(head)
    for workload in WORKLOADS:
        for n in sorted({r.clients for r in results if r.workload == workload}):
            row = f"{workload:11s} {n:7d}"
            for t in targets:
                r = by[(workload, n, t)]
                cell = f"{r.tps:.1f} ({r.latency_ms:.3f})" + (f" [{r.cpu_us:.0f}us]" if r.cpu_us else "")
                row += f" {cell:>28s}"
            for a, b in ratios:
                row += f" {by[(workload, n, a)].tps / by[(workload, n, b)].tps:14.1%}"
            print(row)


if __name__ == "__main__":
    sys.exit(main())
