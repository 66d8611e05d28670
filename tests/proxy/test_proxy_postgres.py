"""Real PostgreSQL traffic through stolon-proxy (a subprocess, real etcd): psycopg and psql,
a master switch between two real instances, a proxy that is not enabled, the read-only
listener over two real standbys, metrics, and route-change spans of an in-process proxy."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stolon.cli.proxy import parse_config
from stolon.model.uid import new_uid
from stolon.netutil import free_port
from stolon.postgres.instance import Instance
from stolon.proxy.daemon import ProxyDaemon, build_listeners
from stolon.store import open_store
from stolon.telemetry import current_carrier
from stolon.testing.requirements import tool_missing

if TYPE_CHECKING:
    from stolon_store_etcd.testing import EtcdServer

from stolon.plugins import load_plugins
from stolon.testing.proxy_harness import (
    CDDef,
    DBDef,
    ProxyProcess,
    etcd_store_config,
    make_cd,
    master_db,
    wait_until,
)

from .pgenv import SU_PASSWORD, SU_USER, PgEnv, make_standby, pg_sandbox, pg_unavailable

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.integration
MB = 1024 * 1024


@dataclass
class Servers:
    pg: PgEnv
    a: Instance  # a primary
    b: Instance  # another primary (the "new master" of a switch)
    s1: Instance  # standbys of a
    s2: Instance


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    why = pg_unavailable()
    if why:
        tool_missing("postgres", f"needs PostgreSQL: {why}")
    with pg_sandbox() as pg:
        a = pg.new_primary("a")
        b = pg.new_primary("b")
        s1 = make_standby(pg, a, "s1", "5151")
        s2 = make_standby(pg, a, "s2", "5252")
        yield Servers(pg, a, b, s1, s2)


def connect(port: int) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=SU_USER,
        password=SU_PASSWORD,
        dbname="postgres",
        connect_timeout=5,
        autocommit=True,
    )


def server_of(port: int) -> tuple[int, bool]:
    """(inet_server_port(), pg_is_in_recovery()) of a new connection through ``port``."""
    with connect(port) as c:
        row = c.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
        assert row is not None
        return int(row[0]), bool(row[1])  # type: ignore[call-overload]


def routes_to(port: int, server_port: int) -> bool:
    try:
        return server_of(port)[0] == server_port
    except psycopg.OperationalError:
        return False


def dropped(conn: psycopg.Connection[tuple[object, ...]], timeout: float = 10) -> bool:
    """Whether the proxy closed this connection (a query fails) within ``timeout``."""
    try:
        wait_until(lambda: not _alive(conn), timeout, "the connection to be closed")
        return True
    except AssertionError:
        return False


def _alive(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def test_master_traffic_switch_and_metrics(servers: Servers, etcd_server: EtcdServer, tmp_path: Path) -> None:
    cfg = etcd_store_config(etcd_server.endpoints, f"proxypg-{new_uid()}")
    store = open_store(cfg, PLUGINS)
    port, mport = free_port(), free_port()
    d = CDDef(
        dbs=[master_db("aa", servers.a.port), master_db("bb", servers.b.port)],
        master="aa",
        check_interval="500ms",
        timeout="3s",
    )
    store.put_cluster_data(make_cd(d))
    with ProxyProcess(
        cfg, port, ["--metrics-listen-address", f"127.0.0.1:{mport}"], log_dir=tmp_path
    ) as proxy:
        d.enabled_proxies = [proxy.uid()]
        store.put_cluster_data(make_cd(d))
        wait_until(lambda: routes_to(port, servers.a.port), 15, "the proxy to route to a")

        # psycopg: a session, a transaction, a larger result
        conn = connect(port)
        assert conn.execute("SELECT inet_server_port()").fetchone() == (servers.a.port,)
        with conn.transaction():
            conn.execute(
                "CREATE TEMP TABLE t AS SELECT g AS id, repeat('x', 100) AS v FROM generate_series(1, 50000) g"
            )
        row = conn.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()
        assert row == (50000, 5_000_000)
        big = conn.execute("SELECT v FROM t").fetchall()
        assert len(big) == 50000

        # psql
        out = subprocess.run(
            [
                servers.pg.binaries.path("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                SU_USER,
                "-tAc",
                "SELECT 'via psql', pg_is_in_recovery()",
                "postgres",
            ],
            env=dict(os.environ, PGPASSWORD=SU_PASSWORD),
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "via psql|f"

        # the master moves to b: connections to a are closed, new ones go to b
        d.master_db_uid = "bb"
        d.master = "bb"
        d.proxy_generation += 1
        store.put_cluster_data(make_cd(d))
        assert dropped(conn)
        conn.close()
        wait_until(lambda: routes_to(port, servers.b.port), 10, "the proxy to route to b")

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        assert (
            f'stolon_cluster_identifier{{cluster_name="{cfg.cluster_name}",component="proxy"}} 1.0' in metrics
        )
        assert 'stolon_proxy_connections_closed_by_route_change_total{listener="default"} 1.0' in metrics
        assert 'stolon_proxy_connections_accepted_total{listener="default"}' in metrics
        assert 'stolon_proxy_connections{listener="default"}' in metrics
        assert 'stolon_proxy_listening{listener="default"} 1.0' in metrics
        assert "stolon_proxy_last_check_success_seconds " in metrics
    assert proxy.returncode == 0  # SIGTERM: a clean exit
    store.close()


def test_proxy_not_enabled_refuses(servers: Servers, etcd_server: EtcdServer, tmp_path: Path) -> None:
    cfg = etcd_store_config(etcd_server.endpoints, f"proxypg-{new_uid()}")
    store = open_store(cfg, PLUGINS)
    port = free_port()
    d = CDDef(
        dbs=[master_db("aa", servers.a.port)],
        master="aa",
        enabled_proxies=["someone"],
        check_interval="500ms",
        timeout="3s",
    )
    store.put_cluster_data(make_cd(d))
    with ProxyProcess(cfg, port, log_dir=tmp_path) as proxy:
        uid = proxy.uid()
        wait_until(lambda: uid in store.proxies_info(), 10, "ProxyInfo")
        assert proxy.listening()
        with pytest.raises(psycopg.OperationalError):
            connect(port)
        assert "not proxying to master address since we aren't in the enabled proxies list" in proxy.log()
    store.close()


def test_readonly_listener_routes_to_standbys_within_the_lag_bound(
    servers: Servers, etcd_server: EtcdServer, tmp_path: Path
) -> None:
    cfg = etcd_store_config(etcd_server.endpoints, f"proxypg-{new_uid()}")
    store = open_store(cfg, PLUGINS)
    port, ro_port = free_port(), free_port()
    x = 100 * MB
    d = CDDef(
        dbs=[
            master_db("aa", servers.a.port, xlog_pos=x),
            DBDef("s1", servers.s1.port, xlog_pos=x - 100),
            DBDef("s2", servers.s2.port, xlog_pos=x - 10 * MB),
        ],
        master="aa",
        check_interval="500ms",
        timeout="3s",
    )
    store.put_cluster_data(make_cd(d))
    args = ["--listener", f"policy=readonly,port={ro_port},max-lag=1MiB"]
    with ProxyProcess(cfg, port, args, log_dir=tmp_path) as proxy:
        d.enabled_proxies = [proxy.uid()]
        store.put_cluster_data(make_cd(d))
        wait_until(lambda: routes_to(ro_port, servers.s1.port), 15, "the read-only listener to route to s1")
        # only s1 is close enough; the master listener still goes to the master
        assert {server_of(ro_port) for _ in range(6)} == {(servers.s1.port, True)}
        assert server_of(port) == (servers.a.port, False)
        held = [connect(ro_port) for _ in range(3)]
        rw = connect(port)

        # s1 falls behind, s2 catches up: s1's connections are closed, new ones go to s2
        d.dbs[1].xlog_pos = x - 5 * MB
        d.dbs[2].xlog_pos = x - 10
        store.put_cluster_data(make_cd(d))
        for c in held:
            assert dropped(c)
            c.close()
        wait_until(lambda: routes_to(ro_port, servers.s2.port), 10, "the read-only listener to route to s2")
        assert {server_of(ro_port) for _ in range(4)} == {(servers.s2.port, True)}
        assert _alive(rw), "the master listener's connections are not touched"

        # the standby dies (unhealthy in cd): its connections go too; nothing left: refused
        held = [connect(ro_port)]
        d.dbs[2].healthy = False
        store.put_cluster_data(make_cd(d))
        assert dropped(held[0])
        held[0].close()
        with pytest.raises(psycopg.OperationalError):
            connect(ro_port)
        rw.close()
    store.close()


def test_route_change_spans_of_a_running_proxy(servers: Servers, etcd_server: EtcdServer) -> None:
    """The daemon in-process (its own loop in a thread) so its spans are visible here."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    port = free_port()
    cluster = f"proxypg-{new_uid()}"
    config = parse_config(
        [
            "--cluster-name",
            cluster,
            "--store-backend",
            "etcdv3",
            "--store-endpoints",
            etcd_server.client_url,
            "--port",
            str(port),
        ],
        env={},
    )
    store = open_store(config.store, PLUGINS)
    daemon = ProxyDaemon(
        config, store, build_listeners(config.listeners, config.socket_options, PLUGINS), tracer=tracer
    )
    with tracer.start_as_current_span("sentinel.decision") as decision:
        carrier = current_carrier()
    d = CDDef(
        dbs=[master_db("aa", servers.a.port), master_db("bb", servers.b.port)],
        master="aa",
        enabled_proxies=[daemon.uid],
        proxy_generation=4,
        trace_context=carrier,
        check_interval="300ms",
        timeout="3s",
    )
    store.put_cluster_data(make_cd(d))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(daemon.run(stop),), daemon=True)
    thread.start()
    try:
        wait_until(lambda: routes_to(port, servers.a.port), 15, "routing to a")
        d.master_db_uid = "bb"
        d.proxy_generation = 5
        with tracer.start_as_current_span("sentinel.decision2") as decision2:
            d.trace_context = current_carrier()
        store.put_cluster_data(make_cd(d))
        wait_until(lambda: routes_to(port, servers.b.port), 10, "routing to b")
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
        store.close()
    spans = [s for s in exporter.get_finished_spans() if s.name == "proxy.route_change"]
    assert len(spans) >= 2
    first, second = spans[0], spans[-1]
    for span, parent, old, new, db, gen in (
        (first, decision, "", f"127.0.0.1:{servers.a.port}", "aa", 4),
        (second, decision2, f"127.0.0.1:{servers.a.port}", f"127.0.0.1:{servers.b.port}", "bb", 5),
    ):
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
        assert span.context.trace_id == parent.get_span_context().trace_id
        attrs = dict(span.attributes or {})
        assert attrs["stolon.proxy.old_destination"] == old
        assert attrs["stolon.proxy.new_destination"] == new
        assert attrs["stolon.db.uid"] == db
        assert attrs["stolon.proxy.uid"] == daemon.uid
        assert attrs["stolon.proxy.generation"] == gen
