"""Memory per idle connection: 10,000 client connections held open through stolon-proxy.

Run on demand (not part of the test suite)::

    .venv/bin/python benchmarks/proxy_idle_connections.py [--connections 10000]

It raises RLIMIT_NOFILE (the proxy holds two descriptors per connection), starts a plain
TCP echo server in its own process as the "database", an embedded store with
hand-written cluster data and ``stolon-proxy``, then opens the connections through the
proxy, checks each one end to end with a one-byte echo, and prints the proxy process's
RSS before and after, per connection.

One proxy process needs 2 x N descriptors plus a few. Where the hard RLIMIT_NOFILE can't
be raised that far (no CAP_SYS_RESOURCE, e.g. in a container), the connections are
spread over as many proxy processes as needed, all routing to the same upstream, and
the RSS figures are given per process and summed; the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stolon.netutil import free_port
from stolon.plugins import load_plugins
from stolon.store import StoreConfig, open_store
from stolon.testing.proxy_harness import (
    CDDef,
    ProxyProcess,
    echo_roundtrip,
    make_cd,
    master_db,
    wait_until,
)

UPSTREAM = """
import asyncio, sys
try:
    import uvloop
except ImportError:
    uvloop = None
class Echo(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(d)
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    print("ready", flush=True)
    await asyncio.Event().wait()
(uvloop.run if uvloop else asyncio.run)(main())
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_nofile(wanted: int) -> int:
    """Raise the open-files limit to ``wanted`` if allowed, else to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, soft), max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def open_connections(port: int, count: int, batch: int) -> list[asyncio.StreamWriter]:
    """``count`` connections through the proxy, each checked with a one-byte echo."""
    writers: list[asyncio.StreamWriter] = []

    async def one() -> asyncio.StreamWriter:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        if await asyncio.wait_for(r.readexactly(1), 30) != b"x":
            raise RuntimeError("bad echo")
        return w

    for start in range(0, count, batch):
        writers += await asyncio.gather(*(one() for _ in range(min(batch, count - start))))
    return writers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500, help="connections opened at once (default 500)")
    ap.add_argument("--event-loop", default="auto", choices=("auto", "uvloop", "asyncio"))
    args = ap.parse_args()
    n = args.connections
    limit = raise_nofile(2 * n + 200)
    per_proxy = min(n, (limit - 200) // 2)
    nproxies = -(-n // per_proxy)
    print(f"RLIMIT_NOFILE: {limit} (a proxy needs 2 per connection, plus about 100)")
    if nproxies > 1:
        print(
            f"note: the hard limit can't be raised here, so one proxy process holds at most {per_proxy}"
            f" connections; using {nproxies} proxy processes"
        )
    workdir = Path(tempfile.mkdtemp(prefix="stolon-idle-"))
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, str(upstream_port)], stdout=subprocess.PIPE, text=True
    )
    proxies: list[ProxyProcess] = []
    try:
        assert upstream.stdout is not None
        if upstream.stdout.readline().strip() != "ready":
            raise RuntimeError("the upstream echo server did not start")
        cfg = StoreConfig(backend="embedded", cluster_name="idle", endpoints=(str(workdir / "store.db"),))
        store = open_store(cfg, load_plugins())
        d = CDDef(dbs=[master_db("01", upstream_port)], master="01", check_interval="2s", timeout="10s")
        store.put_cluster_data(make_cd(d))
        for _ in range(nproxies):
            proxies.append(
                ProxyProcess(cfg, free_port(), ["--event-loop", args.event_loop], log_dir=workdir).start()
            )
        d.enabled_proxies = [p.uid() for p in proxies]
        store.put_cluster_data(make_cd(d))
        for p in proxies:
            wait_until(lambda p=p: echo_roundtrip(p.port), 30, "the proxy to forward")  # type: ignore[misc]
        time.sleep(1)
        shares = [per_proxy] * (nproxies - 1) + [n - per_proxy * (nproxies - 1)]
        asyncio.run(hold(proxies, shares, args.batch))
        store.close()
    finally:
        for p in proxies:
            p.stop()
        upstream.kill()
        upstream.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


async def hold(proxies: list[ProxyProcess], shares: list[int], batch: int) -> None:
    before = [rss_kib(p.pid) for p in proxies]
    t0 = time.monotonic()
    writers: list[asyncio.StreamWriter] = []
    for p, share in zip(proxies, shares, strict=True):
        writers += await open_connections(p.port, share, batch)
    took = time.monotonic() - t0
    await asyncio.sleep(2)
    after = [rss_kib(p.pid) for p in proxies]
    print(f"idle connections held through the proxy: {len(writers)} (opened and echo-checked in {took:.1f}s)")
    for p, share, b, a in zip(proxies, shares, before, after, strict=True):
        fds = len(list(Path(f"/proc/{p.pid}/fd").iterdir()))
        print(
            f"  proxy pid {p.pid}: {share} connections, {fds} open descriptors,"
            f" RSS {b / 1024:.1f} MiB before, {a / 1024:.1f} MiB with the connections"
        )
    grew = sum(after) - sum(before)
    print(
        f"proxy RSS per idle connection: {grew * 1024 / len(writers):.0f} bytes ({grew / 1024:.1f} MiB in all)"
    )
    for w in writers:
        w.close()
    await asyncio.sleep(1)
    print(f"proxy RSS after closing them: {', '.join(f'{rss_kib(p.pid) / 1024:.1f} MiB' for p in proxies)}")


if __name__ == "__main__":
    sys.exit(main())
