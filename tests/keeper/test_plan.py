"""The keeper's pure plan(): a parametrized table (cluster data, local facts -> steps), then one
test per story that needs more than the steps' kinds. No PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from stolon.keeper import pgconfig
from stolon.keeper import plan as p
from stolon.keeper.pgconfig import DesiredConfig, KeeperIdentity
from stolon.model import DB, Cluster, ClusterData, ClusterSpec, DBSpec, FollowConfig, Keeper, KeeperStatus
from stolon.model.spec import StandbySettings
from stolon.postgres.credentials import AuthMethod
from stolon.postgres.recovery import NO_RECOVERY, RecoveryMode

ME = KeeperIdentity(
    uid="k0", listen_address="10.0.0.1", port=5432, socket_dir="/run/k0",
    su_username="su", su_auth=AuthMethod.MD5, repl_username="repl", repl_auth=AuthMethod.MD5,
    repl_password="pw",
)  # fmt: skip
BOOT = "boot-0"


def cd(**spec: Any) -> ClusterData:
    c = ClusterData.new(Cluster.new(ClusterSpec.from_obj({"initMode": "new", **spec})))
    assert c.keepers is not None
    c.keepers["k0"] = Keeper(uid="k0", status=KeeperStatus(healthy=True, boot_uuid=BOOT))
    c.keepers["k1"] = Keeper(uid="k1", status=KeeperStatus(healthy=True, boot_uuid="boot-1"))
    return c


def add_db(c: ClusterData, uid: str, keeper: str, role: str, *, init_mode: str = "none", follows: str = "",
           followers: list[str] | None = None, address: str = "", **spec: Any) -> DB:  # fmt: skip
    assert c.dbs is not None and c.cluster is not None
    db = DB(
        uid=uid, generation=2,
        spec=DBSpec(keeper_uid=keeper, role=role, init_mode=init_mode, max_standbys=20, additional_wal_senders=5,
                    follow_config=FollowConfig(type="internal", dbuid=follows) if follows else None,
                    followers=followers or [], **spec),
    )  # fmt: skip
    if address:
        db.status.listen_address, db.status.port = address, "5432"
        db.status.system_id = "7000"
        db.status.current_generation = db.generation
    c.dbs[uid] = db
    if role == "master":
        c.cluster.status.master = uid
    return db


def facts(**kw: Any) -> p.LocalFacts:
    base: dict[str, Any] = dict(
        boot_uuid=BOOT, db_uid="db0", db_generation=2, initializing=False, init_parameters=None, pg_major=15,
        pg_initialized=True, pg_running=True, local_role="master", local_system_id="7000", applied=None,
    )  # fmt: skip
    base.update(kw)
    return p.LocalFacts(**base)


def kinds(plan: p.Plan) -> list[str]:
    return [type(s).__name__ for s in plan.steps]


def master_cluster(**spec: Any) -> ClusterData:
    c = cd(**spec)
    add_db(c, "db0", "k0", "master", followers=["db1"], address="10.0.0.1")
    add_db(c, "db1", "k1", "standby", follows="db0", address="10.0.0.2")
    return c


def applied_for(c: ClusterData, f: p.LocalFacts, **kw: Any) -> DesiredConfig:
    db = c.db_of_keeper("k0")
    assert db is not None
    d = DesiredConfig(
        pgconfig.db_parameters(db, c, ME, pg_major=15, init_parameters=None),
        pgconfig.db_hba(db, c, ME),
        pgconfig.db_recovery(db, c, ME),
    )
    return replace(d, **kw)


def _keeper_unknown() -> ClusterData:
    c = cd()
    assert c.keepers is not None
    del c.keepers["k0"]
    return c


def _resync_from_db_without_address() -> ClusterData:
    c = cd()
    add_db(c, "db1", "k1", "master", followers=["db2"])
    add_db(c, "db2", "k0", "standby", init_mode="resync", follows="db1")
    return c


#: (what, cluster data, local facts, expected step kinds, text of the first step's message)
PLAN_KINDS: list[Any] = [
    pytest.param(lambda: None, {}, ["Wait"], "no cluster data available", id="no cluster data: wait"),
    pytest.param(
        _keeper_unknown,
        {},
        ["Wait"],
        "our keeper data is not available",
        id="keeper unknown to the sentinel: wait, PostgreSQL left alone",
    ),
    pytest.param(cd, {}, ["StopPostgres"], "", id="no db assigned: stop a running PostgreSQL"),
    pytest.param(cd, {"pg_running": False}, ["Wait"], "", id="no db assigned, PostgreSQL stopped: wait"),
    pytest.param(
        master_cluster,
        {"boot_uuid": "boot-new"},
        ["StopPostgres", "Wait"],
        "",
        id="the sentinel has not seen this boot: stop and wait",
    ),
    pytest.param(
        master_cluster,
        {"boot_uuid": "boot-new", "pg_running": False},
        ["Wait"],
        "",
        id="the sentinel has not seen this boot, PostgreSQL stopped: wait",
    ),
    pytest.param(
        master_cluster,
        {"initializing": True},
        ["CleanFailedInit"],
        "",
        id="an init that crashed is cleaned first",
    ),
    pytest.param(
        _resync_from_db_without_address,
        {"db_uid": ""},
        ["Wait"],
        "",
        id="resync from a db that has not reported its address: wait",
    ),
    pytest.param(
        master_cluster,
        {"db_uid": ""},
        ["Fail"],
        "init mode is none",
        id="lost keeper data with init mode none: refuse (manual intervention)",
    ),
]


@pytest.mark.parametrize(("cluster", "local", "want", "message"), PLAN_KINDS)
def test_plan_steps(
    cluster: Callable[[], ClusterData | None], local: dict[str, Any], want: list[str], message: str
) -> None:
    pl = p.plan(cluster(), ME, facts(**local))
    assert kinds(pl) == want
    if message:
        assert message in pl.steps[0].message  # type: ignore[union-attr]
    if want == ["CleanFailedInit"]:
        assert pl.initializes


def test_init_mode_new_begins_runs_initdb_and_finishes() -> None:
    """Init mode new: begin, initdb, finish."""
    c = cd()
    add_db(c, "dbn", "k0", "master", init_mode="new", include_previous_config=True)
    pl = p.plan(c, ME, facts(db_uid="", pg_running=True))
    assert kinds(pl) == ["BeginInit", "StopPostgres", "InitNew", "FinishInit"] and pl.initializes
    init = pl.steps[2]
    assert isinstance(init, p.InitNew) and init.include_previous and init.config.recovery == NO_RECOVERY


def test_init_mode_pitr_restores_with_archive_recovery_and_targets() -> None:
    """Init mode pitr: restore with archive recovery and targets."""
    c = cd()
    from stolon.model.spec import ArchiveRecoverySettings, PITRConfig, RecoveryTargetSettings

    pitr = PITRConfig(
        data_restore_command="tar xf b.tar -C %d",
        archive_recovery_settings=ArchiveRecoverySettings(restore_command="cp /a/%f %p"),
        recovery_target_settings=RecoveryTargetSettings(recovery_target_time="2026-01-01 00:00:00"),
    )
    add_db(c, "dbp", "k0", "master", init_mode="pitr", pitr_config=pitr)
    pl = p.plan(c, ME, facts(db_uid="", pg_running=False, pg_initialized=False))
    assert kinds(pl) == ["BeginInit", "InitPITR", "FinishInit"]
    step = pl.steps[1]
    assert isinstance(step, p.InitPITR) and step.wait_recovery
    assert step.recovery.mode is RecoveryMode.RECOVERY
    assert step.recovery.parameters == {
        "restore_command": "cp /a/%f %p",
        "recovery_target_time": "2026-01-01 00:00:00",
        "recovery_target_action": "promote",
    }


def test_init_mode_existing_is_not_marked_initializing() -> None:
    """Init mode existing: not marked initializing (the data must not be wiped on a crash)."""
    c = cd()
    add_db(c, "dbe", "k0", "master", init_mode="existing")
    pl = p.plan(c, ME, facts(db_uid="old", pg_running=False))
    assert kinds(pl) == ["BeginInit", "InitExisting", "FinishInit"]
    begin = pl.steps[0]
    assert isinstance(begin, p.BeginInit) and not begin.initializing


def test_resync_tries_pg_rewind_when_allowed_and_the_system_ids_match() -> None:
    """Resync: pg_rewind tried when allowed and the system ids match."""
    c = cd(usePgrewind=True)
    add_db(c, "db1", "k1", "master", followers=["db2"], address="10.0.0.2")
    add_db(c, "db2", "k0", "standby", init_mode="resync", follows="db1", use_pgrewind=True)
    pl = p.plan(c, ME, facts(db_uid="db0", local_system_id="7000", pg_running=False))
    assert kinds(pl) == ["BeginInit", "Resync", "FinishInit"]
    step = pl.steps[1]
    assert isinstance(step, p.Resync) and step.try_rewind and step.source_host == "10.0.0.2"
    assert step.config.recovery.parameters["primary_slot_name"] == "stolon_db2"
    # another system id, or usePgrewind off: straight to pg_basebackup
    pl = p.plan(c, ME, facts(db_uid="db0", local_system_id="9999", pg_running=False))
    assert isinstance(pl.steps[1], p.Resync) and not pl.steps[1].try_rewind
    # the source has not applied the generation that lists us as follower: no slot yet
    (c.dbs or {})["db1"].generation += 1
    pl = p.plan(c, ME, facts(db_uid="db0", pg_running=False))
    assert kinds(pl) == ["Wait"] and "replication slot of db db2" in pl.steps[0].message  # type: ignore[union-attr]


def test_resync_or_follow_a_db_whose_address_is_not_an_address_waits() -> None:
    """Resync or follow a db whose stored address is not an address: wait (issue 10 item 9)."""
    for bad in ("10.0.0.3/32 trust\nhost all all 0.0.0.0/0 trust #", "a b", "10.0.0.1 port=1"):
        c = cd()
        add_db(c, "db1", "k1", "master", followers=["db2"], address=bad)
        add_db(c, "db2", "k0", "standby", init_mode="resync", follows="db1")
        pl = p.plan(c, ME, facts(db_uid=""))
        assert kinds(pl) == ["Wait"] and "unusable address" in pl.steps[0].message  # type: ignore[union-attr]
        assert "\n" not in pl.steps[0].message  # type: ignore[union-attr]
        c = cd()
        add_db(c, "db1", "k1", "master", followers=["db0"], address=bad)
        add_db(c, "db0", "k0", "standby", follows="db1", address="10.0.0.1")
        pl = p.plan(c, ME, facts(local_role="standby"))
        assert kinds(pl) == ["Wait"] and "unusable address" in pl.steps[0].message  # type: ignore[union-attr]


def test_master_not_running_starts_then_checks_restart_slots_generation() -> None:
    """Master not running: start, restart check, slots, generation."""
    pl = p.plan(master_cluster(), ME, facts(pg_running=False))
    assert kinds(pl) == ["StartPostgres", "CheckRestart", "RefreshSlots", "SaveGeneration"]
    assert pl.converges and pl.target_role == "master"
    slots = pl.steps[2]
    assert isinstance(slots, p.RefreshSlots) and slots.wanted == {"stolon_db1"}


def test_standby_promoted_with_recovery_removed() -> None:
    """Standby promoted: promote with recovery removed."""
    pl = p.plan(master_cluster(), ME, facts(local_role="standby"))
    assert "Promote" in kinds(pl)
    promote = next(s for s in pl.steps if isinstance(s, p.Promote))
    assert promote.config.recovery == NO_RECOVERY


def test_synchronous_master_starts_with_the_guard_on() -> None:
    """Synchronous master starting: guard on, only the keeper's users in pg_hba."""
    c = master_cluster(synchronousReplication=True)
    db0 = c.db_of_keeper("k0")
    assert db0 is not None and db0.spec is not None
    db0.spec.synchronous_replication = True
    db0.spec.synchronous_standbys = ["db1"]
    pl = p.plan(c, ME, facts(pg_running=False))
    assert kinds(pl)[:2] == ["SetSyncGuard", "StartPostgres"]
    start = pl.steps[1]
    assert isinstance(start, p.StartPostgres)
    assert not any("all all" in e for e in start.config.hba)
    assert (
        start.config.parameters["synchronous_standbys_names" if False else "synchronous_standby_names"]
        == "stolon_db1"
    )
    # running, guard on, db1 reported in sync: guard off (and pg_hba reloaded)
    f = facts(sync_guard=True, in_sync_standbys=("db1",))
    f = replace(f, applied=applied_for(c, f, hba=start.config.hba))
    pl = p.plan(c, ME, f)
    assert kinds(pl)[0] == "SetSyncGuard" and not pl.steps[0].on  # type: ignore[union-attr]
    assert any(isinstance(s, p.Reload) and "hba" in s.reason for s in pl.steps)
    # not yet in sync: guard stays
    pl = p.plan(c, ME, facts(sync_guard=True, in_sync_standbys=()))
    assert "SetSyncGuard" not in kinds(pl)


def test_old_master_given_a_standby_role_is_never_demoted_in_place() -> None:
    """An old master given a standby role is never demoted in place."""
    c = cd()
    add_db(c, "db1", "k1", "master", followers=["db0"], address="10.0.0.2")
    add_db(c, "db0", "k0", "standby", follows="db1")
    pl = p.plan(c, ME, facts(local_role="master"))
    assert kinds(pl) == ["Fail"] and "cannot move from master role to standby role" in pl.steps[0].message  # type: ignore[union-attr]


def test_followed_master_moved_reload_on_13_restart_before() -> None:
    """The followed master moved: PostgreSQL 13+ reloads primary_conninfo, older versions restart."""
    c = cd()
    add_db(c, "db1", "k1", "master", followers=["db0"], address="10.0.0.2")
    add_db(c, "db0", "k0", "standby", follows="db1")
    f = facts(local_role="standby")
    old = applied_for(c, f)
    (c.dbs or {})["db1"].status.port = "6543"
    pl = p.plan(c, ME, replace(f, applied=old))
    assert "Restart" not in kinds(pl)
    reload = next(s for s in pl.steps if isinstance(s, p.Reload))
    assert "recovery parameters changed" in reload.reason
    assert "port=6543" in reload.config.recovery.parameters["primary_conninfo"]
    pl = p.plan(c, ME, replace(f, applied=old, pg_major=12))
    assert "Restart" in kinds(pl)


@pytest.mark.parametrize(
    ("listed", "master_generation_applied", "moves", "waits"),
    [
        (True, False, True, True),  # re-pointed, the new master has not created our slot yet
        (True, True, True, False),  # it applied the generation that lists us: slot there
        (False, False, True, False),  # not listed: no generation to wait for
        (True, False, False, False),  # not a move (same primary): nothing to wait for
    ],
)
def test_a_re_pointed_standby_waits_for_its_slot_on_the_new_master(
    listed: bool, master_generation_applied: bool, moves: bool, waits: bool
) -> None:
    """After a failover the standby follows the new master only once that master applied the
    generation listing it as a follower (its replication slot exists then): no
    "replication slot does not exist" and no wal_retrieve_retry_interval pause."""
    c = cd()
    old = add_db(c, "dbold", "k1", "master", address="10.0.0.9")
    new = add_db(c, "db1", "k1", "master", followers=["db0"] if listed else [], address="10.0.0.2")
    (c.keepers or {})["k1"].status.healthy = True
    add_db(c, "db0", "k0", "standby", follows="db1")
    f = facts(local_role="standby")
    applied = applied_for(c, f)
    if moves:
        before = cd()
        add_db(before, "dbold", "k1", "master", followers=["db0"], address="10.0.0.9")
        add_db(before, "db0", "k0", "standby", follows="dbold")
        applied = replace(applied, recovery=pgconfig.db_recovery((before.dbs or {})["db0"], before, ME))
    assert old.uid != new.uid
    if not master_generation_applied:
        new.status.current_generation = new.generation - 1
    pl = p.plan(c, ME, replace(f, applied=applied))
    if waits:
        assert kinds(pl) == ["Wait"]
        assert "waiting for db db1 to create the replication slot of db db0" in pl.steps[0].message  # type: ignore[union-attr]
    else:
        assert "Wait" not in kinds(pl)
        if moves:
            reload = next(s for s in pl.steps if isinstance(s, p.Reload))
            assert "host=10.0.0.2" in reload.config.recovery.parameters["primary_conninfo"]


def test_wal_retrieve_retry_interval_is_short_unless_the_user_sets_it() -> None:
    c = master_cluster()
    db0 = c.db_of_keeper("k0")
    assert db0 is not None and db0.spec is not None
    params = pgconfig.db_parameters(db0, c, ME, pg_major=15, init_parameters=None)
    assert params["wal_retrieve_retry_interval"] == pgconfig.DEFAULT_WAL_RETRIEVE_RETRY_INTERVAL == "1s"
    db0.spec.pg_parameters = {"wal_retrieve_retry_interval": "10s"}
    params = pgconfig.db_parameters(db0, c, ME, pg_major=15, init_parameters=None)
    assert params["wal_retrieve_retry_interval"] == "10s"


def test_parameters_changed_on_a_running_master_reload() -> None:
    """Parameters changed on a running master: reload; automaticPgRestart flows to CheckRestart."""
    c = master_cluster(automaticPgRestart=True)
    f = facts()
    old = applied_for(c, f)
    db0 = c.db_of_keeper("k0")
    assert db0 is not None and db0.spec is not None
    db0.spec.pg_parameters = {"work_mem": "8MB"}
    pl = p.plan(c, ME, replace(f, applied=old))
    assert kinds(pl) == ["Reload", "CheckRestart", "RefreshSlots", "SaveGeneration"]
    assert "postgres parameters changed" in pl.steps[0].reason  # type: ignore[union-attr]
    check = pl.steps[1]
    assert isinstance(check, p.CheckRestart) and check.automatic and not check.blockers
    # nothing changed: no reload
    pl = p.plan(c, ME, replace(f, applied=applied_for(c, f)))
    assert "Reload" not in kinds(pl)


def test_raising_max_connections_waits_for_the_standbys() -> None:
    """Raising max_connections: the master waits for its standbys to raise it first."""
    c = master_cluster(automaticPgRestart=True)
    dbs = c.dbs or {}
    dbs["db0"].spec.pg_parameters = {"max_connections": "200"}  # type: ignore[union-attr]
    dbs["db1"].status.healthy = True
    dbs["db1"].status.pg_parameters = {"max_connections": "100"}
    pl = p.plan(c, ME, facts())
    check = next(s for s in pl.steps if isinstance(s, p.CheckRestart))
    assert check.blockers and "db1 runs max_connections=100 < 200" in check.blockers[0]
    dbs["db1"].status.pg_parameters = {"max_connections": "200"}
    check = next(s for s in p.plan(c, ME, facts()).steps if isinstance(s, p.CheckRestart))
    assert not check.blockers


def test_standby_never_runs_below_its_primarys_hot_standby_parameters() -> None:
    """A standby never runs below its primary's hot-standby parameters."""
    c = cd()
    add_db(
        c,
        "db1",
        "k1",
        "master",
        followers=["db0"],
        address="10.0.0.2",
        pg_parameters={"max_connections": "50"},
    )
    add_db(c, "db0", "k0", "standby", follows="db1", pg_parameters={"max_connections": "50"})
    (c.dbs or {})["db1"].status.pg_parameters = {"max_connections": "300", "max_worker_processes": "16"}
    db0 = (c.dbs or {})["db0"]
    params = pgconfig.db_parameters(db0, c, ME, pg_major=15, init_parameters=None)
    assert params["max_connections"] == "300" and params["max_worker_processes"] == "16"


def test_standby_cluster_master_follows_the_external_primary() -> None:
    """Standby cluster master: follows the external primary from standbySettings."""
    c = cd(initMode="pitr", role="standby", pitrConfig={"dataRestoreCommand": "x"},
           standbyConfig={"standbySettings": {"primaryConninfo": "host=remote port=5432"}})  # fmt: skip
    db = add_db(c, "db0", "k0", "standby")
    assert db.spec is not None
    db.spec.follow_config = FollowConfig(
        type="external",
        standby_settings=StandbySettings(primary_conninfo="host=remote port=5432", primary_slot_name="s1"),
    )
    pl = p.plan(c, ME, facts(local_role="standby", pg_running=False))
    start = next(s for s in pl.steps if isinstance(s, p.StartPostgres))
    assert start.config.recovery.mode is RecoveryMode.STANDBY
    assert start.config.recovery.parameters["primary_conninfo"] == "host=remote port=5432"
    assert start.config.recovery.parameters["primary_slot_name"] == "s1"


def test_scram_users_and_slot_wal_retention() -> None:
    """SCRAM users: password_encryption set explicitly; slot WAL retention bounded."""
    me = replace(ME, su_auth=AuthMethod.SCRAM_SHA_256, repl_auth=AuthMethod.SCRAM_SHA_256)
    c = master_cluster()
    db0 = c.db_of_keeper("k0")
    assert db0 is not None
    params = pgconfig.db_parameters(db0, c, me, pg_major=15, init_parameters=None)
    assert params["password_encryption"] == "scram-sha-256"
    assert params["max_slot_wal_keep_size"] == pgconfig.DEFAULT_MAX_SLOT_WAL_KEEP_SIZE
    assert "password_encryption" not in pgconfig.db_parameters(db0, c, ME, pg_major=15, init_parameters=None)


def test_master_told_to_stop_shuts_down_cleanly_then_saves_the_generation() -> None:
    """Master told to stop (switchover): clean shutdown, then the generation; nothing else."""
    c = master_cluster(synchronousReplication=True)
    db0 = c.db_of_keeper("k0")
    assert db0 is not None and db0.spec is not None
    db0.spec.stopped = True
    db0.spec.synchronous_replication = True
    for running in (True, False):
        pl = p.plan(c, ME, facts(pg_running=running, sync_guard=True))
        assert kinds(pl) == ["StopCleanly", "SaveGeneration"] and pl.converges
        stop = pl.steps[0]
        assert isinstance(stop, p.StopCleanly) and stop.db_uid == "db0"
        # if it has to be started to recover from a crash, only the keeper's users get in
        assert not any("all all" in e for e in stop.config.hba)
    # told to start again: an ordinary master start (with the sync guard)
    db0.spec.stopped = False
    assert kinds(p.plan(c, ME, facts(pg_running=False)))[:2] == ["SetSyncGuard", "StartPostgres"]


def test_bad_pg_parameters_are_left_out_without_a_reload_loop() -> None:
    """Bad pgParameters: left out of the file (static rules, or rejected by the server); no reload loop."""
    c = master_cluster(pgParameters={"a b": "x", "include": "/etc/passwd", "work_mem": "banana", "x": "1\n"})
    db0 = c.db_of_keeper("k0")
    assert db0 is not None and db0.spec is not None
    db0.spec.pg_parameters = dict(c.cluster.spec.pg_parameters or {})  # type: ignore[union-attr]
    db0.spec.pg_parameters["statement_timeout"] = "1min"
    f = facts(rejected_parameters={"work_mem": "banana"})
    params = pgconfig.db_parameters(
        db0, c, ME, pg_major=15, init_parameters=None, rejected=f.rejected_parameters
    )
    assert params["statement_timeout"] == "1min"
    assert not {"a b", "include", "work_mem", "x"} & set(params)
    # a new value of a rejected parameter is tried again
    db0.spec.pg_parameters["work_mem"] = "8MB"
    params = pgconfig.db_parameters(
        db0, c, ME, pg_major=15, init_parameters=None, rejected=f.rejected_parameters
    )
    assert params["work_mem"] == "8MB"
    # only the user's own entries may be left out by the executor
    pl = p.plan(c, ME, replace(f, applied=applied_for(c, f)))
    restart = next(s for s in pl.steps if isinstance(s, p.CheckRestart))
    assert "work_mem" in restart.config.droppable and "statement_timeout" in restart.config.droppable
    assert "listen_addresses" not in restart.config.droppable
    assert "synchronous_standby_names" not in restart.config.droppable


def test_rejected_reload_is_done_again() -> None:
    """The last reload was rejected: the files are not what the server runs, reload again."""
    c = master_cluster()
    f = facts()
    f = replace(f, applied=applied_for(c, f))
    assert "Reload" not in kinds(p.plan(c, ME, f))
    pl = p.plan(c, ME, replace(f, reload_rejected=True))
    assert kinds(pl)[0] == "Reload" and "did not apply the last reload" in pl.steps[0].reason  # type: ignore[union-attr]


def test_restore_command_expansion() -> None:
    from pathlib import Path

    from stolon.keeper.executor import expand_restore_command

    assert expand_restore_command("tar xf b.tar -C %d", Path("/d")) == "tar xf b.tar -C /d"
    assert expand_restore_command("echo 100%% %d %x %", Path("/d")) == "echo 100% /d %x %"
