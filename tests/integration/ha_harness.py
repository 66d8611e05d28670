"""HA scenarios on a real cluster: etcd, PostgreSQL, keepers and sentinels as processes.

:class:`HA` wraps a :class:`stolon.local.cluster.LocalCluster` (no proxy: clients connect to
the master's PostgreSQL directly) with what the scenarios need: who is master, waits on
the cluster data, SQL on one keeper's instance, stolonctl, and a :class:`Writer` that
records every acknowledged insert through a direct connection to the current master.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from stolon.local.cluster import LocalCluster
from stolon.model import ClusterData
from stolon.model.uid import new_uid
from stolon.plugins import load_plugins

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

T = TypeVar("T")

#: Quick failure detection on one machine (Go's ha_test uses failInterval 10s / sleep 1s).
FAST_SPEC: dict[str, Any] = {
    "sleepInterval": "1s",
    "failInterval": "3s",
    "requestTimeout": "3s",
    "convergenceTimeout": "30s",
    "proxyCheckInterval": "1s",
    "proxyTimeout": "3s",
    "pgParameters": {"max_connections": "50", "log_min_messages": "warning", "shared_buffers": "16MB"},
}
ELECTION_TTL = "3s"


def wait_for(what: str, predicate: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (psycopg.Error, OSError) as e:
            last = e
        else:
            if last:
                return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def stays(what: str, predicate: Callable[[], bool], seconds: float, interval: float = 0.5) -> None:
    """``predicate`` holds for the whole of ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"{what} stopped holding"
        time.sleep(interval)


class HA:
    def __init__(
        self,
        etcd_endpoints: list[str],
        *,
        keepers: int = 3,
        sentinels: int = 2,
        spec: dict[str, Any] | None = None,
        synchronous: bool = False,
        store_backend: str = "etcdv3",
    ) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="stolon-ha-", dir="/tmp"))
        os.chmod(self.base, 0o755)
        self.name = f"ha-{new_uid()}"
        full = dict(FAST_SPEC)
        full.update(spec or {})
        self.cluster = LocalCluster.create(
            self.base / "c",
            name=self.name,
            keepers=keepers,
            sentinels=sentinels,
            synchronous=synchronous,
            store_backend=store_backend,
            store_endpoints=etcd_endpoints if store_backend == "etcdv3" else None,
            spec=full,
            proxy=False,
            election_ttl=ELECTION_TTL,
            backends=PLUGINS,
        )
        self.extra: list[subprocess.Popen[bytes]] = []

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        self.cluster.start()
        self.cluster.wait_healthy(timeout)

    def close(self) -> None:
        try:
            for p in self.cluster.processes.values():
                p.thaw()
            self.cluster.stop(timeout=30)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(
            f"===== {name} =====\n{p.output(tail)}" for name, p in self.cluster.processes.items()
        )

    # -- cluster data ---------------------------------------------------------------------------
    def cd(self) -> ClusterData:
        cd = self.cluster.cluster_data()
        assert cd is not None, "no cluster data"
        return cd

    def master(self) -> str:
        m = self.cluster.master_keeper()
        assert m is not None, "no master"
        return m

    def standbys(self) -> list[str]:
        m = self.master()
        return sorted(k for k in self.cluster.keeper_uids() if k != m)

    def db_uid(self, keeper: str, cd: ClusterData | None = None) -> str | None:
        db = (cd or self.cd()).db_of_keeper(keeper)
        return db.uid if db is not None else None

    def master_ready(self, cd: ClusterData | None = None) -> str | None:
        """The master keeper when its DB is promoted (converged) and healthy."""
        cd = cd or self.cd()
        db = cd.master_db()
        if db is None or db.spec is None or not db.status.healthy:
            return None
        if db.status.current_generation != db.generation:
            return None
        return db.spec.keeper_uid

    def wait_new_master(self, old: str, timeout: float = 60.0) -> str:
        def ready() -> str | None:
            m = self.master_ready()
            return m if m not in (None, old) else None

        new = wait_for(f"a master other than {old}", ready, timeout)
        wait_for(f"{new} out of recovery", lambda: not self.in_recovery(new), 30)
        return new

    def in_sync(self, cd: ClusterData | None = None) -> list[str]:
        """The master's known-in-sync standbys (keeper UIDs)."""
        cd = cd or self.cd()
        db = cd.master_db()
        assert db is not None and db.spec is not None
        defined = set(db.spec.synchronous_standbys or [])
        uids = [u for u in db.status.synchronous_standbys or [] if u in defined]
        return sorted((cd.dbs or {})[u].spec.keeper_uid for u in uids if u in (cd.dbs or {}))  # type: ignore[union-attr]

    # -- PostgreSQL -----------------------------------------------------------------------------
    def dsn(self, keeper: str) -> str:
        return self.cluster.dsn(port=self.cluster.keeper_pg_port(keeper))

    @contextmanager
    def connect(self, keeper: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        with psycopg.connect(self.dsn(keeper), autocommit=True, connect_timeout=3) as conn:
            yield conn

    def sql(self, keeper: str, query: str) -> list[tuple[Any, ...]]:
        with self.connect(keeper) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def in_recovery(self, keeper: str) -> bool:
        return bool(self.sql(keeper, "SELECT pg_is_in_recovery()")[0][0])

    def ids(self, keeper: str, table: str = "t") -> set[int]:
        return {r[0] for r in self.sql(keeper, f"SELECT id FROM {table}")}

    def wait_ids(self, keeper: str, want: set[int], table: str = "t", timeout: float = 60.0) -> None:
        wait_for(f"rows {sorted(want)} on {keeper}", lambda: want <= self.ids(keeper, table), timeout)

    def wait_standby(self, keeper: str, timeout: float = 90.0) -> None:
        """``keeper`` has a converged, healthy standby DB and its PostgreSQL is in recovery."""

        def ok() -> bool:
            cd = self.cd()
            db = cd.db_of_keeper(keeper)
            return (
                db is not None
                and db.spec is not None
                and db.spec.role == "standby"
                and db.status.healthy
                and db.status.current_generation == db.generation
                and self.in_recovery(keeper)
            )

        wait_for(f"{keeper} to be a standby", ok, timeout)

    def wal_position(self, keeper: str) -> int:
        """The master ``keeper``'s current WAL position (an LSN as an integer)."""
        return int(self.sql(keeper, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])

    def wait_reported(self, keepers: list[str], position: int, timeout: float = 30.0) -> None:
        """The cluster data shows every DB of ``keepers`` at ``position`` or later: the
        leader sentinel took a healthy report of each at (or past) that WAL position."""

        def reported() -> bool:
            cd = self.cd()
            dbs = [cd.db_of_keeper(k) for k in keepers]
            return all(db is not None and db.status.healthy and db.status.xlog_pos >= position for db in dbs)

        wait_for(f"{', '.join(keepers)} reported at WAL position {position}", reported, timeout, 0.1)

    # -- processes ------------------------------------------------------------------------------
    def kill(self, keeper: str) -> None:
        """SIGKILL the keeper and its postmaster (a machine dying)."""
        self.cluster.kill_keeper_and_postgres(keeper)

    def stop(self, name: str) -> None:
        self.cluster.processes[name].stop(30)

    def start_process(self, name: str) -> None:
        self.cluster.processes[name].start()

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "stolon.cli.stolonctl", *self.cluster.store_args(), *args]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        if check and res.returncode != 0:
            raise AssertionError(
                f"stolonctl {' '.join(args)} failed ({res.returncode}): {res.stderr}{res.stdout}"
            )
        return res

    def log_has(self, name: str, text: str) -> bool:
        return text in self.cluster.processes[name].output()


@dataclass
class Writer:
    """Inserts ids into ``table`` on whatever keeper ``target()`` names (the master), one
    connection at a time, and records the ids whose commit returned (acknowledged).

    No statement_timeout: cancelling a commit that waits for a synchronous standby makes
    PostgreSQL report it committed anyway, which would count unreplicated rows as acked.
    """

    ha: HA
    table: str = "t"
    interval: float = 0.02
    acked: list[int] = field(default_factory=list)
    errors: int = 0
    next_id: int = 1_000_000
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            assert not self._thread.is_alive(), "the writer is stuck"

    def _target(self) -> str | None:
        try:
            return self.ha.master_ready()
        except Exception:
            return None

    def _run(self) -> None:
        conn: psycopg.Connection[tuple[Any, ...]] | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    keeper = self._target()
                    if keeper is None:
                        self._stop.wait(0.2)
                        continue
                    conn = psycopg.connect(
                        self.ha.dsn(keeper), autocommit=True, connect_timeout=2, keepalives_idle=2,
                        keepalives_interval=1, keepalives_count=2,
                    )  # fmt: skip
                i = self.next_id
                self.next_id += 1
                conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (i,))
                self.acked.append(i)
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                conn = None
                self._stop.wait(0.1)
                continue
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def wait_acked(self, more: int, timeout: float = 60.0) -> None:
        target = len(self.acked) + more
        wait_for(f"{more} more acknowledged writes", lambda: len(self.acked) >= target, timeout, 0.1)

    def missing_on(self, keeper: str) -> list[int]:
        # Take the acknowledged ids before reading the table: an id acknowledged while the
        # query runs (the writer may still be going) was committed after its snapshot.
        acked = list(self.acked)
        present = self.ha.ids(keeper, self.table)
        return [i for i in acked if i not in present]
