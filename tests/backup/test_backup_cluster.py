"""Whole clusters with backups through the built-in ``directory`` method: PITR of a new
cluster from a backup taken with ``stolonctl backup create``, and an archive without a
hole across a failover (real keepers, sentinel, PostgreSQL; the embedded store)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stolon.testing.backup_cluster import failover_scenario, pitr_scenario

# whole clusters: several minutes on a loaded machine (the default per-test bound is 300s)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_pitr_from_a_backup_to_a_time(make_repository: Callable[[], Path]) -> None:
    repo_a, repo_b = make_repository(), make_repository()
    pitr_scenario("directory", {"path": str(repo_a)}, new_cluster_settings={"path": str(repo_b)})


def test_archive_has_no_hole_across_a_failover(repository: Path) -> None:
    failover_scenario("directory", {"path": str(repository)})


def test_new_standby_restores_the_latest_backup_then_streams(repository: Path) -> None:
    """backup.restoreStandbys: a standby that lost its data comes back from the latest backup
    plus the archive, then streams; without a backup it falls back to pg_basebackup."""
    import shutil

    from stolon.testing.backup_cluster import Cluster, _running, _workspace, wait_for

    spec = {"backup": {"method": "directory", "settings": {"path": str(repository)}, "restoreStandbys": True}}
    with _workspace() as base, _running(base / "c", spec, 2, None) as c:
        m = c.master()
        standby = next(k for k in c.lc.keeper_uids() if k != m)
        assert (
            "copying from db" in c.lc.processes[standby].output()
            or "pg_basebackup" in c.lc.processes[standby].output()
        ), "the first standby could only be copied (no backup yet)"
        c.sql(m, "CREATE TABLE t (id int primary key)")
        c.sql(m, "INSERT INTO t SELECT generate_series(1, 50)")
        out = c.ctl("backup", "create").stdout
        assert " completed " in out
        status = c.ctl("status").stdout
        assert "=== Backups ===" in status and "Method: directory" in status
        assert "completed, requested by stolonctl" in status
        c.sql(m, "INSERT INTO t SELECT generate_series(51, 100)")
        c.switch_and_wait_archived(m)

        proc = c.lc.processes[standby]
        proc.stop(30)
        shutil.rmtree(c.lc.base / "keepers" / standby)
        c.ctl("removekeeper", standby)
        proc.start()
        wait_for(f"{standby} restored from the backup", lambda: "restored in" in proc.output(), 180)
        c.sql(m, "INSERT INTO t SELECT generate_series(101, 150)")
        wait_for(f"row 150 streamed to {standby}", lambda: 150 in c.ids(standby), 180)
        assert c.ids(standby) == list(range(1, 151))
        assert c.sql(standby, "SELECT pg_is_in_recovery()")[0][0] is True
        assert isinstance(c, Cluster)


def test_archiving_failures_are_visible(repository: Path) -> None:
    """A repository PostgreSQL can't write: the failures show in `stolonctl status` (text and
    JSON) and stop once it is writable again."""
    import json
    import os

    from stolon.testing.backup_cluster import _running, _workspace, wait_for

    spec = {"backup": {"method": "directory", "settings": {"path": str(repository)}}}
    with _workspace() as base, _running(base / "c", spec, 1, None) as c:
        m = c.master()
        c.switch_and_wait_archived(m)

        def archiving() -> dict[str, object] | None:
            st = json.loads(c.ctl("status", "-f", "json").stdout)
            rows = (st.get("backup") or {}).get("archiving") or []
            return next((r for r in rows if r["keeper"] == m), None)

        before = wait_for("the archiving state in stolonctl status", archiving, 30, 1.0)
        assert before["failed_count"] == 0, before
        wal = repository / "wal"
        os.chmod(wal, 0o500)  # the PostgreSQL user can't add files any more
        try:
            c.sql(m, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS id")  # WAL to switch away from
            (failing,) = c.sql(m, "SELECT pg_walfile_name(pg_switch_wal())")[0]

            def failures() -> dict[str, object] | None:
                row = archiving()
                return row if row is not None and int(str(row["failed_count"])) > 0 else None

            row = wait_for("an archiving failure in stolonctl status", failures, 120, 1.0)
            assert str(row["last_failed_wal"]) >= failing
            text = c.ctl("status").stdout
            assert "LAST FAILED WAL" in text and str(row["last_failed_wal"]) in text
        finally:
            os.chmod(wal, 0o700)
        c.switch_and_wait_archived(m)
