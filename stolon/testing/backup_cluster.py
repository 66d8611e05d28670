"""Whole-cluster backup scenarios for any backup method: real keepers, sentinels and
PostgreSQL on this machine (the embedded store: nothing else to install).

* :func:`pitr_scenario`: a cluster archives WAL through the method, ``stolonctl backup
  create`` takes a base backup, rows are written, a time is noted, more rows are written
  and a table is dropped; a new cluster initialised with ``initMode: pitr`` from that
  backup and that time has exactly the rows committed before it, and the dropped table.
* :func:`failover_scenario`: a cluster takes a backup, its master dies while rows are being
  written, the new master takes more rows; a new cluster restored from the backup to the
  end of the archive has exactly the new master's rows (the archive has no hole across the
  failover: the old timeline from the standbys, ``archive_mode = always``, the new one and
  its history file from the new master).

A plugin's tests call them with settings for a fresh repository::

    def test_pitr(tmp_repository):
        pitr_scenario("mymethod", {"repository": ...}, restore_settings={"repository": ...})

Every process started is stopped and the cluster directories removed, also on failure
(the logs are attached to the assertion message).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from stolon.local.cluster import LocalCluster
from stolon.model.uid import new_uid
from stolon.plugins import load_plugins

T = TypeVar("T")

#: Quick failure detection on one machine.
FAST: dict[str, Any] = {
    "sleepInterval": "1s",
    "failInterval": "4s",
    "requestTimeout": "4s",
    "convergenceTimeout": "60s",
    "proxyCheckInterval": "1s",
    "proxyTimeout": "3s",
    "pgParameters": {"max_connections": "40", "shared_buffers": "16MB", "log_min_messages": "warning"},
}


def wait_for(
    what: str, predicate: Callable[[], T | None], timeout: float = 120.0, interval: float = 0.3
) -> T:
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


class Cluster:
    """A :class:`LocalCluster` without proxy, with SQL on the master and stolonctl."""

    def __init__(
        self, base: Path, spec: dict[str, Any], keepers: int, env: dict[str, str] | None = None
    ) -> None:
        self.name = f"bk-{new_uid()}"
        self.lc = LocalCluster.create(
            base,
            backends=load_plugins(),
            name=self.name,
            keepers=keepers,
            sentinels=1,
            spec={**FAST, **spec},
            proxy=False,
        )
        for p in self.lc.processes.values():
            p.env.update(env or {})
        self.env = env or {}

    def start(self, timeout: float = 240.0) -> None:
        self.lc.start()
        self.lc.wait_healthy(timeout)

    def stop(self) -> None:
        for p in self.lc.processes.values():
            p.thaw()
        self.lc.stop(timeout=60)

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"===== {n} =====\n{p.output(tail)}" for n, p in self.lc.processes.items())

    def master(self) -> str:
        def ready() -> str | None:
            cd = self.lc.cluster_data()
            db = cd.master_db() if cd is not None else None
            if db is None or db.spec is None or not db.status.healthy:
                return None
            return db.spec.keeper_uid if db.status.current_generation == db.generation else None

        return wait_for("a ready master", ready, 120)

    def sql(self, keeper: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
        dsn = self.lc.dsn(port=self.lc.keeper_pg_port(keeper))
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(query, args or None)
            return list(cur.fetchall()) if cur.description else []

    def ids(self, keeper: str) -> list[int]:
        return [r[0] for r in self.sql(keeper, "SELECT id FROM t ORDER BY id")]

    def ctl(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "stolon.cli.stolonctl", *self.lc.store_args(), *args]
        env = {**os.environ, **self.env}
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)
        if check and res.returncode != 0:
            raise AssertionError(
                f"stolonctl {' '.join(args)} failed ({res.returncode}): {res.stderr}{res.stdout}"
            )
        return res

    def switch_and_wait_archived(self, keeper: str, timeout: float = 180.0) -> str:
        """Close the current WAL segment (there is always something to switch away from:
        a switch with nothing written since the last one is a no-op) and wait until it is
        archived."""
        self.sql(keeper, "SELECT pg_logical_emit_message(false, 'stolon', 'switch')")
        (name,) = self.sql(keeper, "SELECT pg_walfile_name(pg_switch_wal())")[0]

        def archived() -> bool:
            row = self.sql(keeper, "SELECT last_archived_wal FROM pg_stat_archiver")[0]
            return row[0] is not None and str(row[0]) >= str(name)

        wait_for(f"WAL {name} archived by {keeper}", archived, timeout, 0.5)
        return str(name)


@contextmanager
def _workspace() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="stolon-backup-cluster-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def _running(base: Path, spec: dict[str, Any], keepers: int, env: dict[str, str] | None) -> Iterator[Cluster]:
    c = Cluster(base, spec, keepers, env)
    try:
        c.start()
        yield c
    except BaseException as e:
        if isinstance(e, AssertionError | TimeoutError | RuntimeError):
            kept = _keep_logs(c)
            raise AssertionError(f"{e}\n(whole logs kept in {kept})\n{c.logs()}") from e
        raise
    finally:
        c.stop()


def _keep_logs(c: Cluster) -> Path:
    """Copy the cluster's logs out of its directory (removed afterwards) for a post-mortem."""
    dest = Path(tempfile.mkdtemp(prefix=f"stolon-failed-{c.name}-", dir="/tmp"))
    shutil.copytree(c.lc.base / "logs", dest / "logs", dirs_exist_ok=True)
    return dest


def _backup_create(c: Cluster) -> str:
    out = c.ctl("backup", "create").stdout
    done = [line for line in out.splitlines() if " completed " in line and line.startswith("backup ")]
    assert done, f"no completion line in: {out}"
    return done[-1].split()[1]


def pitr_scenario(
    method: str,
    settings: dict[str, Any],
    *,
    restore_settings: dict[str, Any] | None = None,
    new_cluster_settings: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """See the module docstring. ``settings``: the first cluster's repository;
    ``restore_settings``: how the new cluster reads it (default ``settings``);
    ``new_cluster_settings``: where the new cluster archives (default: no backup section)."""
    with _workspace() as base:
        with _running(base / "a", {"backup": {"method": method, "settings": settings}}, 2, env) as a:
            m = a.master()
            a.sql(m, "CREATE TABLE t (id int primary key)")
            a.sql(m, "CREATE TABLE dropped (id int)")
            a.sql(m, "INSERT INTO t SELECT generate_series(1, 10)")
            backup_id = _backup_create(a)
            listed = json.loads(a.ctl("backup", "list", "-f", "json").stdout)
            assert backup_id in [b["id"] for b in listed], f"{backup_id} not listed: {listed}"
            a.sql(m, "INSERT INTO t SELECT generate_series(11, 20)")
            (target,) = a.sql(m, "SELECT clock_timestamp()")[0]
            a.sql(m, "INSERT INTO t SELECT generate_series(21, 30)")
            a.sql(m, "DROP TABLE dropped")
            a.switch_and_wait_archived(m)
        spec_b: dict[str, Any] = {
            "initMode": "pitr",
            "pitrConfig": {
                "fromBackup": {
                    "method": method,
                    "settings": restore_settings if restore_settings is not None else settings,
                    "backupID": backup_id,
                },
                "recoveryTargetSettings": {"recoveryTargetTime": target.isoformat(sep=" ")},
            },
        }
        if new_cluster_settings is not None:
            spec_b["backup"] = {"method": method, "settings": new_cluster_settings}
        with _running(base / "b", spec_b, 1, env) as b:
            mb = b.master()
            assert b.ids(mb) == list(range(1, 21)), f"restored rows: {b.ids(mb)}"
            assert b.sql(mb, "SELECT to_regclass('dropped') IS NOT NULL")[0][0] is True


def _other_than(keeper: str | None, old: str) -> str | None:
    return keeper if keeper != old else None


def failover_scenario(method: str, settings: dict[str, Any], *, env: dict[str, str] | None = None) -> None:
    """See the module docstring."""
    with _workspace() as base:
        with _running(base / "a", {"backup": {"method": method, "settings": settings}}, 3, env) as a:
            m = a.master()
            a.sql(m, "CREATE TABLE t (id int primary key)")
            a.sql(m, "INSERT INTO t SELECT generate_series(1, 100)")
            _backup_create(a)
            a.sql(m, "INSERT INTO t SELECT generate_series(101, 200)")
            # WAL the master has not archived yet when it dies: the standbys archive it too.
            a.sql(m, "SELECT pg_switch_wal()")
            a.sql(m, "INSERT INTO t SELECT generate_series(201, 300)")
            standbys = [k for k in a.lc.keeper_uids() if k != m]
            wait_for(
                "the standbys to replay row 300",
                lambda: all(300 in a.ids(k) for k in standbys),
                60,
            )
            a.lc.kill_keeper_and_postgres(m)
            new = wait_for("a new master", lambda: _other_than(a.lc.master_keeper(), m), 120)
            wait_for(f"{new} promoted", lambda: not a.sql(new, "SELECT pg_is_in_recovery()")[0][0], 120)
            a.sql(new, "INSERT INTO t SELECT generate_series(301, 400)")
            expected = a.ids(new)
            a.switch_and_wait_archived(new)
            (timeline,) = a.sql(new, "SELECT timeline_id FROM pg_control_checkpoint()")[0]
            assert timeline >= 2, "no new timeline after the failover"
        spec_b = {
            "initMode": "pitr",
            "pitrConfig": {"fromBackup": {"method": method, "settings": settings, "backupID": "latest"}},
        }
        with _running(base / "b", spec_b, 1, env) as b:
            mb = b.master()
            got = b.ids(mb)
            assert got == expected, f"restored {len(got)} rows, the new master had {len(expected)}"
