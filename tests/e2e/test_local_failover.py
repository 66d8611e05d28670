"""End to end on a local cluster, through the proxy: kill -9 the master's keeper and its
PostgreSQL, writes resume on a new master, no acknowledged row lost in synchronous mode,
and the killed node comes back as a standby. On the embedded store and on etcd."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stolon.local.cluster import LocalCluster
from stolon.model.uid import new_uid
from stolon.plugins import load_plugins
from stolon.testing.pgversions import pg18_bin_dir
from stolon.testing.writer import Writer

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.integration


@pytest.fixture
def base_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="stolon-e2e-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_cluster(
    base: Path, request: pytest.FixtureRequest, backend: str, synchronous: bool, pg_bin_path: str = ""
) -> LocalCluster:
    endpoints = None
    if backend == "etcdv3":
        endpoints = list(request.getfixturevalue("etcd_server").endpoints)
    return LocalCluster.create(
        base / "c",
        name=f"e2e-{new_uid()}",
        keepers=3 if synchronous else 2,
        sentinels=2,
        synchronous=synchronous,
        store_backend=backend,
        store_endpoints=endpoints,
        pg_bin_path=pg_bin_path,
        backends=PLUGINS,
    )


@pytest.mark.parametrize(
    ("backend", "synchronous", "pg"),
    [("embedded", True, "default"), ("etcdv3", False, "default"), ("embedded", True, "pg18")],
    ids=["embedded-sync", "etcd-async", "embedded-sync-pg18"],
)
def test_kill_master_through_proxy(
    base_dir: Path, request: pytest.FixtureRequest, backend: str, synchronous: bool, pg: str
) -> None:
    pg_bin_path = str(pg18_bin_dir()) if pg == "pg18" else ""
    cluster = make_cluster(base_dir, request, backend, synchronous, pg_bin_path)
    cluster.start()
    try:
        cluster.wait_healthy(240)
        old_master = cluster.master_keeper()
        assert old_master is not None
        writer = Writer(cluster.dsn())
        writer.setup()
        writer.start()
        time.sleep(3)
        killed_at = time.monotonic()
        cluster.kill_keeper_and_postgres(old_master)

        def new_master() -> str | None:
            m = cluster.master_keeper()
            return m if m not in (None, old_master) else None

        deadline = time.monotonic() + 120
        while new_master() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert new_master() is not None, "no failover"
        # writes through the proxy succeed again
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            ok and t > killed_at + 1 for t, ok in writer.attempts[-50:]
        ):
            time.sleep(0.5)
        time.sleep(2)
        writer.stop()
        assert any(ok and t > killed_at for t, ok in writer.attempts), (
            "writes never resumed through the proxy"
        )
        missing = writer.missing(cluster.dsn())
        if synchronous:
            assert missing == [], f"acknowledged rows lost: {missing[:20]}"
        # the killed node comes back as a standby with the data
        cluster.processes[old_master].start()
        cluster.wait_healthy(240)
        port = cluster.keeper_pg_port(old_master)
        with psycopg.connect(cluster.dsn(port=port), autocommit=True, connect_timeout=10) as conn:
            in_recovery, rows = conn.execute(
                f"SELECT pg_is_in_recovery(), count(*) FROM {writer.table}"
            ).fetchone() or (None, None)
        assert in_recovery is True
        assert rows is not None and rows >= len(writer.acked) - len(missing)
    finally:
        cluster.stop()
