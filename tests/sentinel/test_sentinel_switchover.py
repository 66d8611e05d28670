"""Planned switchover in decide(): each phase as a story, plus refusals and cancellations.

The stories run the whole cycle from builder states (see stolon/testing/sentinel_builders.py); the switchover clock
lives in the memory, so timeouts are tested by handing an old clock, without sleeping.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stolon.model.cluster import (
    SWITCHOVER_CANCELLED,
    SWITCHOVER_CATCHING_UP,
    SWITCHOVER_COMPLETED,
    SWITCHOVER_PROMOTING,
    SWITCHOVER_REQUESTED,
    SWITCHOVER_STOPPING,
    ClusterData,
    Switchover,
)
from stolon.model.duration import Duration
from stolon.sentinel import Decision, decide
from stolon.sentinel import events as ev
from stolon.sentinel.eligibility import EXPLANATIONS, Refusal, Terms, switchover_refusals
from stolon.sentinel.memory import SwitchoverClock
from stolon.testing.sentinel_builders import CD, MASTER, NOW

SW = "sw1"


def three(**spec: Any) -> CD:
    """db1 master on keeper1 (xlog 1000), db2 and db3 standbys at 1000 and 900."""
    return (
        CD(**spec)
        .keeper("keeper1")
        .keeper("keeper2")
        .keeper("keeper3")
        .db("db1", "keeper1", role=MASTER, followers=["db2", "db3"], xlog=1000, timeline=1)
        .db("db2", "keeper2", follows="db1", xlog=1000, timeline=1)
        .db("db3", "keeper3", follows="db1", xlog=900, timeline=1)
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def requested(b: CD, target: str = "", **kw: Any) -> CD:
    return b.switchover(id=SW, phase=SWITCHOVER_REQUESTED, target_keeper=target, master_db="db1", **kw)


def stopping(b: CD, target_db: str = "db2", target_keeper: str = "keeper2") -> CD:
    """After step 1: proxies fenced, db1 told to stop (generation 2, applied)."""
    return (
        b.switchover(
            id=SW,
            phase=SWITCHOVER_STOPPING,
            master_db="db1",
            target_db=target_db,
            target_keeper=target_keeper,
        )
        .db("db1", stopped=True, generation=2, current=2)
        .proxy(generation=2, master="")
    )


def run(b: CD, *, clock_age: float = 1.0, memory: Any = None) -> Decision:
    mem = b.memory() if memory is None else memory
    if b.switchover_obj is not None:
        mem = replace(mem, switchover=SwitchoverClock(b.switchover_obj.id, NOW.mono - clock_age))
    return decide(b.build(), b.observations(), mem, NOW, new_uid=b.uid_source(), pick_index=lambda n: 0)


def sw_of(d: Decision) -> Switchover:
    cd = d.cluster_data
    assert cd is not None and cd.cluster is not None and cd.cluster.status.switchover is not None
    return cd.cluster.status.switchover


def cd_of(d: Decision) -> ClusterData:
    assert d.cluster_data is not None, d.error
    return d.cluster_data


def dbspec(d: Decision, uid: str) -> Any:
    db = (cd_of(d).dbs or {})[uid]
    assert db.spec is not None
    return db.spec


def master_of(d: Decision) -> str:
    cluster = cd_of(d).cluster
    assert cluster is not None
    return cluster.status.master


def no_master_change(d: Decision) -> None:
    assert not d.of(ev.MasterFailed) and not d.of(ev.MasterElected) and master_of(d) == "db1"


# -- step 1: requested -------------------------------------------------------------------------


def test_requested_with_target_fences_proxies_and_stops_the_master() -> None:
    d = run(requested(three(), "keeper3"))
    sw = sw_of(d)
    assert (sw.phase, sw.target_db, sw.target_keeper) == (SWITCHOVER_STOPPING, "db3", "keeper3")
    assert d.of(ev.SwitchoverStarted) == [
        ev.SwitchoverStarted(SW, "db1", "keeper1", "db3", "keeper3", synchronous=False, chosen_by="request")
    ]
    assert d.of(ev.ProxiesFenced) == [ev.ProxiesFenced("db1", "db3", 2)]
    cd = cd_of(d)
    assert cd.proxy is not None and cd.proxy.spec.master_db_uid == "" and cd.proxy.generation == 2
    db1 = (cd.dbs or {})["db1"]
    assert db1.spec is not None and db1.spec.stopped and db1.generation == 2
    no_master_change(d)
    # the standbys are left alone while the switchover owns the master
    assert dbspec(d, "db2").follow_config.dbuid == "db1" and not d.of(ev.DBRemoved)


def test_requested_without_target_picks_the_standby_with_the_most_wal() -> None:
    d = run(requested(three().db("db3", xlog=1000).db("db2", xlog=950)))
    (started,) = d.of(ev.SwitchoverStarted)
    assert (started.target_db, started.chosen_by) == ("db3", "sentinel")
    # ties go to the smaller DB UID
    d = run(requested(three().db("db3", xlog=1000)))
    assert sw_of(d).target_db == "db2"


def test_refused_requests_are_cancelled_and_leave_the_master_alone() -> None:
    cases: list[tuple[CD, str, str]] = [
        (
            requested(three(), "nokeeper"),
            ev.SwitchoverCancel.UNKNOWN_KEEPER,
            "keeper 'nokeeper' is not in the cluster data",
        ),
        (requested(three(), "keeper1"), ev.SwitchoverCancel.NOT_ELIGIBLE, "not a standby of the master"),
        (
            requested(three().db("db3", current=1, generation=2), "keeper3"),
            ev.SwitchoverCancel.NOT_ELIGIBLE,
            "keeper3 is not eligible: it has not converged",
        ),
        (
            requested(three().keeper("keeper3", healthy=False).db("db3", healthy=False), "keeper3"),
            ev.SwitchoverCancel.NOT_ELIGIBLE,
            "its keeper is unhealthy, it is not healthy",
        ),
        (
            requested(three().keeper("keeper3", can_be_master=False), "keeper3"),
            ev.SwitchoverCancel.NOT_ELIGIBLE,
            "--can-be-master=false",
        ),
        (
            requested(three().db("db2", healthy=False).db("db3", timeline=2, history=[(1, 500)])),
            ev.SwitchoverCancel.NO_CANDIDATE,
            "no standby is eligible (keeper2: it is not healthy; keeper3:",
        ),
        (
            requested(three(role="standby")),
            ev.SwitchoverCancel.UNSUPPORTED,
            "standby cluster",
        ),
    ]
    for b, cause, text in cases:
        d = run(b)
        (c,) = d.of(ev.SwitchoverCancelled)
        assert (c.cause, c.phase) == (cause, SWITCHOVER_REQUESTED), c
        assert text in c.detail, c.detail
        sw = sw_of(d)
        assert sw.phase == SWITCHOVER_CANCELLED and sw.message == c.detail
        assert not dbspec(d, "db1").stopped and not d.of(ev.ProxiesFenced)
        assert d.memory.switchover is None


def test_request_for_another_master_is_cancelled() -> None:
    b = requested(three()).switchover(master_db="db0")
    d = run(b)
    (c,) = d.of(ev.SwitchoverCancelled)
    assert c.cause == ev.SwitchoverCancel.MASTER_CHANGED and "now db db1" in c.detail
    assert not dbspec(d, "db1").stopped


def test_synchronous_switchover_only_to_a_known_in_sync_standby() -> None:
    def sync3() -> CD:
        return three(synchronous_replication=True).db(
            "db1", sync=True, sync_standbys=["db3"], in_sync=["db3"], cur_sync=["db3"], ext_sync=[]
        )

    # db2 has more WAL but is not in the known-in-sync set: never chosen, and refused when asked
    d = run(requested(sync3()))
    (started,) = d.of(ev.SwitchoverStarted)
    assert (started.target_db, started.synchronous) == ("db3", True)
    d = run(requested(sync3(), "keeper2"))
    (c,) = d.of(ev.SwitchoverCancelled)
    assert c.cause == ev.SwitchoverCancel.NOT_ELIGIBLE and EXPLANATIONS[Refusal.NOT_IN_SYNC_SET] in c.detail
    # defined but not yet known in sync is not enough
    b = sync3().db("db1", sync_standbys=["db2", "db3"], in_sync=["db3"])
    cd = b.build()
    dbs = cd.dbs or {}
    assert cd.cluster is not None and cd.cluster.spec is not None
    terms = Terms.of(dbs["db1"], cd.cluster.spec)
    assert Refusal.NOT_IN_SYNC_SET in switchover_refusals(cd, terms, dbs["db2"])


# -- steps 2 and 3: stopping, catching up, promoting --------------------------------------------


def test_stopping_master_is_not_a_failure_and_nothing_else_changes() -> None:
    """The old master's keeper reports its PostgreSQL down (stop in progress) for longer than
    failInterval: no failover, no standby changes, proxies stay fenced."""
    b = stopping(three()).db("db1", pg_healthy=False, error_for=1000)
    d = run(b)
    assert d.of(ev.SwitchoverWaiting) == [
        ev.SwitchoverWaiting(
            SW,
            SWITCHOVER_STOPPING,
            ev.SwitchoverWait.MASTER_STOP,
            "waiting for the old master to shut down cleanly",
        )
    ]
    no_master_change(d)
    assert not d.of(ev.DBUnhealthy) and (cd_of(d).dbs or {})["db1"].status.healthy
    assert not d.of(ev.ProxiesPointed) and not d.of(ev.DBGenerationBumped)
    assert d.memory.switchover == SwitchoverClock(SW, NOW.mono - 1.0)


def test_master_stopped_and_target_caught_up_promotes_in_the_same_cycle() -> None:
    b = stopping(three()).db("db1", stopped_at=1000, xlog=990).db("db2", xlog=1000)
    d = run(b)
    assert d.of(ev.SwitchoverMasterStopped) == [ev.SwitchoverMasterStopped(SW, "db1", "keeper1", 1000)]
    assert d.of(ev.SwitchoverPromoted) == [
        ev.SwitchoverPromoted(
            SW, "db1", "keeper1", "db2", "keeper2", master_xlog_pos=1000, target_xlog_pos=1000
        )
    ]
    sw = sw_of(d)
    assert (sw.phase, sw.master_xlog_pos) == (SWITCHOVER_PROMOTING, 1000)
    assert master_of(d) == "db2"
    assert dbspec(d, "db2").role == "master" and dbspec(d, "db2").follow_config is None
    # the old master stays stopped (removed once the new master is ready); no election happened
    assert dbspec(d, "db1").stopped and dbspec(d, "db1").followers == []
    assert not d.of(ev.MasterElected) and not d.of(ev.FencingRequested)


def test_target_behind_waits_then_promotes() -> None:
    b = stopping(three()).db("db1", stopped_at=1000).db("db2", xlog=999)
    d = run(b)
    sw = sw_of(d)
    assert (sw.phase, sw.master_xlog_pos) == (SWITCHOVER_CATCHING_UP, 1000)
    (w,) = d.of(ev.SwitchoverWaiting)
    assert w.cause == ev.SwitchoverWait.TARGET_BEHIND and "up to 1000 (at 999)" in w.detail
    no_master_change(d)
    # the next cycle: still behind, then caught up
    b.switchover(phase=SWITCHOVER_CATCHING_UP, master_xlog_pos=1000)
    assert run(b).of(ev.SwitchoverWaiting)[0].cause == ev.SwitchoverWait.TARGET_BEHIND
    d = run(b.db("db2", xlog=1200))
    assert master_of(d) == "db2" and sw_of(d).phase == SWITCHOVER_PROMOTING


def test_target_without_a_fresh_report_waits() -> None:
    b = stopping(three()).db("db1", stopped_at=1000).keeper("keeper2", reports=False)
    (w,) = run(b).of(ev.SwitchoverWaiting)
    assert w.cause == ev.SwitchoverWait.TARGET_REPORT


def test_promoting_completes_when_the_new_master_is_ready() -> None:
    b = (
        three()
        .switchover(
            id=SW, phase=SWITCHOVER_PROMOTING, master_db="db1", target_db="db2", target_keeper="keeper2"
        )
        .db("db1", stopped=True, stopped_at=1000, followers=[])
        .db("db2", role=MASTER, follows=None, generation=3, current=2, converging_for=1)
        .master("db2")
        .proxy(generation=2, master="")
    )
    d = run(b)
    assert sw_of(d).phase == SWITCHOVER_PROMOTING and not d.of(ev.SwitchoverCompleted)
    d = run(b.db("db2", current=3))
    assert d.of(ev.SwitchoverCompleted) == [ev.SwitchoverCompleted(SW, "db2", "keeper2")]
    assert sw_of(d).phase == SWITCHOVER_COMPLETED and d.memory.switchover is None
    # the normal phase runs again: the old master is removed and its keeper gets a standby
    removed = d.of(ev.DBRemoved)
    assert [(x.db_uid, x.cause) for x in removed] == [("db1", ev.DBRemoval.OLD_MASTER)]
    assert any(a.keeper_uid == "keeper1" for a in d.of(ev.DBAdded))


# -- cancellations -------------------------------------------------------------------------------


def test_timeout_cancels_and_the_old_master_resumes() -> None:
    b = stopping(three()).switchover(timeout=Duration.parse("30s"))
    d = run(b, clock_age=31)
    (c,) = d.of(ev.SwitchoverCancelled)
    assert (c.cause, c.phase) == (ev.SwitchoverCancel.TIMED_OUT, SWITCHOVER_STOPPING)
    assert c.detail.startswith("timed out after 30s in phase stopping_master")
    assert not dbspec(d, "db1").stopped and (cd_of(d).dbs or {})["db1"].generation == 3
    no_master_change(d)
    # proxies are pointed again only once the restarted master reports the new generation
    assert not d.of(ev.ProxiesPointed)
    assert d.memory.switchover is None
    # within the default timeout (60s) nothing happens
    assert not run(stopping(three()), clock_age=59).of(ev.SwitchoverCancelled)


def test_old_master_failing_cancels_and_failover_runs_in_the_same_cycle() -> None:
    b = stopping(three()).keeper("keeper1", healthy=False).db("db1", healthy=False)
    d = run(b)
    (c,) = d.of(ev.SwitchoverCancelled)
    assert c.cause == ev.SwitchoverCancel.MASTER_FAILED
    (e,) = d.of(ev.MasterElected)
    assert e.new_master_db == "db2"


def test_target_failing_cancels() -> None:
    b = stopping(three()).db("db1", stopped_at=1000).db("db2", healthy=False).keeper("keeper2", healthy=False)
    d = run(b)
    (c,) = d.of(ev.SwitchoverCancelled)
    assert c.cause == ev.SwitchoverCancel.NOT_ELIGIBLE and "keeper2 is no longer eligible" in c.detail
    assert not dbspec(d, "db1").stopped
    no_master_change(d)


def test_promoted_target_replaced_before_it_was_ready() -> None:
    b = (
        three()
        .switchover(
            id=SW, phase=SWITCHOVER_PROMOTING, master_db="db1", target_db="db2", target_keeper="keeper2"
        )
        .db("db3", role=MASTER, follows=None)
        .master("db3")
    )
    (c,) = run(b).of(ev.SwitchoverCancelled)
    assert c.cause == ev.SwitchoverCancel.NEW_MASTER_REPLACED


def test_finished_switchover_is_left_alone() -> None:
    for phase in (SWITCHOVER_COMPLETED, SWITCHOVER_CANCELLED):
        b = three().switchover(id=SW, phase=phase, master_db="db0", message="done")
        d = run(b)
        assert sw_of(d).phase == phase and sw_of(d).message == "done"
        assert not [x for x in d.events if x.kind.startswith("switchover")]
        assert d.memory.switchover is None
