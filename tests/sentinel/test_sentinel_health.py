"""Health detection: info freshness, first run, error timers, forceFail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stolon.model.infos import KeeperInfo
from stolon.sentinel import Decision, KeeperInfoSeen, Memory, Observations, decide
from stolon.sentinel import events as ev
from stolon.testing.sentinel_builders import CD, CLUSTER_UID, MASTER, NOW, WALL0, pick_first, uids


def two() -> CD:
    return (
        CD()
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"])
        .db("db2", "keeper2", follows="db1")
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def keeper_healthy(d: Decision, uid: str) -> bool:
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    return d.cluster_data.keepers[uid].status.healthy


def test_first_run_records_infos_unseen_and_changes_no_health() -> None:
    """First run after (re)gaining leadership: memory reset, infos recorded with seen=False,
    stored flags kept (forceFail is not consumed either)."""
    b = two().keeper("keeper2", healthy=False, reports=True, force_fail=True)
    stale = Memory(keeper_errors={"keeper1": NOW.mono - 9999})
    d = decide(b.build(), b.observations(first_run=True), stale, NOW, new_uid=uids(), pick_index=pick_first)
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    assert d.memory.keeper_errors == {}
    assert d.memory.keeper_infos == {
        "keeper1": KeeperInfoSeen("keeper1-info-new", False, NOW.mono),
        "keeper2": KeeperInfoSeen("keeper2-info-new", False, NOW.mono),
    }
    k2 = d.cluster_data.keepers["keeper2"].status
    assert (k2.healthy, k2.force_fail) == (False, True)
    assert d.of(ev.FirstRun) == [ev.FirstRun(2)]


def test_after_first_run_unchanged_infos_are_ignored_and_changed_ones_are_fresh() -> None:
    b = two()
    d1 = decide(
        b.build(), b.observations(first_run=True), Memory.empty(), NOW, new_uid=uids(), pick_index=pick_first
    )
    assert d1.cluster_data is not None
    obs = b.observations()
    # keeper1 publishes again (new InfoUID); keeper2's info is the one from before the run
    infos = dict(obs.keepers_info)
    infos["keeper1"] = replace(infos["keeper1"], info_uid="keeper1-2")
    t = NOW
    cd, mem = d1.cluster_data, d1.memory
    for _ in range(6):
        t = t.after(5)
        infos["keeper1"] = replace(infos["keeper1"], info_uid=f"keeper1-{t.mono}")
        d = decide(cd, Observations(keepers_info=infos), mem, t, new_uid=uids(), pick_index=pick_first)
        assert d.cluster_data is not None
        cd, mem = d.cluster_data, d.memory
    assert keeper_healthy(d, "keeper1")
    assert not keeper_healthy(d, "keeper2")  # silent since the first run, > failInterval ago
    assert mem.keeper_errors["keeper2"] == NOW.mono + 5


def test_an_info_not_updated_for_more_than_sleep_interval_is_stale() -> None:
    b = two()
    mem = b.memory()
    mem = replace(
        mem,
        keeper_infos={
            **mem.keeper_infos,
            "keeper2": KeeperInfoSeen("keeper2-info-new", True, NOW.mono - 6),  # > sleepInterval 5s
        },
    )
    d = decide(b.build(), b.observations(), mem, NOW, new_uid=uids(), pick_index=pick_first)
    assert d.memory.keeper_errors == {"keeper2": NOW.mono}
    assert d.memory.db_errors == {"db2": NOW.mono}
    assert keeper_healthy(d, "keeper2")  # the error has just started
    # the same info within sleepInterval still counts
    mem2 = replace(
        mem,
        keeper_infos={**mem.keeper_infos, "keeper2": KeeperInfoSeen("keeper2-info-new", True, NOW.mono - 4)},
    )
    d2 = decide(b.build(), b.observations(), mem2, NOW, new_uid=uids(), pick_index=pick_first)
    assert d2.memory.keeper_errors == {}


def test_keeper_becomes_unhealthy_after_fail_interval() -> None:
    b = two().keeper("keeper2", reports=False)
    base = b.memory()
    for age, healthy in ((0.0, True), (20.0, True), (20.5, False)):
        mem = replace(base, keeper_errors={"keeper2": NOW.mono - age})
        d = decide(b.build(), b.observations(), mem, NOW, new_uid=uids(), pick_index=pick_first)
        assert keeper_healthy(d, "keeper2") is healthy, age
    assert d.of(ev.KeeperUnhealthy) == [ev.KeeperUnhealthy("keeper2", NOW.mono - 20.5, 20.5, False)]
    (u,) = d.of(ev.DBUnhealthy)
    assert (u.db_uid, u.cause) == ("db2", ev.DBError.KEEPER_UNHEALTHY)


def test_keeper_recovers_and_its_last_healthy_time_moves() -> None:
    b = two().keeper("keeper2", healthy=False, reports=True, last_healthy=None).db("db2", healthy=False)
    b.db("db2", pg_healthy=True)
    d = decide(
        b.build(),
        b.observations(),
        replace(b.memory(), db_errors={}),
        NOW,
        new_uid=uids(),
        pick_index=pick_first,
    )
    assert keeper_healthy(d, "keeper2")
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    assert d.cluster_data.keepers["keeper2"].status.last_healthy_time == WALL0
    assert d.of(ev.KeeperHealthy) == [ev.KeeperHealthy("keeper2")]
    assert d.of(ev.DBHealthy) == [ev.DBHealthy("db2", "keeper2")]


def test_force_fail_is_one_shot() -> None:
    b = two().keeper("keeper2", force_fail=True)
    d = b.decide()
    assert not keeper_healthy(d, "keeper2")
    assert d.of(ev.KeeperForceFailed) == [ev.KeeperForceFailed("keeper2")]
    assert d.of(ev.KeeperUnhealthy) == [ev.KeeperUnhealthy("keeper2", None, None, True)]
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    assert d.cluster_data.keepers["keeper2"].status.force_fail is False
    d2 = decide(
        d.cluster_data, b.observations(), b.memory(), NOW.after(5), new_uid=uids(), pick_index=pick_first
    )
    assert keeper_healthy(d2, "keeper2")


def test_force_failed_master_fails_over_in_the_same_cycle() -> None:
    d = two().keeper("keeper1", force_fail=True).decide()
    (e,) = d.of(ev.MasterElected)
    assert e.new_master_db == "db2"


def test_db_error_causes() -> None:
    cases: list[tuple[dict[str, Any], ev.DBError]] = [
        (dict(reports_db="none"), ev.DBError.NO_DB_STATE),
        (dict(reports_db="dbX"), ev.DBError.UNEXPECTED_DB_UID),
        (dict(reports=False, healthy=True), ev.DBError.NO_KEEPER_INFO),
    ]
    for kw, cause in cases:
        b = two().keeper("keeper2", **kw)
        mem = replace(b.memory(), db_errors={"db2": NOW.mono - 30}, keeper_errors={})
        d = decide(b.build(), b.observations(), mem, NOW, new_uid=uids(), pick_index=pick_first)
        assert d.cluster_data is not None and d.cluster_data.dbs is not None
        if cause != ev.DBError.NO_KEEPER_INFO:
            assert d.of(ev.DBUnhealthy) == [ev.DBUnhealthy("db2", "keeper2", cause, NOW.mono - 30, 30.0)], kw
        assert d.cluster_data.dbs["db2"].status.healthy is False
    b = two().db("db2", pg_healthy=False, error_for=21)
    d = b.decide()
    assert d.of(ev.DBUnhealthy) == [
        ev.DBUnhealthy("db2", "keeper2", ev.DBError.POSTGRES_UNHEALTHY, NOW.mono - 21, 21)
    ]


def test_unhealthy_pg_state_copies_only_address_and_generation() -> None:
    b = two().db("db2", pg_healthy=False, error_for=1, xlog=500)
    obs = b.observations()
    infos = dict(obs.keepers_info)
    ki = infos["keeper2"]
    assert ki.postgres_state is not None
    infos["keeper2"] = replace(
        ki, postgres_state=replace(ki.postgres_state, xlog_pos=900, generation=1, listen_address="10.0.0.2")
    )
    d = decide(
        b.build(), Observations(keepers_info=infos), b.memory(), NOW, new_uid=uids(), pick_index=pick_first
    )
    assert d.cluster_data is not None and d.cluster_data.dbs is not None
    st = d.cluster_data.dbs["db2"].status
    assert (st.xlog_pos, st.listen_address, st.healthy) == (500, "10.0.0.2", True)
    assert d.memory.xlog_stalls == {"db1": 1}


def test_new_keeper_from_its_first_fresh_info_and_wrong_cluster_dropped() -> None:
    b = two()
    obs = b.observations()
    infos = dict(obs.keepers_info)
    infos["keeper3"] = KeeperInfo(info_uid="k3", uid="keeper3", cluster_uid=CLUSTER_UID, boot_uuid="boot3")
    infos["keeper4"] = KeeperInfo(info_uid="k4", uid="keeper4", cluster_uid="other")
    d = decide(
        b.build(), Observations(keepers_info=infos), b.memory(), NOW, new_uid=uids(), pick_index=pick_first
    )
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    k3 = d.cluster_data.keepers["keeper3"]
    assert (k3.status.healthy, k3.status.boot_uuid, k3.generation) == (True, "boot3", 1)
    assert "keeper4" not in d.cluster_data.keepers
    assert d.of(ev.KeeperAdded) == [ev.KeeperAdded("keeper3")]
    assert d.of(ev.KeeperInfoWrongCluster) == [ev.KeeperInfoWrongCluster("keeper4", "other")]
    # keeper3 is free: with the default maxStandbysPerSender 3 it gets a resync standby
    assert [a.keeper_uid for a in d.of(ev.DBAdded)] == ["keeper3"]


def test_can_be_master_flags_are_copied_from_fresh_infos() -> None:
    b = two().keeper("keeper2", can_be_master=False, can_be_sync=False)
    cd = b.build()
    assert cd.keepers is not None
    cd.keepers["keeper2"].status.can_be_master = None
    d = decide(cd, b.observations(), b.memory(), NOW, new_uid=uids(), pick_index=pick_first)
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    st = d.cluster_data.keepers["keeper2"].status
    assert (st.can_be_master, st.can_be_synchronous_replica) == (False, False)
