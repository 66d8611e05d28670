"""plan() with a backup method: archive settings on every instance, the archive as a WAL
source for standbys, initMode pitr from a backup, standbys restored from a backup."""

from __future__ import annotations

import json

from stolon.keeper import pgconfig
from stolon.keeper import plan as p
from stolon.keeper.pgconfig import BackupCommands
from stolon.model import ClusterData
from stolon.model.spec import FromBackup, PITRConfig, RecoveryTargetSettings
from stolon.postgres.recovery import RecoveryMode

from .test_plan import ME, add_db, cd, facts, kinds, master_cluster

CMDS = BackupCommands("directory", "arch %p", "rest %f %p")
SECTION = {"method": "directory", "settings": {"path": "/repo"}}


def test_master_archives_with_the_method() -> None:
    c = master_cluster(backup=SECTION)
    pl = p.plan(c, ME, facts(backup=CMDS, pg_running=False))
    start = pl.steps[0]
    assert isinstance(start, p.StartPostgres)
    assert start.config.parameters["archive_mode"] == "always"
    assert start.config.parameters["archive_command"] == "arch %p"
    # without the method's commands (no section, or the method can't be used): no archiving
    pl = p.plan(c, ME, facts(pg_running=False))
    start = pl.steps[0]
    assert isinstance(start, p.StartPostgres) and "archive_mode" not in start.config.parameters


def test_standby_fetches_wal_from_the_archive() -> None:
    c = master_cluster(backup=SECTION)
    me1 = pgconfig.KeeperIdentity(**{**ME.__dict__, "uid": "k1"})
    pl = p.plan(
        c, me1, facts(boot_uuid="boot-1", db_uid="db1", local_role="standby", pg_running=False, backup=CMDS)
    )
    start = pl.steps[0]
    assert isinstance(start, p.StartPostgres)
    rec = start.config.recovery
    assert rec.mode is RecoveryMode.STANDBY
    assert rec.parameters["restore_command"] == "rest %f %p"
    assert start.config.parameters["archive_mode"] == "always"  # standbys archive too


def test_user_archive_parameters_are_overridden() -> None:
    c = master_cluster(backup=SECTION)
    assert c.dbs is not None and c.dbs["db0"].spec is not None
    c.dbs["db0"].spec.pg_parameters = {"archive_mode": "off", "archive_command": "/bin/true"}
    pl = p.plan(c, ME, facts(backup=CMDS, pg_running=False))
    start = pl.steps[0]
    assert isinstance(start, p.StartPostgres)
    assert (start.config.parameters["archive_mode"], start.config.parameters["archive_command"]) == (
        "always",
        "arch %p",
    )


def pitr_cluster(from_backup: FromBackup, **spec: object) -> ClusterData:
    c = cd(**spec)
    pitr = PITRConfig(
        from_backup=from_backup,
        recovery_target_settings=RecoveryTargetSettings(recovery_target_time="2026-12-01 10:00:00+00"),
    )
    add_db(c, "dbp", "k0", "master", init_mode="pitr", pitr_config=pitr)
    return c


def test_pitr_from_a_backup() -> None:
    c = pitr_cluster(FromBackup(backup_id="B1"), backup=SECTION)
    pl = p.plan(
        c, ME, facts(db_uid="", pg_running=False, pg_initialized=False, pitr_restore_command="get %f %p")
    )
    assert kinds(pl) == ["BeginInit", "InitPITR", "FinishInit"]
    step = pl.steps[1]
    assert isinstance(step, p.InitPITR) and step.wait_recovery
    assert step.backup_source == p.BackupSource(
        method="directory",
        settings_json=json.dumps({"path": "/repo"}),
        backup_id="B1",
        target_kind="time",
        target_value="2026-12-01 10:00:00+00",
    )
    assert step.recovery.parameters == {
        "restore_command": "get %f %p",
        "recovery_target_time": "2026-12-01 10:00:00+00",
        "recovery_target_action": "promote",
    }


def test_pitr_from_another_repository() -> None:
    own = FromBackup(method="other", settings={"bucket": "old"})
    c = pitr_cluster(own, backup=SECTION)
    pl = p.plan(c, ME, facts(db_uid="", pg_running=False, pg_initialized=False, pitr_restore_command="x"))
    step = pl.steps[1]
    assert isinstance(step, p.InitPITR) and step.backup_source is not None
    assert (step.backup_source.method, step.backup_source.settings_json) == ("other", '{"bucket": "old"}')
    assert step.backup_source.backup_id == "latest"


def test_pitr_method_unusable_fails_with_the_reason() -> None:
    c = pitr_cluster(FromBackup(), backup=SECTION)
    pl = p.plan(c, ME, facts(db_uid="", pg_running=False, pitr_error="unknown backup method 'x'"))
    assert kinds(pl) == ["Fail"]
    assert "unknown backup method 'x'" in pl.steps[0].message  # type: ignore[union-attr]


def test_resync_restores_from_a_backup_when_asked() -> None:
    for restore_standbys, commands, want in ((True, CMDS, True), (False, CMDS, False), (True, None, False)):
        c = cd(backup={**SECTION, "restoreStandbys": restore_standbys})
        add_db(c, "db1", "k1", "master", followers=["db2"], address="10.0.0.2")
        add_db(c, "db2", "k0", "standby", init_mode="resync", follows="db1")
        pl = p.plan(c, ME, facts(db_uid="db0", pg_running=False, backup=commands))
        step = pl.steps[1]
        assert isinstance(step, p.Resync)
        assert step.from_backup is want
        assert step.source_system_id == "7000"


def test_from_backup_method_defaults() -> None:
    from stolon.model.spec import BackupSpec

    section = BackupSpec(method="walg", settings={"prefix": "a"})
    assert pgconfig.from_backup_method(FromBackup(), section) == ("walg", {"prefix": "a"})
    assert pgconfig.from_backup_method(FromBackup(settings={"prefix": "b"}), section) == (
        "walg",
        {"prefix": "b"},
    )
    assert pgconfig.from_backup_method(FromBackup(method="barman"), section) == ("barman", None)
    assert pgconfig.from_backup_method(FromBackup(method="walg"), section) == ("walg", {"prefix": "a"})


def test_recovery_target_of() -> None:
    assert pgconfig.recovery_target_of(None) == ("latest", "")
    assert pgconfig.recovery_target_of(RecoveryTargetSettings(recovery_target_lsn="0/1")) == ("lsn", "0/1")
    assert pgconfig.recovery_target_of(RecoveryTargetSettings(recovery_target="immediate")) == (
        "immediate",
        "",
    )
    assert pgconfig.recovery_target_of(RecoveryTargetSettings(recovery_target_name="rp")) == ("name", "rp")
