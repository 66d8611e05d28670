"""The proxy's connection limit and handshake timeout (issue 10, item 13), with real TCP:
clients, the proxy's listeners and upstream servers on loopback.

On main every accepted client dialed PostgreSQL at once, without a bound on how many, and
a client that connected and said nothing held its connection (and a backend) until
PostgreSQL's own authentication_timeout.
"""

from __future__ import annotations

import asyncio

import pytest

from stolon.cli.common import CliError
from stolon.cli.proxy import parse_config
from stolon.netutil import free_port
from stolon.plugins import load_plugins
from stolon.proxy.daemon import build_listeners
from stolon.proxy.forwarder import Connection, ConnectionLimits
from stolon.proxy.listener import Listener
from stolon.proxy.metrics import proxy_metrics
from stolon.proxy.policies import MasterPolicy

from .test_checker import FakeStore, Runner, cd_for, closed_by_peer, echo_server, eventually, proxy, run

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

__all__ = ["run"]  # the fixture, used by name

BASE = ["--cluster-name", "c1", "--store-backend", "etcdv3"]


async def silent_server() -> tuple[asyncio.Server, int, list[str]]:
    """Accepts and never sends anything (a PostgreSQL that waits for a startup packet);
    records each connection's life: "open", then "gone" when the peer closed it."""
    events: list[str] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        events.append("open")
        try:
            await r.read()  # until the peer goes away
        except ConnectionError:
            pass
        events.append("gone")
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], events


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def echoes(r: asyncio.StreamReader, w: asyncio.StreamWriter, payload: bytes = b"ping") -> bool:
    w.write(payload)
    await w.drain()
    return await asyncio.wait_for(r.readexactly(len(payload)), 5) == payload


def test_max_connections_over_every_listener(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        limits = ConnectionLimits(max_connections=2)
        a = Listener("default", "127.0.0.1", free_port(), MasterPolicy(), limits=limits)
        b = Listener("other", "127.0.0.1", free_port(), MasterPolicy(), limits=limits)
        async with proxy(FakeStore(cd_for(port)), a, b) as c:
            await c.check()
            r1, w1 = await connect(a.port)
            r2, w2 = await connect(b.port)
            assert await echoes(r1, w1) and await echoes(r2, w2)
            assert limits.current == 2
            # a third, on either listener, is closed at once and counted
            r3, w3 = await connect(a.port)
            assert await closed_by_peer(r3)
            r4, w4 = await connect(b.port)
            assert await closed_by_peer(r4)
            assert (a.ctx.over_limit, b.ctx.over_limit) == (1, 1)
            # one leaves: there is room again
            w1.close()
            await eventually(lambda: limits.current == 1)
            r5, w5 = await connect(a.port)
            assert await echoes(r5, w5)
            for w in (w2, w3, w4, w5):
                w.close()
            await eventually(lambda: limits.current == 0)
            text = proxy_metrics("c1", [a, b], lambda: None).registry.get_sample_value(
                "stolon_proxy_connections_over_limit_total", {"listener": "default"}
            )
            assert text == 1
        server.close()

    run(main())


def test_no_limit_by_default(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        async with proxy(FakeStore(cd_for(port))) as c:
            await c.check()
            lst = c.listeners[0]
            conns = [await connect(lst.port) for _ in range(50)]
            for r, w in conns:
                assert await echoes(r, w)
            assert lst.ctx.over_limit == 0 and lst.ctx.limits.current == 50
            for _, w in conns:
                w.close()
        server.close()

    run(main())


def test_handshake_timeout_closes_a_silent_connection(run: Runner) -> None:
    async def main() -> None:
        server, port, events = await silent_server()
        limits = ConnectionLimits(handshake_timeout=0.3)
        lst = Listener("default", "127.0.0.1", free_port(), MasterPolicy(), limits=limits)
        async with proxy(FakeStore(cd_for(port)), lst) as c:
            await c.check()
            r, w = await connect(lst.port)
            w.write(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # an SSLRequest nobody answers
            await w.drain()
            assert await closed_by_peer(r, timeout=30), "closed by the proxy"
            assert lst.ctx.handshake_timeouts == 1 and limits.current == 0
            await eventually(lambda: events == ["open", "gone"])  # the backend connection is closed too
            w.close()
        server.close()

    run(main())


def test_handshake_timeout_stops_once_postgres_answered(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        limits = ConnectionLimits(handshake_timeout=0.3)
        lst = Listener("default", "127.0.0.1", free_port(), MasterPolicy(), limits=limits)
        async with proxy(FakeStore(cd_for(port)), lst) as c:
            await c.check()
            r, w = await connect(lst.port)
            assert await echoes(r, w)
            (conn,) = next(iter(lst.table._conns.values()))
            assert isinstance(conn, Connection)
            assert conn._handshake is None, "no timer once the server sent its first bytes"
            assert lst.ctx.handshake_timeouts == 0
            w.close()
        server.close()

    run(main())


def test_flags_and_environment() -> None:
    cfg = parse_config(BASE, env={})
    assert cfg.max_connections == 0 and cfg.handshake_timeout == 60.0
    cfg = parse_config([*BASE, "--max-connections", "500", "--handshake-timeout", "5s"], env={})
    assert cfg.max_connections == 500 and cfg.handshake_timeout == 5.0
    cfg = parse_config(BASE, env={"STPROXY_MAX_CONNECTIONS": "7", "STPROXY_HANDSHAKE_TIMEOUT": "0s"})
    assert cfg.max_connections == 7 and cfg.handshake_timeout == 0.0
    listeners = build_listeners(
        [*cfg.listeners], cfg.socket_options, PLUGINS, limits=ConnectionLimits(cfg.max_connections, 1.0)
    )
    assert listeners[0].ctx.limits.max_connections == 7
    for argv, message in [
        (["--max-connections", "-1"], "--max-connections -1: must be 0 (no limit) or a positive number"),
        (
            ["--handshake-timeout", "50ms"],
            "--handshake-timeout 0.05s: must be 0 (no limit) or at least 100ms",
        ),
    ]:
        with pytest.raises(CliError) as err:
            parse_config([*BASE, *argv], env={})
        assert err.value.exit_code == 2 and message in str(err.value)
    with pytest.raises(CliError, match="STPROXY_MAX_CONNECTIONS"):
        parse_config(BASE, env={"STPROXY_MAX_CONNECTIONS": "many"})
