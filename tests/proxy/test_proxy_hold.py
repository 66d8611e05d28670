"""Hold instead of refuse (issue 12, item 3; ``--hold-connections-timeout``), with real TCP:
clients, the proxy's listener and upstream echo servers on loopback.

While the sentinel has fenced the proxies and not yet pointed them at the new master, a
proxy refuses new clients (Go Stolon's behaviour, still the default). With a hold timeout
it keeps them and forwards them as soon as the new master is routed; existing connections
to the old master are still closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from stolon.cli.common import CliError
from stolon.cli.proxy import parse_config
from stolon.netutil import free_port
from stolon.proxy.forwarder import ConnectionLimits
from stolon.proxy.listener import Listener
from stolon.proxy.metrics import proxy_metrics
from stolon.proxy.policies import MasterPolicy
from stolon.testing.proxy_harness import CDDef, make_cd, master_db

from .test_checker import ME, FakeStore, Runner, closed_by_peer, echo_server, eventually, proxy, run

__all__ = ["run"]  # the fixture, used by name

BASE = ["--cluster-name", "c1", "--store-backend", "etcdv3"]


def listener(hold: float, max_connections: int = 0) -> Listener:
    limits = ConnectionLimits(max_connections=max_connections, hold_timeout=hold)
    return Listener("default", "127.0.0.1", free_port(), MasterPolicy(), limits=limits)


@contextlib.asynccontextmanager
async def unrouted_client(
    hold: float, max_connections: int = 0
) -> AsyncIterator[tuple[Listener, asyncio.StreamReader, asyncio.StreamWriter]]:
    """A proxy with no cluster data (nowhere to route), checked once, and one client that
    has just connected to it. The test closes the client."""
    lst = listener(hold, max_connections)
    async with proxy(FakeStore(None), lst) as c:
        await c.check()
        r, w = await asyncio.open_connection("127.0.0.1", lst.port)
        yield lst, r, w


def test_a_new_connection_is_held_while_fenced_and_forwarded_to_the_new_master(run: Runner) -> None:
    async def main() -> None:
        s1, p1 = await echo_server()
        s2, p2 = await echo_server()
        cd = make_cd(CDDef(dbs=[master_db("01", p1), master_db("02", p2)], master="01", enabled_proxies=[ME]))
        store = FakeStore(cd)
        lst = listener(30.0)
        async with proxy(store, lst) as c:
            await c.check()
            r_old, w_old = await asyncio.open_connection("127.0.0.1", lst.port)
            w_old.write(b"a")
            assert await r_old.readexactly(1) == b"a"
            # the sentinel fences the proxies: the connection to the old master is closed
            assert cd.proxy is not None
            cd.proxy.spec.master_db_uid = ""
            cd.proxy.generation += 1
            await c.check()
            assert await closed_by_peer(r_old)
            w_old.close()
            # a new client is held, not refused; what it sends is kept
            r, w = await asyncio.open_connection("127.0.0.1", lst.port)
            w.write(b"startup")
            await w.drain()
            await eventually(lambda: lst.table.held_count == 1)
            assert not await closed_by_peer(r, timeout=0.2)
            assert lst.ctx.limits.current == 1
            # the new master is routed: the held client is forwarded there at once
            cd.proxy.spec.master_db_uid = "02"
            cd.proxy.generation += 1
            await c.check()
            assert await asyncio.wait_for(r.readexactly(7), 5) == b"startup"
            assert lst.table.held_count == 0 and lst.table.connection_count() == 1
            assert (lst.ctx.held, lst.ctx.hold_timeouts, lst.ctx.refused) == (1, 0, 0)
            registry = proxy_metrics("c1", [lst], lambda: None).registry
            assert (
                registry.get_sample_value("stolon_proxy_connections_held_total", {"listener": "default"}) == 1
            )
            assert registry.get_sample_value("stolon_proxy_held_connections", {"listener": "default"}) == 0
            w.close()
        s1.close()
        s2.close()

    run(main())


def test_a_held_connection_is_closed_when_the_hold_times_out(run: Runner) -> None:
    async def main() -> None:
        async with unrouted_client(0.2) as (lst, r, w):
            assert await closed_by_peer(r)
            w.close()
            assert (lst.ctx.held, lst.ctx.hold_timeouts) == (1, 1)
            await eventually(lambda: lst.table.held_count == 0 and lst.ctx.limits.current == 0)

    run(main())


def test_a_client_that_leaves_while_held_is_forgotten(run: Runner) -> None:
    async def main() -> None:
        async with unrouted_client(30.0, max_connections=1) as (lst, _, w):
            await eventually(lambda: lst.table.held_count == 1)
            # held connections count in --max-connections
            r2, w2 = await asyncio.open_connection("127.0.0.1", lst.port)
            assert await closed_by_peer(r2)
            w2.close()
            assert lst.ctx.over_limit == 1
            w.close()
            await eventually(lambda: lst.table.held_count == 0 and lst.ctx.limits.current == 0)

    run(main())


def test_without_the_flag_new_connections_are_refused_at_once_as_in_go(run: Runner) -> None:
    async def main() -> None:
        async with unrouted_client(0.0) as (lst, r, w):
            assert await closed_by_peer(r)
            w.close()
            assert (lst.ctx.refused, lst.ctx.held) == (1, 0)

    run(main())


def test_shutdown_closes_held_connections(run: Runner) -> None:
    async def main() -> None:
        async with unrouted_client(30.0) as (lst, r, w):
            await eventually(lambda: lst.table.held_count == 1)
            assert lst.table.abort_all() == 1
            assert await closed_by_peer(r)
            w.close()

    run(main())


def test_hold_flag_and_variable() -> None:
    assert parse_config(BASE).hold_connections_timeout == 0.0
    assert parse_config([*BASE, "--hold-connections-timeout", "5s"]).hold_connections_timeout == 5.0
    env = {"STPROXY_HOLD_CONNECTIONS_TIMEOUT": "1500ms"}
    assert parse_config(BASE, env=env).hold_connections_timeout == 1.5
    for bad, message in (
        ("10ms", r"--hold-connections-timeout 0.01s: must be 0 \(off\) or at least 100ms"),
        ("-1s", "must not be negative"),
        ("soon", "invalid duration"),
    ):
        with pytest.raises(CliError, match=message):
            parse_config([*BASE, f"--hold-connections-timeout={bad}"])
