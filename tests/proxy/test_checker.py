"""The check loop (Go Stolon's ClusterChecker) and the data path, in-process against a fake store and
plain TCP upstreams: every step of Go Stolon's ``Check()`` and its timeout checker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stolon.model import ClusterData
from stolon.model.cluster import ClusterDataError
from stolon.model.duration import Duration
from stolon.model.infos import ProxyInfo
from stolon.netutil import free_port
from stolon.proxy.checker import CheckError, ClusterChecker
from stolon.proxy.daemon import loop_factory
from stolon.proxy.forwarder import Connection, SocketOptions
from stolon.proxy.listener import Listener
from stolon.proxy.policies import MasterPolicy, ReadOnlyPolicy
from stolon.proxy.routing import Destination
from stolon.store.base import UnreachableError
from stolon.telemetry import current_carrier
from stolon.testing.proxy_harness import CDDef, DBDef, make_cd, master_db

ME = "me000001"


class FakeStore:
    """Cluster data and ProxyInfo in memory, with switchable failures."""

    def __init__(self, cd: ClusterData | None = None) -> None:
        self.cd = cd
        self.down = False
        self.bad: ClusterDataError | None = None
        self.put_fails = False
        self.infos: list[tuple[ProxyInfo, float]] = []
        self.gate: threading.Event | None = None

    def get_cluster_data(self) -> tuple[ClusterData | None, Any]:
        if self.gate is not None:
            self.gate.wait(10)
        if self.down:
            raise UnreachableError("store is down")
        if self.bad is not None:
            raise self.bad
        return (self.cd.copy() if self.cd is not None else None), 1

    def put_proxy_info(self, info: ProxyInfo, ttl: float) -> None:
        if self.down or self.put_fails:
            raise UnreachableError("store is down")
        self.infos.append((info, ttl))


Runner = Callable[[Awaitable[None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a test coroutine on the stdlib loop and on uvloop (the daemon's default)."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    factory, _ = loop_factory(request.param)

    def runner(coro: Awaitable[None]) -> None:
        async def main() -> None:
            await asyncio.wait_for(coro, 30)

        with asyncio.Runner(loop_factory=factory) as r:
            r.run(main())

    return runner


async def echo_server() -> tuple[asyncio.Server, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
            if w.can_write_eof():
                w.write_eof()
                await w.drain()
        except ConnectionError:
            pass
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def proxy(
    store: FakeStore, *listeners: Listener, stop_listening: bool = True, tracer: trace.Tracer | None = None
) -> AsyncIterator[ClusterChecker]:
    ls = list(listeners) or [Listener("default", "127.0.0.1", free_port(), MasterPolicy())]
    c = ClusterChecker(ME, store, ls, stop_listening=stop_listening, tracer=tracer)
    try:
        yield c
    finally:
        c.cancel_timer()
        for lst in ls:
            lst.close()
            lst.table.abort_all()


async def roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(payload)
        await w.drain()
        return await asyncio.wait_for(r.readexactly(len(payload)), 5)
    finally:
        w.close()


async def closed_by_peer(r: asyncio.StreamReader, timeout: float = 5) -> bool:
    try:
        return await asyncio.wait_for(r.read(1), timeout) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def eventually(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def dests(c: ClusterChecker) -> tuple[Destination, ...]:
    """The first listener's destinations (a call, so mypy does not narrow across checks)."""
    return c.listeners[0].table.destinations


def cd_for(port: int, **kw: Any) -> ClusterData:
    d = CDDef(dbs=[master_db("01", port)], master="01", enabled_proxies=[ME])
    for k, v in kw.items():
        setattr(d, k, v)
    return make_cd(d)


# -- Check() step by step ---------------------------------------------------------------------------


def test_store_down_at_start_never_listens(run: Runner) -> None:
    async def main() -> None:
        store = FakeStore()
        store.down = True
        async with proxy(store) as c:
            with pytest.raises(CheckError, match="cannot get cluster data: store is down"):
                await c.check()
            assert not c.listeners[0].listening
            assert store.infos == []

    run(main())


def test_no_cluster_data_listens_and_refuses(run: Runner) -> None:
    async def main() -> None:
        store = FakeStore(None)
        async with proxy(store) as c:
            await c.check()
            lst = c.listeners[0]
            assert lst.listening and lst.table.destinations == ()
            r, w = await asyncio.open_connection("127.0.0.1", lst.port)
            assert await closed_by_peer(r)
            w.close()
            assert store.infos == []  # Go publishes nothing without cluster data
            assert lst.ctx.refused == 1

    run(main())


def test_bad_format_version_and_invalid_spec_route_nowhere_with_an_error(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port))
        async with proxy(store) as c:
            await c.check()
            assert dests(c)
            store.bad = ClusterDataError("formatVersion", "unsupported clusterdata format version 2")
            with pytest.raises(CheckError, match="unsupported clusterdata format version"):
                await c.check()
            assert c.listeners[0].listening and dests(c) == ()
            store.bad = None
            await c.check()
            assert dests(c)
            store.cd = cd_for(port, check_interval="5s", timeout="5s")
            with pytest.raises(CheckError, match="clusterdata validation failed: proxyCheckInterval"):
                await c.check()
            assert dests(c) == ()
        server.close()

    run(main())


def test_a_go_valid_stored_spec_keeps_routing_with_a_warning(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10 item 4: synchronousReplication with synchronous_commit off is refused as new
    input but Go Stolon accepts it stored; the proxy must keep routing to the master (it
    routed nowhere), and warn once, not every check."""

    async def main() -> None:
        server, port = await echo_server()
        cd = cd_for(port)
        assert cd.cluster is not None and cd.cluster.spec is not None
        cd.cluster.spec.synchronous_replication = True
        cd.cluster.spec.pg_parameters = {"synchronous_commit": "off"}
        cd.cluster.spec.request_timeout = Duration(0)  # out of bounds: clamped, warned
        store = FakeStore(cd)
        async with proxy(store) as c:
            for _ in range(3):
                assert await c.check_once()
                assert dests(c)
                assert await roundtrip(c.listeners[0].bound_port or 0) == b"ping"
            assert len(c.spec_check.warnings) == 2
        server.close()

    caplog.set_level("WARNING", "stolon.proxy")
    run(main())
    warned = [r.getMessage() for r in caplog.records if "synchronous_commit" in r.getMessage()]
    assert len(warned) == 1, warned


def test_no_proxy_object_publishes_generation_zero_and_adopts_the_timers(run: Runner) -> None:
    async def main() -> None:
        cd = cd_for(1)
        cd.proxy = None
        store = FakeStore(cd)
        async with proxy(store) as c:
            await c.check()
            (info, ttl), *_ = store.infos
            assert info.uid == ME and info.generation == 0
            assert info.proxy_timeout_ns == 15_000_000_000 and ttl == 30
            assert (c.check_interval, c.proxy_timeout) == (1.0, 3.0)
            assert dests(c) == ()

    run(main())


def test_master_db_missing_publishes_generation_and_ignores_publish_errors(run: Runner) -> None:
    async def main() -> None:
        store = FakeStore(cd_for(1, master_db_uid="", proxy_generation=7))
        async with proxy(store) as c:
            await c.check()
            assert store.infos[-1][0].generation == 7
            store.put_fails = True
            store.cd = cd_for(1, master_db_uid="zz", proxy_generation=8)
            await c.check()  # OK: nothing is routed, so the sentinel need not know about us
            assert c.generation == 7

    run(main())


def test_enabled_proxy_routes_after_publishing_the_larger_timeout(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port, proxy_generation=3))
        async with proxy(store) as c:
            await c.check()
            info, ttl = store.infos[-1]
            # max(the 15s in force, the cd's 3s); the next publish has the cd's
            assert (info.generation, info.proxy_timeout_ns, ttl) == (3, 15_000_000_000, 30)
            await c.check()
            info, ttl = store.infos[-1]
            assert (info.proxy_timeout_ns, ttl) == (3_000_000_000, 6)
            assert info.info_uid != store.infos[0][0].info_uid
            assert dests(c) == (Destination("01", "127.0.0.1", port),)
            assert await roundtrip(c.listeners[0].port) == b"ping"
        server.close()

    run(main())


def test_not_enabled_publishes_but_does_not_route(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port, enabled_proxies=["someone-else"]))
        async with proxy(store) as c:
            await c.check()
            assert store.infos and dests(c) == ()
            r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
            assert await closed_by_peer(r)
            w.close()
        server.close()

    run(main())


def test_publish_failure_with_a_master_fails_the_check_and_routes_nothing_new(run: Runner) -> None:
    async def main() -> None:
        s1, p1 = await echo_server()
        s2, p2 = await echo_server()
        store = FakeStore(cd_for(p1))
        async with proxy(store) as c:
            await c.check()
            r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
            w.write(b"x")
            assert await r.readexactly(1) == b"x"
            store.put_fails = True
            store.cd = cd_for(p2)  # same db uid, new address: a different destination
            with pytest.raises(CheckError, match="failed to update proxyInfo"):
                await c.check()
            # the old destination is closed before publishing; the new one needs a publish
            assert await closed_by_peer(r)
            assert dests(c) == ()
            w.close()
            store.put_fails = False
            await c.check()
            assert dests(c)[0].port == p2
        s1.close()
        s2.close()

    run(main())


def test_master_change_closes_connections_in_flight(run: Runner) -> None:
    async def main() -> None:
        s1, p1 = await echo_server()
        s2, p2 = await echo_server()
        cd = make_cd(CDDef(dbs=[master_db("01", p1), master_db("02", p2)], master="01", enabled_proxies=[ME]))
        store = FakeStore(cd)
        async with proxy(store) as c:
            await c.check()
            conns = [await asyncio.open_connection("127.0.0.1", c.listeners[0].port) for _ in range(3)]
            for r, w in conns:
                w.write(b"a")
                assert await r.readexactly(1) == b"a"
            assert c.listeners[0].table.connection_count() == 3
            cd.proxy.spec.master_db_uid = "02"  # type: ignore[union-attr]
            cd.proxy.generation += 1  # type: ignore[union-attr]
            await c.check()
            for r, w in conns:
                assert await closed_by_peer(r)
                w.close()
            assert c.listeners[0].table.closed_by_route_change == 3
            assert await roundtrip(c.listeners[0].port) == b"ping"
        s1.close()
        s2.close()

    run(main())


def test_a_check_slower_than_proxy_timeout_does_not_route(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port, check_interval="100ms", timeout="1s"))
        async with proxy(store) as c:
            c.proxy_timeout_ns = 1_000_000_000
            ticks = iter([0.0, 1.5])  # the check's start, then after the publish
            c._clock = lambda: next(ticks)
            with pytest.raises(CheckError, match=r"check took 1\.5s, longer than proxyTimeout"):
                await c.check()
            assert dests(c) == ()
            assert store.infos  # it did publish: the read itself was fine
        server.close()

    run(main())


# -- the timeout checker ------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_listening", [True, False])
def test_timeout_closes_connections_and_stops_listening(stop_listening: bool, run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port, check_interval="100ms", timeout="400ms"))
        async with proxy(store, stop_listening=stop_listening) as c:
            task = asyncio.create_task(c.run())
            lst = c.listeners[0]
            await eventually(lambda: bool(lst.table.destinations))
            r, w = await asyncio.open_connection("127.0.0.1", lst.port)
            w.write(b"x")
            assert await r.readexactly(1) == b"x"
            store.down = True
            t0 = time.monotonic()
            assert await closed_by_peer(r, timeout=3)
            assert 0.2 < time.monotonic() - t0 < 1.5
            w.close()
            await eventually(lambda: lst.listening is not stop_listening)
            assert lst.table.destinations == ()
            store.down = False
            await eventually(lambda: lst.listening and bool(lst.table.destinations))
            assert await roundtrip(lst.port) == b"ping"
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server.close()

    run(main())


def test_hung_store_times_out_and_recovers(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port, check_interval="100ms", timeout="500ms"))
        async with proxy(store) as c:
            task = asyncio.create_task(c.run())
            lst = c.listeners[0]
            await eventually(lambda: bool(lst.table.destinations))
            store.gate = threading.Event()  # every read now hangs
            await eventually(lambda: not lst.listening, timeout=3)
            store.gate.set()
            store.gate = None
            await eventually(lambda: lst.listening and bool(lst.table.destinations), timeout=3)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server.close()

    run(main())


# -- the data path -------------------------------------------------------------------------------------


def test_bulk_both_ways_and_half_close(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port))
        async with proxy(store) as c:
            await c.check()
            r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
            payload = bytes(range(256)) * 40_000  # 10 MB

            async def send() -> None:
                w.write(payload)
                await w.drain()
                w.write_eof()  # half-close: the echo server still answers, then closes

            sender = asyncio.create_task(send())
            got = await asyncio.wait_for(r.read(-1), 20)  # until EOF
            await sender
            assert got == payload
            w.close()
            await eventually(lambda: c.listeners[0].table.connection_count() == 0)
        server.close()

    run(main())


def test_client_data_sent_before_the_dial_completes_is_kept(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port))
        async with proxy(store) as c:
            await c.check()
            r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
            w.write(b"early bytes")  # written at once, before the proxy has dialed
            assert await asyncio.wait_for(r.readexactly(11), 5) == b"early bytes"
            w.close()
        server.close()

    run(main())


def test_server_closing_flushes_to_the_client(run: Runner) -> None:
    async def main() -> None:
        async def bye(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"FATAL: terminating connection")
            await w.drain()
            w.close()

        server = await asyncio.start_server(bye, "127.0.0.1", 0)
        store = FakeStore(cd_for(server.sockets[0].getsockname()[1]))
        async with proxy(store) as c:
            await c.check()
            r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
            assert await asyncio.wait_for(r.read(-1), 5) == b"FATAL: terminating connection"
            w.close()
        server.close()

    run(main())


def test_dial_in_progress_is_cancelled_by_a_route_change(run: Runner) -> None:
    async def main() -> None:
        # a server whose accept queue is full: new connects hang (their SYNs are dropped)
        full = socket.socket()
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.2)
        store = FakeStore(cd_for(port))
        async with proxy(store) as c:
            await c.check()
            r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
            await eventually(lambda: c.listeners[0].table.connection_count() == 1)
            store.cd = cd_for(port, master_db_uid="")
            t0 = time.monotonic()
            await c.check()
            assert await closed_by_peer(r, timeout=3)
            assert time.monotonic() - t0 < 2  # not the 10s dial timeout
            assert c.listeners[0].table.connection_count() == 0
            w.close()
        for s in fillers:
            s.close()
        full.close()

    run(main())


# -- read-only listener and spans ------------------------------------------------------------------------


def test_readonly_listener_spreads_and_drops_a_lagging_standby(run: Runner) -> None:
    async def main() -> None:
        servers = [await echo_server() for _ in range(3)]
        (_, pm), (_, p1), (_, p2) = servers
        d = CDDef(
            dbs=[
                master_db("m", pm, xlog_pos=1000),
                DBDef("s1", p1, xlog_pos=990),
                DBDef("s2", p2, xlog_pos=900),
            ],
            master="m",
            enabled_proxies=[ME],
        )
        store = FakeStore(make_cd(d))
        ro = Listener("ro", "127.0.0.1", free_port(), ReadOnlyPolicy(max_lag=200))
        rw = Listener("default", "127.0.0.1", free_port(), MasterPolicy())
        async with proxy(store, rw, ro) as c:
            await c.check()
            assert [x.port for x in ro.table.destinations] == [p1, p2]
            conns = [await asyncio.open_connection("127.0.0.1", ro.port) for _ in range(4)]
            for r, w in conns:
                w.write(b"r")
                assert await r.readexactly(1) == b"r"
            assert ro.table.connection_count(ro.table.destinations[0]) == 2
            rw_conn = await asyncio.open_connection("127.0.0.1", rw.port)
            rw_conn[1].write(b"w")
            assert await rw_conn[0].readexactly(1) == b"w"
            d.dbs[2].xlog_pos = 500  # s2 falls behind
            store.cd = make_cd(d)
            await c.check()
            assert [x.port for x in ro.table.destinations] == [p1]
            dropped = [await closed_by_peer(r, timeout=0.3) for r, _ in conns]
            assert sorted(dropped) == [False, False, True, True]
            # the master listener was not disturbed
            rw_conn[1].write(b"w")
            assert await rw_conn[0].readexactly(1) == b"w"
            for _, w in [*conns, rw_conn]:
                w.close()
        for s, _ in servers:
            s.close()

    run(main())


def test_route_change_span_is_a_child_of_the_decision(run: Runner) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    async def main() -> None:
        server, port = await echo_server()
        with tracer.start_as_current_span("sentinel.decision") as decision:
            carrier = current_carrier()
        store = FakeStore(cd_for(port, proxy_generation=5, trace_context=carrier))
        async with proxy(store, tracer=tracer) as c:
            await c.check()
            await c.check()  # no change, no span
            spans = [s for s in exporter.get_finished_spans() if s.name == "proxy.route_change"]
            assert len(spans) == 1
            span = spans[0]
            assert span.parent is not None
            assert span.parent.span_id == decision.get_span_context().span_id
            assert span.context.trace_id == decision.get_span_context().trace_id
            attrs = dict(span.attributes or {})
            assert attrs["stolon.proxy.uid"] == ME
            assert attrs["stolon.proxy.old_destination"] == ""
            assert attrs["stolon.proxy.new_destination"] == f"127.0.0.1:{port}"
            assert attrs["stolon.db.uid"] == "01"
            assert attrs["stolon.proxy.generation"] == 5
            assert attrs["stolon.proxy.listener"] == "default"
            store.down = True
            c._timed_out()
            span = exporter.get_finished_spans()[-1]
            assert span.attributes is not None
            assert span.attributes["stolon.proxy.old_destination"] == f"127.0.0.1:{port}"
            assert span.attributes["stolon.proxy.new_destination"] == ""
            assert span.attributes["stolon.proxy.reason"] == "check timeout"
        server.close()

    run(main())


def test_socket_options_on_both_sides(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port))
        options = SocketOptions(keepalive_idle=33, keepalive_count=4, keepalive_interval=7)
        lst = Listener("default", "127.0.0.1", free_port(), MasterPolicy(), options)
        async with proxy(store, lst) as c:
            await c.check()
            r, w = await asyncio.open_connection("127.0.0.1", lst.port)
            w.write(b"x")
            assert await r.readexactly(1) == b"x"
            (conn,) = next(iter(lst.table._conns.values()))
            assert isinstance(conn, Connection)
            client = conn.client.get_extra_info("socket")  # type: ignore[union-attr]
            upstream = conn.upstream.get_extra_info("socket")  # type: ignore[union-attr]
            tcp = socket.IPPROTO_TCP
            assert client.getsockopt(tcp, socket.TCP_NODELAY) == 1
            assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert client.getsockopt(tcp, socket.TCP_KEEPIDLE) == 33
            assert client.getsockopt(tcp, socket.TCP_KEEPCNT) == 4
            assert client.getsockopt(tcp, socket.TCP_KEEPINTVL) == 7
            assert upstream.getsockopt(tcp, socket.TCP_NODELAY) == 1
            w.close()
        server.close()

    run(main())


def test_failed_dials_close_the_client_and_are_counted(run: Runner) -> None:
    async def main() -> None:
        dead = free_port()  # nothing listens there
        store = FakeStore(cd_for(dead))
        async with proxy(store) as c:
            await c.check()
            for _ in range(3):
                r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
                assert await closed_by_peer(r)
                w.close()
            await eventually(lambda: c.listeners[0].ctx.dial_failures == 3)
            assert c.listeners[0].table.connection_count() == 0

    run(main())


def test_client_half_close_while_dialing(run: Runner) -> None:
    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port))
        async with proxy(store) as c:
            await c.check()
            r, w = await asyncio.open_connection("127.0.0.1", c.listeners[0].port)
            w.write(b"query")
            w.write_eof()  # at once: the proxy is most likely still dialing
            assert await asyncio.wait_for(r.read(-1), 5) == b"query"
            w.close()
        server.close()

    run(main())


def test_timeout_during_a_hung_check_gives_two_spans(run: Runner) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port, check_interval="100ms", timeout="400ms"))
        async with proxy(store, tracer=provider.get_tracer("test")) as c:
            await c.check_once()
            store.gate = threading.Event()
            check = asyncio.create_task(c.check_once())  # hangs on the store
            await eventually(lambda: not dests(c))  # the timer fired meanwhile
            store.gate.set()
            store.gate = None
            assert not await check  # slower than proxyTimeout: it must not route
            assert not dests(c)
            assert await c.check_once()
            assert dests(c)
        server.close()

    run(main())
    spans = [s for s in exporter.get_finished_spans() if s.name == "proxy.route_change"]
    moves = [
        (s.attributes["stolon.proxy.old_destination"] != "", s.attributes["stolon.proxy.reason"])  # type: ignore[index]
        for s in spans
    ]
    assert moves == [(False, "cluster data"), (True, "check timeout"), (False, "cluster data")]


def test_a_check_that_outlives_the_timer_records_its_own_change(run: Runner) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def main() -> None:
        server, port = await echo_server()
        store = FakeStore(cd_for(port, check_interval="100ms", timeout="1s"))
        async with proxy(store, tracer=provider.get_tracer("test")) as c:
            await c.check_once()  # t0: routes, and arms the 1s timer
            await c.check_once()
            await asyncio.sleep(0.5)
            store.gate = threading.Event()
            check = asyncio.create_task(c.check_once())  # starts at t0+0.5 and hangs
            await eventually(lambda: not dests(c), timeout=3)  # the timer fires at t0+1
            store.gate.set()  # about t0+1.05: the check took ~0.55s < proxyTimeout
            assert await check
            assert dests(c)
        server.close()

    run(main())
    spans = [s for s in exporter.get_finished_spans() if s.name == "proxy.route_change"]
    reasons = [s.attributes["stolon.proxy.reason"] for s in spans]  # type: ignore[index]
    assert reasons == ["cluster data", "check timeout", "cluster data"]
