"""Stories for the rest of the algorithm: initialization modes, standby clusters, dead keepers,
DB removals (old masters, invalid, cannot sync), standby counts and spec propagation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stolon.model.cluster import (
    DB,
    DB_INIT_NEW,
    DB_INIT_NONE,
    DB_INIT_PITR,
    DB_INIT_RESYNC,
    PHASE_INITIALIZING,
    DBStatus,
    TimelineHistory,
)
from stolon.model.spec import PITRConfig, StandbyConfig, StandbySettings
from stolon.sentinel import Decision, decide
from stolon.sentinel import events as ev
from stolon.sentinel.eligibility import is_different_timeline_branch
from stolon.sentinel.predicates import wal_file_name_no_timeline
from stolon.testing.sentinel_builders import (
    CD,
    EXTERNAL,
    FAKE,
    MASTER,
    NOW,
    STANDBY,
    WALL0,
    comparable,
    diff,
    pick_first,
    uids,
)


def two(**spec: Any) -> CD:
    return (
        CD(**spec)
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"])
        .db("db2", "keeper2", follows="db1")
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def check(d: Decision, want: CD) -> None:
    assert d.error is None, d.events
    assert comparable(d.cluster_data) == comparable(want.build()), diff(d.cluster_data, want.build())


STANDBY_CFG = StandbyConfig(standby_settings=StandbySettings(primary_conninfo="host=remote port=5432"))
PITR_CFG = PITRConfig(data_restore_command="restore %d")


# -- initialization ---------------------------------------------------------------------------------


def test_init_new_db_initialized_merges_parameters_and_goes_normal() -> None:
    b = CD(PHASE_INITIALIZING, init_mode="new").keeper("keeper1").master("db1")
    b.db(
        "db1",
        "keeper1",
        init_mode=DB_INIT_NEW,
        include_previous_config=True,
        pg_parameters={"max_connections": "100"},
    )
    d = b.decide()
    want = b.clone().spec(pg_parameters={"max_connections": "100"})
    want.phase = "normal"
    want.db("db1", generation=2, init_mode=DB_INIT_NONE, include_previous_config=False)
    check(d, want)
    assert d.of(ev.PhaseChanged) == [ev.PhaseChanged("initializing", "normal", "db1", True)]
    assert d.of(ev.SpecPropagated) == [ev.SpecPropagated("db1", ("pgParameters",))]


def test_init_new_without_merge_keeps_the_spec_parameters() -> None:
    b = CD(PHASE_INITIALIZING, init_mode="new", merge_pg_parameters=False, pg_parameters={"a": "1"})
    b.keeper("keeper1").master("db1").db("db1", "keeper1", init_mode=DB_INIT_NEW, pg_parameters={"b": "2"})
    d = b.decide()
    want = b.clone().db("db1", generation=2, init_mode=DB_INIT_NONE)
    want.phase = "normal"
    check(d, want)


def test_init_new_waits_while_converging_within_init_timeout() -> None:
    b = CD(PHASE_INITIALIZING, init_mode="new").keeper("keeper1").master("db1")
    b.db("db1", "keeper1", init_mode=DB_INIT_NEW, current=0, healthy=False, converging_for=60)
    d = b.decide()
    check(d, b)
    assert d.of(ev.WaitingForInitialMaster) == [
        ev.WaitingForInitialMaster("db1", "keeper1", DB_INIT_NEW, converged=False, healthy=False)
    ]


def test_init_failed_emits_removal() -> None:
    b = CD(PHASE_INITIALIZING, init_mode="new").keeper("keeper1").master("db1")
    b.db("db1", "keeper1", init_mode=DB_INIT_NEW, current=0, healthy=False)
    d = b.decide()
    assert d.of(ev.InitFailed) == [ev.InitFailed("db1", "keeper1", 300.0)]
    assert d.of(ev.DBRemoved) == [ev.DBRemoved("db1", "keeper1", ev.DBRemoval.INIT_FAILED)]


def test_init_existing_never_gives_up() -> None:
    from stolon.model.spec import ExistingConfig

    b = CD(PHASE_INITIALIZING, init_mode="existing", existing_config=ExistingConfig(keeper_uid="keeper1"))
    b.keeper("keeper1").master("db1").db("db1", "keeper1", init_mode="existing", current=0, healthy=False)
    check(b.decide(), b)


def test_init_pitr_in_a_standby_cluster_follows_the_remote_primary_and_never_times_out() -> None:
    b = CD(
        PHASE_INITIALIZING, init_mode="pitr", role="standby", pitr_config=PITR_CFG, standby_config=STANDBY_CFG
    )
    b.keeper("keeper1").keeper("keeper2")
    d = b.decide()
    want = b.clone().master("db1")
    want.db(
        "db1", "keeper1", role=STANDBY, follows=EXTERNAL, init_mode=DB_INIT_PITR, current=0, healthy=False
    )
    want.db("db1", include_previous_config=True, pitr_config=PITR_CFG)
    check(d, want)
    assert d.of(ev.DBAdded) == [
        ev.DBAdded("db1", "keeper1", STANDBY, DB_INIT_PITR, ev.DBAddition.PITR_MASTER)
    ]
    # restoring for 1000h: still waiting (pitr has no timeout)
    waiting = want.clone().db("db1", generation=1, current=0)
    d2 = waiting.decide()
    check(d2, waiting)


def test_init_pitr_master_cluster() -> None:
    b = CD(PHASE_INITIALIZING, init_mode="pitr", pitr_config=PITR_CFG).keeper("keeper1")
    d = b.decide()
    want = b.clone().master("db1").db("db1", "keeper1", role=MASTER, init_mode=DB_INIT_PITR, current=0)
    want.db("db1", healthy=False, include_previous_config=True, pitr_config=PITR_CFG)
    check(d, want)


# -- standby cluster --------------------------------------------------------------------------------


def standby_cluster(**spec: Any) -> CD:
    return (
        CD(init_mode="pitr", role="standby", standby_config=STANDBY_CFG, **spec)
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=STANDBY, follows=EXTERNAL, followers=["db2"])
        .db("db2", "keeper2", follows="db1")
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def test_standby_cluster_is_a_fixed_point() -> None:
    b = standby_cluster(additional_master_replication_slots=["slot1"])
    check(b.decide(), b)


def test_standby_cluster_failover_elects_a_new_standby_cluster_master_without_sync() -> None:
    """Sync replication is ignored in a standby cluster: the new master follows the remote."""
    b = standby_cluster(synchronous_replication=True).db("db1", healthy=False)
    d = b.decide()
    want = b.clone().master("db2").db("db1", generation=2, followers=[]).proxy(generation=2, master="")
    want.db("db2", generation=2, role=STANDBY, follows=EXTERNAL)
    check(d, want)


def test_standby_cluster_promotion() -> None:
    """role standby -> master (stolonctl promote): the master stops following the remote."""
    b = standby_cluster(additional_master_replication_slots=["slot1"]).spec(role="master")
    d = b.decide()
    want = b.clone().db("db1", generation=2, role=MASTER, follows=None)
    check(d, want)
    assert d.of(ev.StandbyClusterPromoted) == [ev.StandbyClusterPromoted("db1", "keeper1")]
    (bump,) = d.of(ev.DBGenerationBumped)
    assert bump.fields == ("followConfig", "role")


def test_standby_settings_propagate_into_the_external_follow_config() -> None:
    b = standby_cluster()
    cd = b.build()
    new_cfg = StandbyConfig(standby_settings=StandbySettings(primary_conninfo="host=other"))
    assert cd.cluster is not None and cd.cluster.spec is not None
    cd.cluster.spec.standby_config = new_cfg
    d = decide(cd, b.observations(), b.memory(), NOW, new_uid=uids(), pick_index=pick_first)
    assert d.cluster_data is not None and d.cluster_data.dbs is not None
    db1 = d.cluster_data.dbs["db1"]
    assert db1.spec is not None and db1.spec.follow_config is not None
    assert db1.spec.follow_config.standby_settings == new_cfg.standby_settings
    assert db1.generation == 2
    assert d.of(ev.SpecPropagated) == [ev.SpecPropagated("db1", ("followConfig",))]


# -- dead keepers -----------------------------------------------------------------------------------


def test_dead_keeper_removal() -> None:
    """keeper3 (no DB) dead for 49h: removed. keeper4 (no DB) dead for 47h: kept. keeper2 dead
    for 100h but owns db2: never removed automatically."""
    b = two().db("db2", healthy=False)
    b.keeper("keeper2", healthy=False, last_healthy=WALL0 - timedelta(hours=100))
    b.keeper("keeper3", healthy=False, last_healthy=WALL0 - timedelta(hours=49))
    b.keeper("keeper4", healthy=False, last_healthy=WALL0 - timedelta(hours=47))
    d = b.decide()
    check(d, b.clone().drop_keeper("keeper3"))
    assert d.of(ev.KeeperRemoved) == [ev.KeeperRemoved("keeper3", WALL0 - timedelta(hours=49))]


# -- removals ---------------------------------------------------------------------------------------


def test_cannot_sync_standby_removed_and_replaced() -> None:
    """db2's xLogPos (segment 0x0A) has not moved for 11 cycles and the master's oldest WAL is
    segment 0x10: the WAL it needs is gone. db2 is removed and keeper2, now free, gets db3."""
    b = two(max_standbys_per_sender=1)
    b.db("db1", xlog=0x20000000, older_wal="000000010000000000000010")
    b.db("db2", generation=2, current=2, xlog=0x0A000000, stalls=10)
    d = b.decide()
    (rm,) = d.of(ev.DBRemoved)
    assert (rm.db_uid, rm.cause) == ("db2", ev.DBRemoval.CANNOT_SYNC)
    assert "000000000000000A" in rm.detail and "0000000000000010" in rm.detail
    want = b.clone().drop_db("db2").db("db1", generation=2, followers=["db3"])
    want.db("db3", "keeper2", follows="db1", init_mode=DB_INIT_RESYNC, current=0, healthy=False)
    check(d, want)


@pytest.mark.parametrize(
    ("kw", "removed"),
    [
        (dict(stalls=9), False),  # not stalled long enough
        (dict(xlog=0x20000000), False),  # at the master's position
        (dict(generation=1, current=1), False),  # still initializing
        (dict(xlog=0x10000000), False),  # needs segment 0x10: still there
    ],
)
def test_can_sync_exceptions(kw: dict[str, Any], removed: bool) -> None:
    b = two(max_standbys_per_sender=1)
    b.db("db1", xlog=0x20000000, older_wal="000000010000000000000010")
    b.db("db2", generation=2, current=2, xlog=0x0A000000, stalls=10)
    b.db("db2", **kw)
    d = b.decide()
    assert bool(d.of(ev.DBRemoved)) is removed


def test_invalid_standbys_removed() -> None:
    """db2: another PostgreSQL system; db3: forked from the master's timeline history."""
    b = two(max_standbys_per_sender=1).keeper("keeper3")
    b.db("db1", system_id="sys1", timeline=2, history=[(1, 1000)], followers=["db2", "db3"])
    b.db("db2", system_id="other", timeline=2)
    b.db("db3", "keeper3", follows="db1", system_id="sys1", timeline=2, history=[(1, 900)])
    d = b.decide()
    causes = {x.db_uid: x.cause for x in d.of(ev.DBRemoved)}
    assert causes == {"db2": ev.DBRemoval.INVALID_SYSTEM_ID, "db3": ev.DBRemoval.FORKED_TIMELINE}
    # both keepers are free again; maxStandbysPerSender 1: one new standby
    assert [a.keeper_uid for a in d.of(ev.DBAdded)] == ["keeper2"]


def test_old_masters_removed_once_the_master_is_settled() -> None:
    b = two().db("db2", role=MASTER, follows=None).db("db1", followers=["db2"])
    d = b.decide()
    assert d.of(ev.DBRemoved) == [ev.DBRemoved("db2", "keeper2", ev.DBRemoval.OLD_MASTER)]


def test_excess_good_standbys_removed_lowest_xlog_first_never_sync_ones() -> None:
    """maxStandbysPerSender lowered to 1 with three good standbys: the two lowest go, but the
    synchronous standby db2 is kept even though it is the lowest."""
    b = two(max_standbys_per_sender=1, synchronous_replication=True).keeper("keeper3").keeper("keeper4")
    b.db("db1", xlog=100, followers=["db2", "db3", "db4"], sync=True, sync_standbys=["db2"], ext_sync=[])
    b.db("db1", in_sync=["db2"])
    b.db("db2", xlog=10).db("db3", "keeper3", follows="db1", xlog=20).db(
        "db4", "keeper4", follows="db1", xlog=30
    )
    d = b.decide()
    assert [(x.db_uid, x.cause) for x in d.of(ev.DBRemoved)] == [
        ("db3", ev.DBRemoval.STANDBY_IN_EXCESS),
        ("db4", ev.DBRemoval.STANDBY_IN_EXCESS),
    ]


def test_non_good_standbys_removed_when_enough_are_good() -> None:
    b = two(max_standbys_per_sender=1).keeper("keeper3")
    b.db("db1", followers=["db2", "db3"]).db("db3", "keeper3", follows="db1", healthy=False)
    d = b.decide()
    assert d.of(ev.DBRemoved) == [ev.DBRemoved("db3", "keeper3", ev.DBRemoval.NOT_GOOD_STANDBY)]


def test_failed_standbys_kept_while_not_enough_are_good() -> None:
    b = two().db("db2", healthy=False)
    check(b.decide(), b)


def test_good_standby_init_mode_cleared() -> None:
    b = two().db("db2", init_mode=DB_INIT_RESYNC)
    d = b.decide()
    check(d, b.clone().db("db2", init_mode=DB_INIT_NONE, generation=2))


# -- synchronous replication details ------------------------------------------------------------------


def test_pre_96_master_defines_one_sync_standby_without_merge() -> None:
    b = two(synchronous_replication=True, max_synchronous_standbys=2).keeper("keeper1", pg_version=(9, 5))
    b.keeper("keeper3").db("db3", "keeper3", follows="db1").db("db1", followers=["db2", "db3"])
    b.db("db1", sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"]).db("db2", healthy=False)
    d = b.decide()
    check(d, b.clone().db("db1", generation=2, sync_standbys=["db3"], in_sync=[]))


def test_sync_standby_choice_prefers_the_highest_xlog_and_respects_max() -> None:
    b = two(synchronous_replication=True, max_synchronous_standbys=1).keeper("keeper3")
    b.db("db3", "keeper3", follows="db1", xlog=50).db("db2", xlog=40).db(
        "db1", xlog=60, followers=["db2", "db3"]
    )
    d = b.decide()
    check(d, b.clone().db("db1", generation=2, sync=True, sync_standbys=["db3"], ext_sync=[], in_sync=[]))


def test_sync_set_moves_in_two_steps() -> None:
    """db2 (sync) fails, db3 joins: defined {db2, db3}. Master reports db3 in sync: {db3}."""
    b = two(synchronous_replication=True).keeper("keeper3").db("db3", "keeper3", follows="db1")
    b.db("db1", followers=["db2", "db3"], sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
    b.db("db2", healthy=False)
    check(b.decide(), b.clone().db("db1", generation=2, sync_standbys=["db2", "db3"]))
    step2 = b.clone().db("db1", generation=2, current=2, sync_standbys=["db2", "db3"], cur_sync=["db3"])
    d2 = step2.decide()
    check(d2, step2.clone().db("db1", generation=3, sync_standbys=["db3"], in_sync=["db3"]))


def test_fake_standby_when_no_standby_exists() -> None:
    b = CD(synchronous_replication=True).keeper("keeper1").db("db1", "keeper1", role=MASTER).master("db1")
    b.proxy(generation=1, master="db1")
    d = b.decide()
    check(d, b.clone().db("db1", generation=2, sync=True, sync_standbys=[], ext_sync=[FAKE], in_sync=[]))


def test_sync_disabled_clears_the_lists() -> None:
    b = two().db("db1", sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
    d = b.decide()
    check(d, b.clone().db("db1", generation=2, sync=False, sync_standbys=None, ext_sync=None, in_sync=None))
    (c,) = d.of(ev.SyncStandbysChanged)
    assert c.cause == ev.SyncChange.DISABLED


# -- predicates --------------------------------------------------------------------------------------


def _db(tl: int, xlog: int = 0, history: list[tuple[int, int]] | None = None) -> DB:
    hist = [TimelineHistory(timeline_id=t, switch_point=p) for t, p in history or []]
    return DB(uid="x", status=DBStatus(timeline_id=tl, xlog_pos=xlog, timelines_history=hist))


@pytest.mark.parametrize(
    ("followed", "db", "forked"),
    [
        (_db(1), _db(2), True),  # followed behind our timeline
        (_db(1), _db(1), False),  # same timeline 1: no history
        (_db(2, history=[(1, 100)]), _db(2, history=[(1, 100)]), False),  # same switch point
        (_db(2, history=[(1, 100)]), _db(2, history=[(1, 90)]), True),  # forked elsewhere
        (_db(2, history=[(1, 100)]), _db(2), False),  # missing history: can't tell
        (_db(3, history=[(1, 50), (2, 100)]), _db(2, xlog=120), True),  # left tl 2 before our pos
        (_db(3, history=[(1, 50), (2, 100)]), _db(2, xlog=100), False),  # left at our pos
        (_db(3, history=[(2, 100)]), _db(1, xlog=500), False),  # no entry for tl 1
    ],
)
def test_is_different_timeline_branch(followed: DB, db: DB, forked: bool) -> None:
    assert is_different_timeline_branch(followed, db) is forked


def test_wal_file_name() -> None:
    assert wal_file_name_no_timeline(0x1_0A000000) == "000000010000000A"
    assert wal_file_name_no_timeline(0) == "0000000000000000"


def test_no_standby_added_when_converging_ones_exceed_max_standbys_per_sender() -> None:
    """maxStandbysPerSender 1, no good standby, two converging ones: nothing to add. Go computes
    the missing count in uint16, which wraps around, and would give every free keeper a DB."""
    b = two(max_standbys_per_sender=1).keeper("keeper3").keeper("keeper4")
    b.db("db2", generation=2, current=1, converging_for=5)
    b.db("db3", "keeper3", follows="db1", generation=2, current=1, converging_for=5)
    b.db("db1", followers=["db2", "db3"])
    d = b.decide()
    assert not d.of(ev.DBAdded)
    check(d, b)


def test_convergence_failure_reported_once_per_generation() -> None:
    b = two().db("db2", generation=3, current=2, converging_for=31)
    d = b.decide()
    assert d.of(ev.DBNotConverged) == [ev.DBNotConverged("db2", "keeper2", 3, 2, NOW.mono - 31, 30.0)]
    assert d.cluster_data is not None
    d2 = decide(
        d.cluster_data, b.observations(), d.memory, NOW.after(5), new_uid=uids(), pick_index=pick_first
    )
    assert not d2.of(ev.DBNotConverged)


def test_lost_replication_slot_means_cannot_sync() -> None:
    """Ours: the master reports stolon_db2 lost (its WAL exceeded max_slot_wal_keep_size)."""
    b = two(max_standbys_per_sender=1).db("db1", lost_slots=["stolon_db2"])
    d = b.decide()
    assert d.of(ev.DBRemoved) == [
        ev.DBRemoved(
            "db2",
            "keeper2",
            ev.DBRemoval.CANNOT_SYNC,
            "the master reports its replication slot stolon_db2 lost",
        )
    ]
    want = b.clone().drop_db("db2").db("db1", generation=2, followers=["db3"])
    want.db("db3", "keeper2", follows="db1", init_mode=DB_INIT_RESYNC, current=0, healthy=False)
    check(d, want)
    # reported by a standby (cascading is not used) or about another slot: nothing happens
    check(two().db("db2", lost_slots=["stolon_db2"]).decide(), two())
    check(two().db("db1", lost_slots=["stolon_other"]).decide(), two())
