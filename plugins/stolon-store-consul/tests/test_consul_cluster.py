"""A whole cluster on Consul (the emulator): 2 keepers with real PostgreSQL, 2 sentinels and a
proxy as processes, all coordinating through the emulator's HTTP API; the master's keeper and
its PostgreSQL are killed with SIGKILL, a new master is elected and the rows written before
are read back through the proxy."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from consul_emulator import ConsulEmulator

from stolon.local.cluster import LocalCluster
from stolon.plugins import load_plugins
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.errors import BinaryNotFoundError
from stolon.testing.requirements import tool_missing
from stolon.testing.store_contract import unique_cluster_name

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.integration

#: Quick failure detection on one machine (as the etcd HA tests).
SPEC: dict[str, Any] = {
    "sleepInterval": "1s",
    "failInterval": "3s",
    "requestTimeout": "3s",
    "convergenceTimeout": "30s",
    "proxyCheckInterval": "1s",
    "proxyTimeout": "3s",
    "pgParameters": {"max_connections": "30", "log_min_messages": "warning", "shared_buffers": "16MB"},
}


def _wait(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (psycopg.Error, OSError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


@pytest.fixture
def cluster(consul_emulator: ConsulEmulator, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    try:
        PgBinaries.find()
    except BinaryNotFoundError as e:
        tool_missing("postgres", f"PostgreSQL is needed: {e}")
    base = Path(tempfile.mkdtemp(prefix="stolon-consul-", dir="/tmp"))
    os.chmod(base, 0o755)  # PostgreSQL's OS user must reach the data directories
    failed_before = request.session.testsfailed
    c = LocalCluster.create(
        base / "c",
        name=unique_cluster_name(),
        keepers=2,
        sentinels=2,
        store_backend="consul",
        store_endpoints=list(consul_emulator.endpoints),
        spec=SPEC,
        election_ttl="3s",
        backends=PLUGINS,
    )
    try:
        yield c
    finally:
        if request.session.testsfailed > failed_before:
            for name, p in c.processes.items():
                print(f"===== {name} =====\n{p.output(4000)}")
        c.stop(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def _rows(c: LocalCluster) -> set[int]:
    with psycopg.connect(c.dsn(), autocommit=True, connect_timeout=3) as conn:
        if conn.execute("SELECT pg_is_in_recovery()").fetchone() != (False,):
            return set()
        return {r[0] for r in conn.execute("SELECT id FROM t").fetchall()}


def test_failover_on_consul(cluster: LocalCluster, consul_emulator: ConsulEmulator) -> None:
    c = cluster
    c.start()
    c.wait_healthy(120)
    base = f"stolon/cluster/{c.layout.name}"
    leader = consul_emulator.entry(f"{base}/sentinel-leader")
    assert leader is not None and leader.session
    assert consul_emulator.entry(f"{base}/sentinels/info/{leader.value.decode()}") is not None
    for uid in c.keeper_uids():
        info = consul_emulator.entry(f"{base}/keepers/info/{uid}")
        assert info is not None and info.session, f"keeper {uid} info is not held by a TTL session"

    with psycopg.connect(c.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
    old = c.master_keeper()
    assert old is not None
    standby = next(k for k in c.keeper_uids() if k != old)
    # the standby has the rows before the master dies (asynchronous replication)
    port = c.keeper_pg_port(standby)
    _wait(
        "the rows on the standby",
        lambda: (
            len(psycopg.connect(c.dsn(port=port), autocommit=True).execute("SELECT id FROM t").fetchall())
            == 100
        ),
        60,
    )

    started = time.monotonic()
    c.kill_keeper_and_postgres(old)

    def new_master() -> str | None:
        cd = c.cluster_data()
        db = cd.master_db() if cd is not None else None
        if db is None or db.spec is None or db.spec.keeper_uid == old:
            return None
        return (
            db.spec.keeper_uid
            if db.status.healthy and db.status.current_generation == db.generation
            else None
        )

    assert _wait("a new master", new_master, 60) == standby
    assert _wait("the rows through the proxy", lambda: _rows(c) == set(range(1, 101)), 60)
    print(
        f"failover on the Consul emulator: {time.monotonic() - started:.1f}s from kill -9 to rows via the proxy"
    )
    with psycopg.connect(c.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute("INSERT INTO t VALUES (101)")  # the new master takes writes
