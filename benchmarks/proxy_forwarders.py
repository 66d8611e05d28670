"""Copy versus zero-copy: the proxy's forwarder against an ``os.splice`` forwarder.

Run on demand (not part of the test suite)::

    .venv/bin/python benchmarks/proxy_forwarders.py [--duration 10]

Each engine runs alone in its own process in front of one PostgreSQL instance:

``copy-uvloop`` / ``copy-asyncio``
    the product's data path (:mod:`stolon.proxy.forwarder`: protocols, the bytes read
    handed to the peer transport) on uvloop and on the standard loop;
``splice-uvloop``
    the same accept/dial logic, but each direction moves bytes socket -> pipe -> socket
    with ``os.splice`` from ``add_reader``/``add_writer`` callbacks, never copying them
    into Python.

All run side by side and are measured in turn, repeatedly (medians are printed): pgbench
select-only TPS at 1 and 16 clients, the engine's CPU time per transaction, and the
throughput of a 300 MB ``COPY ... TO STDOUT`` read through it. About 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stolon.netutil import free_port
from stolon.testing.pgsandbox import SU_PASSWORD, SU_USER, open_sandbox
from stolon.testing.proxy_harness import wait_until

ENGINES = ("copy-uvloop", "copy-asyncio", "splice-uvloop")
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031


# -- the engines (run with --serve) ----------------------------------------------------------------


async def serve_copy(port: int, upstream: int) -> None:
    from stolon.proxy.listener import Listener
    from stolon.proxy.policies import MasterPolicy
    from stolon.proxy.routing import Destination

    listener = Listener("bench", "127.0.0.1", port, MasterPolicy())
    await listener.open()
    listener.table.set([Destination("db", "127.0.0.1", upstream)])
    print("ready", flush=True)
    await asyncio.Event().wait()


class _SplicePump:
    """One direction: src socket -> pipe -> dst socket, driven by readiness callbacks."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        src: socket.socket,
        dst: socket.socket,
        done: Callable[[], None],
    ) -> None:
        self.loop, self.src, self.dst, self.done = loop, src.fileno(), dst.fileno(), done
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            import fcntl

            fcntl.fcntl(self.w, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self.pending = 0
        loop.add_reader(self.src, self.readable)

    def readable(self) -> None:
        try:
            n = os.splice(self.src, self.w, PIPE_SIZE, flags=SPLICE_FLAGS)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n == 0:
            self.done()
            return
        self.pending += n
        self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                self.pending -= os.splice(self.r, self.dst, self.pending, flags=SPLICE_FLAGS)
            except BlockingIOError:
                self.loop.remove_reader(self.src)
                self.loop.add_writer(self.dst, self.writable)
                return
            except OSError:
                self.done()
                return

    def writable(self) -> None:
        self.flush()
        if not self.pending:
            self.loop.remove_writer(self.dst)
            self.loop.add_reader(self.src, self.readable)

    def close(self) -> None:
        self.loop.remove_reader(self.src)
        self.loop.remove_writer(self.dst)
        os.close(self.r)
        os.close(self.w)


async def serve_splice(port: int, upstream: int) -> None:
    loop = asyncio.get_running_loop()
    ls = socket.create_server(("127.0.0.1", port), backlog=4096)
    ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ls.setblocking(False)
    print("ready", flush=True)

    async def connect(client: socket.socket) -> None:
        up = socket.socket()
        up.setblocking(False)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.sock_connect(up, ("127.0.0.1", upstream))
        except OSError:
            client.close()
            up.close()
            return
        pumps: list[_SplicePump] = []

        def done() -> None:
            for p in pumps:
                p.close()
            pumps.clear()
            client.close()
            up.close()

        pumps.append(_SplicePump(loop, client, up, done))
        pumps.append(_SplicePump(loop, up, client, done))

    dials: set[asyncio.Task[None]] = set()
    while True:
        client, _ = await loop.sock_accept(ls)
        client.setblocking(False)
        task = loop.create_task(connect(client))
        dials.add(task)
        task.add_done_callback(dials.discard)


def serve(engine: str, port: int, upstream: int) -> None:
    coro = serve_splice(port, upstream) if engine.startswith("splice") else serve_copy(port, upstream)
    if engine.endswith("uvloop"):
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


# -- the measurements --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pgbench(bin_dir: Path, port: int, clients: int, seconds: int, env: dict[str, str]) -> tuple[float, int]:
    out = subprocess.run(
        [
            str(bin_dir / "pgbench"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            SU_USER,
            "-n",
            "-S",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(seconds),
            "postgres",
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    tps = re.search(r"tps = ([\d.]+) \(without", out)
    count = re.search(r"number of transactions actually processed: (\d+)", out)
    assert tps is not None and count is not None, out
    return float(tps.group(1)), int(count.group(1))


def copy_mb_per_s(bin_dir: Path, port: int, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run(
        [
            str(bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            SU_USER,
            "-c",
            "COPY (SELECT repeat('x', 1000) FROM generate_series(1, 300000)) TO STDOUT",
            "postgres",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return 300 * 1.001 / (time.monotonic() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=6, help="seconds per pgbench run (default 6)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine and client count (default 3)")
    ap.add_argument("--serve", nargs=3, metavar=("ENGINE", "PORT", "UPSTREAM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), int(args.serve[2]))
        return 0
    engines = [e for e in ENGINES if not e.endswith("uvloop") or _has_uvloop()]
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    procs: dict[str, tuple[subprocess.Popen[str], int]] = {}
    with open_sandbox("stolon-bench-") as pg:
        inst = pg.primary(
            "fwd", {"max_connections": "100", "shared_buffers": "128MB", "synchronous_commit": "on"}
        )
        bin_dir = pg.binaries.bin_dir
        env = dict(os.environ, PGPASSWORD=SU_PASSWORD)
        subprocess.run(
            [
                str(bin_dir / "pgbench"),
                "-i",
                "-q",
                "-s",
                "10",
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
        try:
            for engine in engines:
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--serve", engine, str(port), str(inst.port)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                procs[engine] = (proc, port)
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
                wait_until(lambda port=port: _connects(port), 10, f"{engine} to listen")  # type: ignore[misc]
            # engines interleaved, each run repeated: the median resists other load on the machine
            runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
            for clients in (1, 16):
                for _ in range(args.repeat):
                    for engine, (proc, port) in procs.items():
                        c0 = cpu_seconds(proc.pid)
                        tps, count = pgbench(bin_dir, port, clients, args.duration, env)
                        cpu_us = (cpu_seconds(proc.pid) - c0) / count * 1e6
                        runs.setdefault((engine, clients), []).append((tps, cpu_us))
            copy_rates = {
                engine: statistics.median(copy_mb_per_s(bin_dir, port, env) for _ in range(args.repeat))
                for engine, (_, port) in procs.items()
            }
        finally:
            for proc, _ in procs.values():
                proc.kill()
                proc.wait()
    print(f"pgbench -S, {args.duration}s runs, median of {args.repeat}; CPU = the engine's per transaction")
    print(f"{'engine':14s} {'c=1 tps':>9s} {'cpu/tx':>8s} {'c=16 tps':>9s} {'cpu/tx':>8s} {'COPY out':>10s}")
    for engine in procs:
        row = f"{engine:14s}"
        for clients in (1, 16):
            values = runs[(engine, clients)]
            row += f" {statistics.median(v[0] for v in values):9.0f}"
            row += f" {statistics.median(v[1] for v in values):6.1f}us"
        row += f" {copy_rates[engine]:6.0f} MB/s"
        print(row)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
