"""One rule for who may become master (stolon.sentinel.eligibility).

Property: any target a switchover accepts, the failover rule accepts too. Checked twice:

- on the rule itself, for generated DB facts and evidence;
- on whole cycles: a generated switchover that ``decide`` promotes in a cycle is replayed
  with the old master's keeper dead in the same cycle (the switchover is then cancelled and
  a failover election runs on the same facts): the election must not refuse that target.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stolon.cli.ctl_switchover import check_request
from stolon.model.cluster import SWITCHOVER_CATCHING_UP
from stolon.sentinel import events as ev
from stolon.sentinel.eligibility import (
    EXPLANATIONS,
    NO_EVIDENCE,
    Evidence,
    Refusal,
    Terms,
    explain,
    refusals,
    switchover_refusals,
)
from stolon.testing.sentinel_builders import CD

from .test_sentinel_switchover import SW, run, stopping, three

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MIB = 1024 * 1024


def test_every_refusal_has_an_explanation() -> None:
    assert set(EXPLANATIONS) == set(Refusal)
    assert explain([Refusal.UNHEALTHY, Refusal.NOT_IN_SYNC_SET]) == (
        "it is not healthy, it is not in the master's synchronous standby set"
    )


def test_refusals_are_strings_with_stable_values() -> None:
    assert Refusal("no_fresh_report") is Refusal.NO_FRESH_REPORT and isinstance(Refusal.OUTRANKED, str)
    assert [str(x) for x in (Refusal.NOT_A_STANDBY, Refusal.OUTRANKED)] == ["not_a_standby", "outranked"]


#: A target that passes every condition, and the other values each fact can take.
GOOD: dict[str, Any] = {
    "keeper_healthy": True,
    "can_be_master": None,
    "reports": True,
    "healthy": True,
    "converged": True,
    "timeline": 1,
    "system_id": "sys",
    "xlog": 2 * MIB,
    "follows_master": True,
    "progress_ago": None,
    "observed_for": 3600.0,
    "sync": False,
    "in_sync_set": True,
    "max_lag": None,
    "master_xlog": 2 * MIB,
}
OTHERS: dict[str, list[Any]] = {
    "keeper_healthy": [False],
    "can_be_master": [True, False],
    "reports": [False],
    "healthy": [False],
    "converged": [False],
    "timeline": [0, 2],
    "system_id": ["", "other"],
    "xlog": [0, 2 * MIB - 1, 3 * MIB],
    "follows_master": [False],
    "progress_ago": [1.0, 100.0],
    "observed_for": [1.0],
    "sync": [True],
    "in_sync_set": [False],
    "max_lag": [100],
    # the master's last report before it stopped; above its stop position only in theory
    "master_xlog": [2 * MIB + 5000],
}


@st.composite
def target_facts(draw: st.DrawFn) -> dict[str, Any]:
    """The good target with up to three facts changed (so that both outcomes are common)."""
    facts = dict(GOOD)
    for name in draw(st.lists(st.sampled_from(sorted(OTHERS)), max_size=3, unique=True)):
        facts[name] = draw(st.sampled_from(OTHERS[name]))
    return facts


def world(f: dict[str, Any]) -> CD:
    """Three keepers; db1 master stopped by a switchover to db2 at xLogPos 1000; db2 as drawn."""
    spec: dict[str, Any] = {"synchronous_replication": f["sync"]}
    if f["max_lag"] is not None:
        spec["max_standby_lag"] = f["max_lag"]
    b = stopping(three(**spec)).db("db1", stopped_at=2 * MIB, xlog=f["master_xlog"], system_id="sys")
    if f["sync"]:
        members = ["db2", "db3"] if f["in_sync_set"] else ["db3"]
        b.db("db1", sync=True, sync_standbys=["db2", "db3"], in_sync=members, cur_sync=members, ext_sync=[])
    b.keeper("keeper2", healthy=f["keeper_healthy"], can_be_master=f["can_be_master"], reports=f["reports"])
    b.db(
        "db2",
        healthy=f["healthy"],
        generation=1 if f["converged"] else 2,
        current=1,
        timeline=f["timeline"],
        system_id=f["system_id"],
        xlog=f["xlog"],
        follows="db1" if f["follows_master"] else "db3",
        progress_ago=f["progress_ago"],
        observed_for=f["observed_for"],
    )
    return b


@given(target_facts(), st.sampled_from([None, True, False]), st.sampled_from([None, True, False]))
@SETTINGS
def test_switchover_rule_asks_at_least_what_the_failover_rule_asks(
    f: dict[str, Any], fresh: bool | None, streaming: bool | None
) -> None:
    cd = world(f).build()
    dbs = cd.dbs or {}
    assert cd.cluster is not None and cd.cluster.spec is not None
    terms = Terms.of(dbs["db1"], cd.cluster.spec)
    ev = Evidence(fresh_report=fresh, streaming=streaming)
    failover = refusals(cd, terms, dbs["db2"], ev)
    switchover = switchover_refusals(cd, terms, dbs["db2"], ev)
    assert set(failover) <= set(switchover)
    if not switchover:
        assert not failover
    # knowing less never refuses more (stolonctl judges without a cycle's evidence)
    assert set(switchover_refusals(cd, terms, dbs["db2"], NO_EVIDENCE)) <= set(switchover)


def _candidate(events: tuple[ev.Event, ...], uid: str) -> ev.Candidate:
    for e in events:
        if isinstance(e, ev.MasterElected | ev.NoEligibleMaster):
            return next(c for c in e.candidates if c.db_uid == uid)
    raise AssertionError(f"no election: {[x.kind for x in events]}")


@given(target_facts(), st.booleans())
@SETTINGS
def test_every_target_a_switchover_promotes_the_failover_rule_accepts(
    f: dict[str, Any], caught_up: bool
) -> None:
    b = world(f)
    if caught_up:
        b.switchover(phase=SWITCHOVER_CATCHING_UP, master_xlog_pos=2 * MIB)
    d = run(b)
    promoted = d.of(ev.SwitchoverPromoted)
    event("promoted" if promoted else "not promoted")
    if not promoted:
        return
    assert promoted[0].new_master_db == "db2"
    # the same cycle with the old master's keeper dead: the switchover gives way to a failover
    failed = run(b.clone().keeper("keeper1", healthy=False))
    cancelled = failed.of(ev.SwitchoverCancelled)
    assert [c.cause for c in cancelled] == [ev.SwitchoverCancel.MASTER_FAILED]
    candidate = _candidate(failed.events, "db2")
    assert set(candidate.refusals) <= {Refusal.OUTRANKED}, candidate


def test_a_promotion_needs_the_whole_rule_in_the_same_cycle() -> None:
    """Caught up, but refused by the lag rule against the master's last report: the
    switchover waits (it does not cancel: the target may still catch up)."""
    b = (
        stopping(three(max_standby_lag=10))
        .db("db1", stopped_at=1000, xlog=5000)
        .db("db2", xlog=1000)
        .switchover(phase=SWITCHOVER_CATCHING_UP, master_xlog_pos=1000)
    )
    d = run(b)
    (w,) = d.of(ev.SwitchoverWaiting)
    assert w.cause == ev.SwitchoverWait.TARGET_NOT_READY
    assert EXPLANATIONS[Refusal.LAG_TOO_HIGH] in w.detail and not d.of(ev.SwitchoverPromoted)


def test_stolonctl_and_sentinel_share_the_explanations() -> None:
    b = three().keeper("keeper3", can_be_master=False)
    problem = check_request(b.build(), "keeper3")
    assert problem == f"keeper keeper3 is not eligible: {EXPLANATIONS[Refusal.CANNOT_BE_MASTER]}"
    d = run(b.switchover(id=SW, phase="requested", target_keeper="keeper3", master_db="db1"))
    (c,) = d.of(ev.SwitchoverCancelled)
    assert c.detail == problem
