"""Fencing before an automatic promotion, in decide(): request, then promote by policy.

The daemon runs the fencing between two cycles; here its outcome is handed to the next
decide() through ``Observations.fencing``, as the daemon does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stolon.fencing.base import FencingAttempt, FencingOutcome
from stolon.model.spec import FencingMethod, FencingSpec
from stolon.sentinel import Decision, decide
from stolon.sentinel import events as ev
from stolon.testing.sentinel_builders import CD, MASTER, NOW

FENCED = FencingOutcome("db1", True, (FencingAttempt("command", True, "exit status 0", 0.1),))
FAILED = FencingOutcome("db1", False, (FencingAttempt("command", False, "exited with status 3", 0.1),))


def fencing(policy: str | None = None, *names: str) -> FencingSpec:
    return FencingSpec(methods=[FencingMethod(name=n) for n in names or ("command",)], policy=policy)


def failed_master(policy: str | None = None, **keeper1: Any) -> CD:
    """db1 (keeper1, at 10.0.0.1:5432) failed; db2 is the only candidate."""
    b = (
        CD(fencing=fencing(policy))
        .keeper("keeper1", healthy=False, **keeper1)
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"], healthy=False, xlog=100)
        .db("db2", "keeper2", follows="db1", xlog=100)
        .master("db1")
        .proxy(generation=1, master="db1")
    )
    return b


def run(b: CD, outcome: FencingOutcome | None = None) -> Decision:
    cd = b.build()
    assert cd.dbs is not None
    cd.dbs["db1"].status.listen_address, cd.dbs["db1"].status.port = "10.0.0.1", "5432"
    obs = b.observations()
    if outcome is not None:
        obs = replace(obs, fencing={outcome.db_uid: outcome})
    return decide(cd, obs, b.memory(), NOW, new_uid=b.uid_source(), pick_index=lambda n: 0)


def master_of(d: Decision) -> str:
    assert d.cluster_data is not None and d.cluster_data.cluster is not None
    return d.cluster_data.cluster.status.master


def test_without_fencing_the_election_promotes_at_once() -> None:
    b = failed_master().spec(fencing=None)
    d = run(b)
    assert master_of(d) == "db2" and not d.of(ev.FencingRequested)
    # a fencing spec without methods fences nothing either
    assert master_of(run(b.spec(fencing=FencingSpec(policy="required")))) == "db2"


def test_election_requests_fencing_and_fences_the_proxies_first() -> None:
    d = run(failed_master())
    assert master_of(d) == "db1"
    (e,) = d.of(ev.MasterElected)  # the election is reported as usual ...
    assert e.new_master_db == "db2"
    assert d.of(ev.FencingRequested) == [  # ... but the promotion waits for the fencing
        ev.FencingRequested(
            old_master_db="db1",
            old_master_keeper="keeper1",
            host="10.0.0.1",
            port="5432",
            new_master_db="db2",
            new_master_keeper="keeper2",
            methods=("command",),
            policy="required",
            timeout_s=10.0,
        )
    ]
    assert d.of(ev.ProxiesFenced) == [ev.ProxiesFenced("db1", "db2", 2)]
    assert d.cluster_data is not None and d.cluster_data.dbs is not None
    db2 = d.cluster_data.dbs["db2"]
    assert db2.spec is not None and db2.spec.role == "standby" and db2.generation == 1


def test_fenced_old_master_lets_the_next_cycle_promote() -> None:
    d = run(failed_master(), FENCED)
    assert master_of(d) == "db2"
    assert d.of(ev.FencingChecked) == [
        ev.FencingChecked("db1", "keeper1", "db2", "required", fenced=True, promote=True,
                         detail="command: ok (exit status 0)")
    ]  # fmt: skip
    assert not d.of(ev.FencingRequested)


def test_required_fencing_that_failed_blocks_the_promotion_and_is_retried() -> None:
    d = run(failed_master("required"), FAILED)
    assert master_of(d) == "db1"
    (c,) = d.of(ev.FencingChecked)
    assert (c.fenced, c.promote, c.detail) == (False, False, "command: failed (exited with status 3)")
    assert len(d.of(ev.FencingRequested)) == 1  # tried again


def test_best_effort_fencing_that_failed_still_promotes() -> None:
    d = run(failed_master("best-effort"), FAILED)
    assert master_of(d) == "db2"
    (c,) = d.of(ev.FencingChecked)
    assert (c.policy, c.fenced, c.promote) == ("best-effort", False, True)


def test_an_outcome_for_another_db_is_not_this_one() -> None:
    d = run(failed_master(), replace(FENCED, db_uid="db0"))
    assert master_of(d) == "db1" and d.of(ev.FencingRequested)


def test_no_candidate_no_fencing() -> None:
    b = failed_master().db("db2", healthy=False).keeper("keeper2", healthy=False)
    d = run(b)
    assert d.of(ev.NoEligibleMaster) and not d.of(ev.FencingRequested)


def test_failkeeper_keeps_the_master_failed_until_fenced() -> None:
    """failkeeper fails a keeper for one cycle; with fencing, the promotion comes a cycle
    later, so the keeper stays force-failed for it."""
    b = failed_master(force_fail=True).keeper("keeper1", healthy=True).db("db1", healthy=True)
    d = run(b)
    assert master_of(d) == "db1" and d.of(ev.FencingRequested)
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    assert d.cluster_data.keepers["keeper1"].status.force_fail is True
    # the next cycle: still force-failed, fenced: promoted; forceFail consumed
    d2 = run(b, FENCED)
    assert master_of(d2) == "db2"
    assert d2.cluster_data is not None and d2.cluster_data.keepers is not None
    assert d2.cluster_data.keepers["keeper1"].status.force_fail is False


def test_failkeeper_with_failed_required_fencing_gives_up() -> None:
    """No retry: the operator's failover is dropped and the (healthy) master stays."""
    b = failed_master("required", force_fail=True).keeper("keeper1", healthy=True).db("db1", healthy=True)
    d = run(b, FAILED)
    assert master_of(d) == "db1" and not d.of(ev.FencingRequested)
    (c,) = d.of(ev.FencingChecked)
    assert not c.promote
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    assert d.cluster_data.keepers["keeper1"].status.force_fail is False
