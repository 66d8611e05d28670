"""Stories for the Go quirks we fix (docs/sentinel-decisions.md): each says what Go would do instead."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stolon.model.cluster import DB_INIT_RESYNC
from stolon.sentinel import Decision, Memory, Observations, decide
from stolon.sentinel import events as ev
from stolon.sentinel.eligibility import Refusal
from stolon.testing.sentinel_builders import CD, MASTER, NOW, at, comparable, diff, pick_first


def three(**spec: Any) -> CD:
    return (
        CD(**spec)
        .keeper("keeper1")
        .keeper("keeper2")
        .keeper("keeper3")
        .db("db1", "keeper1", role=MASTER, followers=["db2", "db3"])
        .db("db2", "keeper2", follows="db1")
        .db("db3", "keeper3", follows="db1")
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def candidates(d: Decision) -> dict[str, ev.Candidate]:
    events: list[ev.MasterElected | ev.NoEligibleMaster] = [
        *d.of(ev.MasterElected),
        *d.of(ev.NoEligibleMaster),
    ]
    assert len(events) == 1
    return {c.db_uid: c for c in events[0].candidates}


def new_master(d: Decision) -> str | None:
    elected = d.of(ev.MasterElected)
    return elected[0].new_master_db if elected else None


# -- quirk 1: highest xLogPos wins ---------------------------------------------------------------


def test_q1_async_election_picks_the_highest_xlogpos() -> None:
    """Master at 1000 fails; db2 at 900, db3 at 950. Go sorts ascending and promotes db2,
    losing 50 more bytes than necessary; we promote db3."""
    b = three().db("db1", healthy=False, xlog=1000).db("db2", xlog=900).db("db3", xlog=950)
    d = b.decide()
    assert new_master(d) == "db3"
    (e,) = d.of(ev.MasterElected)
    assert [(c.db_uid, c.xlog_pos, c.lag_bytes, c.chosen, c.refusals) for c in e.candidates] == [
        ("db3", 950, 50, True, ()),
        ("db2", 900, 100, False, (Refusal.OUTRANKED,)),
    ]


def test_q1_ties_are_broken_by_db_uid() -> None:
    b = three().db("db1", healthy=False, xlog=1000).db("db2", xlog=950).db("db3", xlog=950)
    assert new_master(b.decide()) == "db2"


def test_q1_lag_above_max_is_refused() -> None:
    b = three(max_standby_lag=100).db("db1", healthy=False, xlog=1000).db("db2", xlog=950).db("db3", xlog=800)
    d = b.decide()
    assert new_master(d) == "db2"
    assert candidates(d)["db3"].refusals == (Refusal.LAG_TOO_HIGH,)


# -- quirk 2: converged and streaming recently -----------------------------------------------------


def test_q2_a_standby_still_resyncing_is_never_elected() -> None:
    """db3 was re-created (initMode resync, generation 1) and its keeper has not yet reported
    generation 1: not converged, so refused although it reports the highest xLogPos."""
    b = (
        three()
        .db("db1", healthy=False, xlog=1000)
        .db("db2", xlog=900)
        .db("db3", init_mode=DB_INIT_RESYNC, generation=1, current=0, xlog=1000, converging_for=5)
    )
    d = b.decide()
    assert new_master(d) == "db2"
    assert Refusal.NOT_CONVERGED in candidates(d)["db3"].refusals


def test_q2_a_standby_with_a_pending_spec_change_is_not_converged() -> None:
    b = (
        three()
        .db("db1", healthy=False, xlog=1000)
        .db("db2", xlog=900)
        .db("db3", generation=3, current=2, xlog=990)
    )
    b.db("db3", converging_for=5)
    d = b.decide()
    assert new_master(d) == "db2"
    assert candidates(d)["db3"].refusals == (Refusal.NOT_CONVERGED,)
    assert candidates(d)["db3"].converged is False


def test_q2_a_standby_that_stopped_reporting_healthy_is_refused_even_within_fail_interval() -> None:
    """db3 reports an unhealthy postgres for 10s (e.g. its keeper started a resync and
    stopped postgres). Go still counts it healthy until failInterval (20s) and could promote
    the stale copy; we require a healthy report in this very cycle."""
    b = three().db("db1", healthy=False, xlog=1000).db("db2", xlog=900)
    b.db("db3", xlog=1000, pg_healthy=False, error_for=10)
    d = b.decide()
    c = candidates(d)["db3"]
    assert c.healthy is True and c.fresh_report is False
    assert c.refusals == (Refusal.NO_FRESH_REPORT,)
    assert new_master(d) == "db2"


def test_q2_a_standby_disconnected_for_days_is_not_streaming() -> None:
    """Quiet master: db2 is 10 bytes behind (well within maxStandbyLag) but has shown no
    progress for 3 days while the master kept reporting. Go promotes it and loses those
    writes; we refuse it and report why."""
    b = CD().keeper("keeper1").keeper("keeper2").master("db1").proxy(generation=1, master="db1")
    b.db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False, xlog=1000, last_report_ago=25)
    b.db("db2", "keeper2", follows="db1", xlog=990, progress_ago=3 * 86400, observed_for=4 * 86400)
    d = b.decide()
    assert new_master(d) is None
    c = candidates(d)["db2"]
    assert (c.streaming, c.refusals) == (False, (Refusal.NOT_STREAMING,))
    assert comparable(d.cluster_data) == comparable(b.build()), diff(d.cluster_data, b.build())


def test_q2_progress_shortly_before_the_master_died_counts() -> None:
    """Same, but db2 last progressed 15s before the master's last report (window failInterval)."""
    b = CD().keeper("keeper1").keeper("keeper2").master("db1").proxy(generation=1, master="db1")
    b.db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False, xlog=1000, last_report_ago=25)
    b.db("db2", "keeper2", follows="db1", xlog=990, progress_ago=40)
    d = b.decide()
    assert new_master(d) == "db2"
    assert candidates(d)["db2"].streaming is True


def test_q2_a_standby_at_the_masters_position_is_current_on_a_quiet_master() -> None:
    b = CD().keeper("keeper1").keeper("keeper2").master("db1").proxy(generation=1, master="db1")
    b.db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False, xlog=1000)
    b.db("db2", "keeper2", follows="db1", xlog=1000, progress_ago=3 * 86400, observed_for=4 * 86400)
    assert new_master(b.decide()) == "db2"


def test_q2_without_a_master_report_the_lag_rule_alone_decides() -> None:
    """After a leadership change the new sentinel may never have seen the master report: no
    anchor, so streaming is undecidable (None) and Go's lag rule applies."""
    b = CD().keeper("keeper1").keeper("keeper2").master("db1").proxy(generation=1, master="db1")
    b.db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False, xlog=1000, reported=False)
    b.db("db2", "keeper2", follows="db1", xlog=990, progress_ago=3 * 86400, observed_for=4 * 86400)
    d = b.decide()
    assert new_master(d) == "db2"
    assert candidates(d)["db2"].streaming is None


def test_q2_a_standby_watched_for_less_than_the_window_is_not_judged() -> None:
    b = CD().keeper("keeper1").keeper("keeper2").master("db1").proxy(generation=1, master="db1")
    b.db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False, xlog=1000, last_report_ago=25)
    b.db("db2", "keeper2", follows="db1", xlog=990, progress_ago=100, observed_for=30)
    d = b.decide()
    assert candidates(d)["db2"].streaming is None
    assert new_master(d) == "db2"


def test_q2_streaming_is_not_required_in_a_synchronous_election() -> None:
    """A known-in-sync standby holds every acknowledged commit whatever its progress."""
    b = CD(synchronous_replication=True).keeper("keeper1").keeper("keeper2").master("db1")
    b.proxy(generation=1, master="db1")
    b.db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False, xlog=1000, last_report_ago=25)
    b.db("db1", sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
    b.db("db2", "keeper2", follows="db1", xlog=990, progress_ago=3 * 86400, observed_for=4 * 86400)
    d = b.decide()
    assert new_master(d) == "db2"
    assert candidates(d)["db2"].streaming is None


def test_q2_first_run_never_elects_then_health_is_measured_again() -> None:
    """A new leader's first run sees only stored flags (db1 unhealthy): Go would fail over at
    once on another sentinel's old judgement. We have no fresh report of any candidate, so
    nothing happens; the new leader then measures health itself (keeper1 silent) and fails
    over after failInterval."""
    b = (
        CD()
        .keeper("keeper1", healthy=False)
        .keeper("keeper2")
        .master("db1")
        .proxy(generation=1, master="db1")
    )
    b.db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False).db("db2", "keeper2", follows="db1")
    cd0 = b.build()
    obs = b.observations()
    d1 = decide(
        cd0, replace(obs, first_run=True), Memory.empty(), NOW, new_uid=b.uid_source(), pick_index=pick_first
    )
    assert d1.of(ev.FirstRun) == [ev.FirstRun(1)]
    assert candidates(d1)["db2"].refusals == (Refusal.NO_FRESH_REPORT,)
    assert d1.cluster_data is not None and d1.cluster_data.cluster is not None
    assert d1.cluster_data.cluster.status.master == "db1"

    def next_obs(i: int) -> Observations:
        infos = {u: replace(ki, info_uid=f"{u}-{i}") for u, ki in obs.keepers_info.items()}
        return Observations(keepers_info=infos)

    cd, mem, t = d1.cluster_data, d1.memory, NOW
    masters = []
    for i in range(1, 8):
        t = t.after(5)
        d = decide(cd, next_obs(i), mem, t, new_uid=b.uid_source(), pick_index=pick_first)
        assert d.cluster_data is not None and d.cluster_data.cluster is not None
        masters.append(d.cluster_data.cluster.status.master)
        cd, mem = d.cluster_data, d.memory
    # keeper1's error timer starts at the 2nd cycle (t=5); unhealthy once older than 20s (t=30)
    assert masters == ["db1", "db1", "db1", "db1", "db1", "db2", "db2"]


# -- quirk 3: proxies wait for the promotion ---------------------------------------------------------


def after_election() -> CD:
    """db2 elected in the previous cycle (generation 2), proxies fenced at generation 2."""
    return (
        CD()
        .keeper("keeper1", healthy=False)
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=[], healthy=False, generation=2)
        .db("db2", "keeper2", role=MASTER, generation=2, current=1, converging_for=5)
        .master("db2")
        .proxy(generation=2, master="")
        .proxy_info("proxy1", generation=2)
    )


def test_q3_proxies_wait_until_the_new_master_reports_its_master_generation() -> None:
    """Go sets masterDbUid as soon as the proxies converged, while db2 may still be in recovery."""
    b = after_election()
    d = b.decide()
    assert d.of(ev.ProxiesWaiting) == [ev.ProxiesWaiting("db2", ev.ProxiesWait.MASTER_NOT_PROMOTED, (), 2)]
    assert comparable(d.cluster_data) == comparable(b.build()), diff(d.cluster_data, b.build())


def test_q3_proxies_pointed_once_promoted() -> None:
    b = after_election().db("db2", current=2)
    d = b.decide()
    assert d.of(ev.ProxiesPointed) == [ev.ProxiesPointed("db2", 3)]
    want = b.clone().proxy(generation=3, master="db2").drop_db("db1")
    assert comparable(d.cluster_data) == comparable(want.build()), diff(d.cluster_data, want.build())


def test_proxies_not_converged_are_waited_for_first() -> None:
    b = after_election().db("db2", current=2).proxy_info("proxy2", generation=1)
    d = b.decide()
    assert d.of(ev.ProxiesWaiting) == [ev.ProxiesWaiting("db2", ev.ProxiesWait.NOT_CONVERGED, ("proxy2",), 2)]


# -- quirk 4 (kept): only the known-in-sync set in a synchronous election ----------------------------


def test_q4_sync_election_ignores_a_better_standby_outside_the_known_in_sync_set() -> None:
    b = three(synchronous_replication=True)
    b.db("db1", healthy=False, xlog=3000, sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
    b.db("db2", xlog=1000).db("db3", xlog=2000)
    d = b.decide()
    assert new_master(d) == "db2"
    cs = candidates(d)
    assert cs["db3"].refusals == (Refusal.NOT_IN_SYNC_SET,) and cs["db3"].in_sync_set is False
    assert cs["db2"].in_sync_set is True
    assert d.cluster_data is not None and d.cluster_data.dbs is not None
    new_spec = d.cluster_data.dbs["db2"].spec
    # db3, a healthy standby outside the set, takes db2's place (not the dead db1: Go).
    assert new_spec is not None and new_spec.synchronous_standbys == ["db3"]


def test_q4_defined_but_not_known_in_sync_is_not_enough() -> None:
    """db3 is defined as sync standby but the master never reported it in sync."""
    b = three(synchronous_replication=True)
    b.db("db1", healthy=False, sync=True, sync_standbys=["db2", "db3"], ext_sync=[], in_sync=["db2"])
    b.db("db2", healthy=False)
    d = b.decide()
    assert new_master(d) is None
    assert candidates(d)["db3"].refusals == (Refusal.NOT_IN_SYNC_SET,)


def test_reason_attributes_are_flat() -> None:
    b = three().db("db1", healthy=False, xlog=1000).db("db2", xlog=900).db("db3", xlog=950)
    (e,) = b.decide().of(ev.MasterElected)
    attrs = e.attributes()
    assert attrs["new_master_db"] == "db3" and attrs["synchronous"] is False
    assert isinstance(attrs["candidates"], list) and '"db_uid": "db3"' in attrs["candidates"][0]
    assert e.as_dict()["kind"] == "master_elected"
    assert e.as_dict()["candidates"][0]["refusals"] == []


def test_time_helper() -> None:
    assert at(5).mono == NOW.mono + 5


def test_q3_proxies_not_pointed_at_a_failed_master_without_replacement() -> None:
    b = after_election().db("db2", current=2, healthy=False)
    d = b.decide()
    assert d.of(ev.NoEligibleMaster)
    assert d.of(ev.ProxiesWaiting) == [ev.ProxiesWaiting("db2", ev.ProxiesWait.MASTER_UNHEALTHY, (), 2)]
    assert d.cluster_data is not None and d.cluster_data.proxy is not None
    assert d.cluster_data.proxy.spec.master_db_uid == ""
