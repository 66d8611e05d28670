"""Keeper self-fencing on a real cluster: etcd (a disposable one this test freezes), one
keeper with its PostgreSQL, clients connected to PostgreSQL directly.

One story on one cluster (the sentinel is stopped once the master is up, so that nothing
but self-fencing acts): a master the store keeps naming is never fenced; a store outage
shorter than ``selfFencingTimeout`` changes nothing; a longer one makes PostgreSQL refuse
writes (sessions open at that moment are terminated) and the store's return lifts it.

With the ``stolon_lease`` module installed (scripts/setup --tests as root), the keeper loads
it and renews the master lease while the store confirms it; the lease lapses with the
store outage (a commit is refused by the lease or by the fence, whichever lands first).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from .ha_harness import HA, stays, wait_for

if TYPE_CHECKING:
    from stolon_store_etcd.testing import EtcdServer

from stolon.postgres import lease
from stolon.postgres.binaries import PgBinaries

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = {"sleepInterval": "1s", "failInterval": "5s", "selfFencingTimeout": "3s", "requestTimeout": "2s"}


@pytest.fixture
def ha(etcd_server_control: EtcdServer, request: pytest.FixtureRequest) -> Iterator[HA]:
    h = HA(list(etcd_server_control.endpoints), keepers=1, sentinels=1, spec=SPEC)
    failed_before = request.session.testsfailed
    try:
        h.start()
        yield h
    finally:
        etcd_server_control.thaw()
        if request.session.testsfailed > failed_before:
            print(h.logs(6000))
        h.close()


def _insert(ha: HA, keeper: str, value: int) -> str:
    """'ok', 'read-only' or the error's class name."""
    try:
        with psycopg.connect(ha.dsn(keeper), autocommit=True, connect_timeout=3) as conn:
            conn.execute("INSERT INTO t VALUES (%s)", (value,))
        return "ok"
    except psycopg.errors.ReadOnlySqlTransaction:  # the fence, or the lease at commit
        return "read-only"
    except psycopg.Error as e:
        return type(e).__name__


def _lease(path: Path) -> tuple[int, str] | None:
    try:
        return lease.parse(path.read_bytes())
    except FileNotFoundError:
        return None


def _module_installed() -> bool:
    dirs = lease.library_dirs(PgBinaries.find())
    return any((d / f"{lease.LIBRARY}.so").is_file() for d in dirs)


def _module_loaded(ha: HA, keeper: str) -> bool:
    rows = ha.sql(keeper, "SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'")
    return "stolon_lease" in str(rows[0][0])


def test_self_fencing_story(ha: HA, etcd_server_control: EtcdServer) -> None:
    master = ha.master()
    keeper_log = master
    ha.sql(master, "CREATE TABLE t (id bigint PRIMARY KEY)")
    sentinel = next(n for n in ha.cluster.processes if n.startswith("sentinel"))
    ha.stop(sentinel)
    counter = iter(range(1, 1_000_000))

    def writable() -> bool:
        return _insert(ha, master, next(counter)) == "ok"

    # 1. the store names us master (no sentinel, store fine): never fenced
    lease_file = ha.base / "c" / "keepers" / master / lease.LEASE_FILE
    first = _lease(lease_file)
    stays("the master takes writes while the store names it", writable, 3 * 3.0, interval=0.2)
    if _module_installed():
        assert _module_loaded(ha, master)
        assert ha.sql(master, "SHOW stolon_lease.file") == [(str(lease_file),)]
        renewed = _lease(lease_file)
        assert first is not None and renewed is not None
        assert renewed[0] > first[0] and renewed[1] == lease.boot_id()  # the keeper renews it
        assert time.monotonic_ns() < renewed[0] <= time.monotonic_ns() + 3 * 10**9

    # 2. a store outage shorter than selfFencingTimeout changes nothing
    etcd_server_control.freeze()
    try:
        stays("the master takes writes during a short store outage", writable, 0.5, interval=0.1)
    finally:
        etcd_server_control.thaw()
    stays("the master takes writes after it", writable, 4.0, interval=0.2)
    assert not ha.log_has(keeper_log, "self-fenced")

    # 3. a longer outage: writes refused within selfFencingTimeout (+ the time to act),
    # an open write transaction is terminated
    with psycopg.connect(ha.dsn(master), connect_timeout=3) as open_tx:
        open_tx.execute("INSERT INTO t VALUES (0)")  # transaction left open
        frozen = time.monotonic()
        etcd_server_control.freeze()
        got: dict[str, str] = {}

        def refused() -> bool:
            got["last"] = _insert(ha, master, next(counter))
            return got["last"] == "read-only"

        wait_for("the master refuses writes", refused, timeout=30, interval=0.1)
        fenced_after = time.monotonic() - frozen
        print(f"writes refused {fenced_after:.2f}s after the store froze (selfFencingTimeout 3s)")
        # terminated by the fence, or refused by the lease if that was first
        with pytest.raises((psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction)):
            open_tx.execute("COMMIT")
    wait_for("the fence logged", lambda: ha.log_has(keeper_log, "self-fenced: PostgreSQL refuses writes"), 30)
    stays(
        "writes stay refused while the store is away", lambda: _insert(ha, master, 10**9) == "read-only", 2.0
    )

    # 4. the store is back and still names us master: the fence is lifted
    etcd_server_control.thaw()
    thawed = time.monotonic()
    wait_for("the master takes writes again", writable, timeout=30, interval=0.1)
    print(f"fence lifted {time.monotonic() - thawed:.2f}s after the store came back")
    assert ha.log_has(keeper_log, "self-fence lifted")
    rows = ha.sql(master, "SELECT count(*) FROM t WHERE id = 0")
    assert rows == [(0,)]  # the terminated transaction never committed
