"""A keeper managing a real PostgreSQL: init, replication, promotion, rejoin."""

from __future__ import annotations

import os

import psycopg
import pytest

from stolon.model import ClusterSpec

from .conftest import PG_VERSIONS
from .harness import KeeperProc, TestCluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("logs_on_failure")]

FAST = {"sleepInterval": "1s", "requestTimeout": "5s", "failInterval": "5s", "initMode": "new"}


def spec(**extra: object) -> ClusterSpec:
    return ClusterSpec.from_obj({**FAST, **extra})


@pytest.mark.parametrize("cluster", PG_VERSIONS, indirect=True)
def test_master_init_and_standby_resync(cluster: TestCluster) -> None:
    s = cluster.sentinel
    s.init(spec())
    scram = ("--pg-su-auth-method", "scram-sha-256", "--pg-repl-auth-method", "scram-sha-256")
    k0 = cluster.keeper("keeper0", *scram).start()
    k1 = cluster.keeper("keeper1", *scram).start()
    s.wait_keeper("keeper0")
    s.wait_keeper("keeper1")
    s.set_db("db0", "keeper0", role="master", init_mode="new")
    s.wait_converged("db0")
    assert k0.query("select pg_is_in_recovery()") == [(False,)]
    # SCRAM end to end: hba method, password_encryption, stored verifiers
    assert k0.query("show password_encryption") == [("scram-sha-256",)]
    verifiers = k0.query(
        "select rolname, left(rolpassword, 14) from pg_authid where rolname like 'stolon%' order by 1"
    )
    assert verifiers == [("stolon_repl", "SCRAM-SHA-256$"), ("stolon_su", "SCRAM-SHA-256$")]
    k0.query("create table t(id int primary key)")
    k0.query("insert into t values (1)")
    # a standby: the master gets the follower (its slot), the standby resyncs from it
    s.set_db("db0", "keeper0", role="master", followers=["db1"])
    s.set_db("db1", "keeper1", role="standby", init_mode="resync", follows="db0")
    s.wait_converged("db1", timeout=120)
    wait_for("row replicated", lambda: k1.query("select count(*) from t") == [(1,)], 30)
    assert k1.query("select pg_is_in_recovery()") == [(True,)]
    slots = k0.query("select slot_name, active from pg_replication_slots")
    assert ("stolon_db1", True) in slots
    # the standby reports its state; the keeper never publishes passwords
    info = s.infos()["keeper1"]
    assert info.postgres_state is not None and info.postgres_state.healthy
    raw = cluster.store.backend.get_infos(
        __import__("stolon.store.base", fromlist=["InfoKind"]).InfoKind.KEEPER
    )
    for data in raw.values():
        assert b"secret" not in data


def test_kill_9_of_the_keeper_stops_postgres(cluster: TestCluster) -> None:
    s = cluster.sentinel
    s.init(spec())
    k0 = cluster.keeper("keeper0").start()
    s.wait_keeper("keeper0")
    s.set_db("db0", "keeper0", role="master", init_mode="new")
    s.wait_converged("db0")
    pid = k0.postmaster_pid()
    assert pid is not None
    os.kill(pid, 0)
    k0.kill()  # SIGKILL

    def gone() -> bool:
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True

    wait_for("postmaster gone after the keeper was killed", gone, 30)
    with pytest.raises(psycopg.OperationalError):
        k0.connect()


def _master_standby(cluster: TestCluster, **spec_extra: object) -> tuple[KeeperProc, KeeperProc]:
    s = cluster.sentinel
    s.init(spec(**spec_extra))
    k0 = cluster.keeper("keeper0").start()
    k1 = cluster.keeper("keeper1").start()
    s.wait_keeper("keeper0")
    s.wait_keeper("keeper1")
    s.set_db("db0", "keeper0", role="master", init_mode="new", followers=["db1"])
    s.wait_converged("db0")
    s.set_db("db1", "keeper1", role="standby", init_mode="resync", follows="db0")
    s.wait_converged("db1", timeout=120)
    k0.query("create table t(id int primary key)")
    k0.query("insert into t values (1)")
    wait_for("row 1 on the standby", lambda: k1.query("select count(*) from t") == [(1,)], 30)
    return k0, k1


@pytest.mark.parametrize("cluster", PG_VERSIONS, indirect=True)
@pytest.mark.parametrize("use_pgrewind", [True, False], ids=["pg_rewind", "basebackup"])
def test_promote_then_old_master_rejoins(cluster: TestCluster, use_pgrewind: bool) -> None:
    s = cluster.sentinel
    k0, k1 = _master_standby(cluster, usePgrewind=use_pgrewind)
    # the master goes away; the standby is promoted by a cluster data change
    boot0 = s.infos()["keeper0"].boot_uuid
    assert k0.stop() == 0
    s.set_db("db1", "keeper1", role="master")
    s.wait_converged("db1")
    wait_for("db1 promoted", lambda: k1.query("select pg_is_in_recovery()") == [(False,)], 30)
    k1.query("insert into t values (2)")
    # the old master restarts: it must not start PostgreSQL before the sentinel saw it
    k0.start()
    waiting = "boot UUID is different than the cluster data one"
    wait_for("two keeper cycles waiting for the sentinel", lambda: k0.output().count(waiting) >= 2, 60)
    assert k0.postmaster_pid() is None
    # the sentinel gives it a new DB that resyncs from the new master
    s.drop_db("db0")
    s.set_db("db1", "keeper1", role="master", followers=["db2"])
    s.set_db("db2", "keeper0", role="standby", init_mode="resync", follows="db1")
    s.wait_keeper("keeper0", not_boot=boot0)
    s.wait_converged("db2", timeout=120)
    wait_for("two rows on the old master", lambda: k0.query("select count(*) from t") == [(2,)], 60)
    assert k0.query("select pg_is_in_recovery()") == [(True,)]
    out = k0.output()
    if use_pgrewind:
        assert "running pg_rewind" in out and "pg_rewind succeeded" in out
        assert "running pg_basebackup" not in out
    else:
        assert "running pg_basebackup" in out and "running pg_rewind" not in out
    # timeline 2 after the promotion, reported by both
    wait_for("db2 reports timeline 2", lambda: (s.sync().dbs or {})["db2"].status.timeline_id == 2, 20)


def test_keeper_restart_keeps_its_db(cluster: TestCluster) -> None:
    s = cluster.sentinel
    s.init(spec())
    k0 = cluster.keeper("keeper0").start()
    s.wait_keeper("keeper0")
    s.set_db("db0", "keeper0", role="master", init_mode="new")
    s.wait_converged("db0")
    k0.query("create table t(id int)")
    pid = k0.postmaster_pid()
    boot = s.infos()["keeper0"].boot_uuid
    assert k0.stop() == 0  # SIGTERM stops PostgreSQL cleanly
    assert pid is not None and k0.postmaster_pid() is None
    k0.start()
    s.wait_keeper("keeper0", not_boot=boot)  # registers the new boot UUID
    wait_for("db0 served again", lambda: k0.query("select count(*) from t") == [(0,)], 60)
    assert "initializing the database cluster" not in k0.output().split("keeper uid keeper0")[-1]
    # a second keeper on the same data dir is refused; so is a different uid
    other = cluster.keeper("keeper0b")
    other.data_dir = k0.data_dir
    other.start()
    assert other.proc is not None and other.proc.wait(30) != 0
    assert "cannot take exclusive lock on data dir" in other.output()
    k0.stop()
    other2 = cluster.keeper("keeper0c")
    other2.data_dir = k0.data_dir
    other2.start()
    assert other2.proc is not None and other2.proc.wait(30) != 0
    assert "saved uid 'keeper0' differs from configuration uid: 'keeper0c'" in other2.output()


@pytest.mark.parametrize("cluster", PG_VERSIONS, indirect=True)
def test_parameters_hba_alter_system_and_slots(cluster: TestCluster) -> None:
    s = cluster.sentinel
    s.init(spec())
    k0 = cluster.keeper("keeper0").start()
    s.wait_keeper("keeper0")
    s.set_db("db0", "keeper0", role="master", init_mode="new")
    s.wait_converged("db0")
    k0.query("create role u1 login password 'u1pass'")
    assert k0.query("show work_mem") == [("4MB",)]
    # parameter change: reload
    s.spec(pg_parameters={"work_mem": "8MB", "shared_buffers": "32MB"})
    s.set_db("db0", "keeper0", role="master")
    s.wait_converged("db0")
    wait_for("work_mem reloaded", lambda: k0.query("show work_mem") == [("8MB",)], 20)
    assert "postgres parameters changed, reloading postgres instance" in k0.output()
    # shared_buffers needs a restart: not done without automaticPgRestart
    assert k0.query("show shared_buffers") == [("128MB",)]
    assert k0.query("select pending_restart from pg_settings where name = 'shared_buffers'") == [(True,)]
    s.spec(automatic_pg_restart=True)
    s.set_db("db0", "keeper0", role="master")
    wait_for("restarted with shared_buffers", lambda: k0.query("show shared_buffers") == [("32MB",)], 30)
    # ALTER SYSTEM is blocked
    with pytest.raises(psycopg.Error):
        k0.query("alter system set work_mem = '1MB'")
    # HBA: the default lets u1 in; an empty list lets only the keeper's users in
    with k0.connect("u1", "u1pass"):
        pass
    s.spec(pg_hba=[])
    s.set_db("db0", "keeper0", role="master")
    s.wait_converged("db0")

    def refused() -> bool:
        try:
            with k0.connect("u1", "u1pass"):
                return False
        except psycopg.OperationalError as e:
            return "no pg_hba.conf entry" in str(e)

    wait_for("u1 refused with pgHBA []", refused, 20)
    assert "postgres hba entries changed, reloading postgres instance" in k0.output()
    # slots: additional slots are stolon_ prefixed; only stolon_ slots are managed
    k0.query("select pg_create_physical_replication_slot('manualslot')")
    k0.query("select pg_create_physical_replication_slot('stolon_manual')")
    s.spec(additional_master_replication_slots=["replslot01", "replslot02"])
    s.set_db("db0", "keeper0", role="master")

    def slot_names() -> set[str]:
        return {r[0] for r in k0.query("select slot_name from pg_replication_slots")}

    wait_for(
        "additional slots",
        lambda: slot_names() == {"manualslot", "stolon_replslot01", "stolon_replslot02"},
        20,
    )
    s.spec(additional_master_replication_slots=["replslot01"])
    s.set_db("db0", "keeper0", role="master")
    wait_for("slot dropped", lambda: slot_names() == {"manualslot", "stolon_replslot01"}, 20)


def test_sync_guard_after_master_restart(cluster: TestCluster) -> None:
    s = cluster.sentinel
    k0, k1 = _master_standby(cluster, synchronousReplication=True)
    s.set_db(
        "db0",
        "keeper0",
        role="master",
        followers=["db1"],
        synchronous_standbys=["db1"],
        external_synchronous_standbys=[],
    )
    s.wait_converged("db0")
    wait_for("db1 in sync", lambda: k0.query("select sync_state from pg_stat_replication") == [("sync",)], 30)
    k0.query("create role u1 login password 'u1pass'")
    with k0.connect("u1", "u1pass"):
        pass
    # the standby goes away; the master restarts: only the keeper's users may connect
    boot = s.infos()["keeper0"].boot_uuid
    k1.stop()
    k0.stop()
    k0.start()
    s.wait_keeper("keeper0", not_boot=boot)

    def up_for_su() -> bool:
        return bool(k0.query("select 1") == [(1,)])

    wait_for("master up again", up_for_su, 60)
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        k0.connect("u1", "u1pass")
    assert "not allowing connection as normal users since synchronous replication is enabled" in k0.output()
    # the standby comes back and is in sync: normal users are allowed again
    boot1 = s.infos()["keeper1"].boot_uuid
    k1.start()
    s.wait_keeper("keeper1", not_boot=boot1)

    def u1_allowed() -> bool:
        s.sync()
        with k0.connect("u1", "u1pass"):
            return True

    wait_for("u1 allowed once the standby is in sync", u1_allowed, 90)


def test_existing_and_pitr_init(cluster: TestCluster) -> None:
    s = cluster.sentinel
    archive = cluster.sandbox.dir("archive")
    os.chown(archive, __import__("pwd").getpwnam("postgres").pw_uid, -1)
    s.init(spec(pgParameters={"archive_mode": "on", "archive_command": f"cp %p {archive}/%f"}))
    k0 = cluster.keeper("keeper0").start()
    k1 = cluster.keeper("keeper1").start()
    s.wait_keeper("keeper0")
    s.wait_keeper("keeper1")
    s.set_db("db0", "keeper0", role="master", init_mode="new")
    s.wait_converged("db0")
    k0.query("create table t(id int)")
    k0.query("insert into t values (7)")
    # existing: a new DB on the same keeper keeps the data
    s.set_db("db0", "keeper0", role="master", init_mode="existing")
    s.drop_db("db0")
    s.set_db("dbx", "keeper0", role="master", init_mode="existing")
    s.wait_converged("dbx")
    assert k0.query("select id from t") == [(7,)]
    # pitr: a base backup of keeper0 restored on keeper1 with the archived WAL
    backup = cluster.sandbox.dir("backup")
    os.chown(backup, __import__("pwd").getpwnam("postgres").pw_uid, -1)
    subprocess_run = __import__("subprocess").run
    subprocess_run(
        ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_basebackup", "-D", str(backup),
         "-Ft", "-X", "none", "-h", "127.0.0.1", "-p", str(k0.port), "-U", "stolon_repl", "--no-password"],
        env={**os.environ, "PGPASSWORD": "repl-secret-2"}, check=True, timeout=120,
    )  # fmt: skip
    k0.query("insert into t values (8)")
    k0.query("select pg_switch_wal()")
    wait_for(
        "wal archived", lambda: k0.query("select archived_count > 0 from pg_stat_archiver") == [(True,)], 30
    )
    from stolon.model.spec import ArchiveRecoverySettings, PITRConfig

    pitr = PITRConfig(
        data_restore_command=f"tar xf {backup}/base.tar -C %d",
        archive_recovery_settings=ArchiveRecoverySettings(restore_command=f"cp {archive}/%f %p"),
    )
    s.set_db("dbp", "keeper1", role="master", init_mode="pitr", pitr_config=pitr)
    s.wait_converged("dbp", timeout=120)
    assert k1.query("select id from t order by id") == [(7,), (8,)]
    assert k1.query("select pg_is_in_recovery()") == [(False,)]
    assert "restoring the database cluster" in k1.output()


def test_bad_flags_exit_with_one_line(cluster: TestCluster) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "stolon.cli.keeper", "--cluster-name", "c", "--store-backend", "embedded",
         "--store-endpoints", "/tmp/x.db", "--pg-listen-address", "127.0.0.1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "stolon-keeper: data dir required: set --data-dir"
