"""Go Stolon's TestUpdateCluster (cmd/sentinel/cmd/sentinel_test.go), story by story.

Each story runs the whole cycle: the builder derives keeper infos and memory that make the
health step reproduce the flags of Go's input (see stolon/testing/sentinel_builders.py), so a story checks health,
update, spec propagation and generations together. Go's test bypasses the health step; where
that matters (#13) the story says so. Expected outcomes are Go's unless a story says which
quirk fix changes them (none of Go's 32 cases does: they use one candidate at xLogPos 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from stolon.model.cluster import DB_INIT_EXISTING, DB_INIT_NEW, DB_INIT_RESYNC, PHASE_INITIALIZING
from stolon.model.duration import Duration
from stolon.model.spec import ExistingConfig
from stolon.sentinel import events as ev
from stolon.sentinel.eligibility import Refusal
from stolon.testing.sentinel_builders import CD, FAKE, MASTER, WALL0, comparable, diff

D_REQ = Duration.parse("10s")


def init_spec(**kw: Any) -> CD:
    """Go's init-phase cluster spec: doubled request timeout, max standbys and wal senders."""
    spec = dict(
        request_timeout=Duration.parse("20s"),
        max_standbys=40,
        additional_wal_senders=10,
        synchronous_replication=True,
        use_pgrewind=True,
        pg_parameters={"param01": "value01", "param02": "value02"},
        init_mode="new",
        merge_pg_parameters=True,
    )
    spec.update(kw)
    return CD(PHASE_INITIALIZING, **spec)


def two(**spec: Any) -> CD:
    """keeper1/db1 master, keeper2/db2 standby following it; proxies on db1."""
    return (
        CD(**spec)
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"])
        .db("db2", "keeper2", follows="db1")
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def three(**spec: Any) -> CD:
    """two() plus keeper3/db3, a second standby of db1."""
    return (
        two(**spec).keeper("keeper3").db("db3", "keeper3", follows="db1").db("db1", followers=["db2", "db3"])
    )


def elected(before: CD, new: str, *, old_gen: int = 2, new_gen: int = 2) -> CD:
    """Go's failover outcome: new master, old master keeps its role but loses followers,
    proxies fenced (masterDbUid cleared, generation bumped)."""
    return (
        before.clone()
        .master(new)
        .db("db1", generation=old_gen, followers=[])
        .db(new, generation=new_gen, role=MASTER, follows=None)
        .proxy(generation=2, master="")
    )


def sync(**kw: Any) -> dict[str, Any]:
    return {"synchronous_replication": True, **kw}


def _stale() -> dict[str, object]:
    """DB spec values from before the cluster spec change (Go's defaults)."""
    return {
        "request_timeout": D_REQ,
        "max_standbys": 20,
        "additional_wal_senders": 5,
        "use_pgrewind": False,
        "pg_parameters": None,
    }


@dataclass
class Story:
    n: int
    text: str
    before: Callable[[], CD]
    after: Callable[[CD], CD] | None = None  # None: no change expected
    error: str | None = None


STORIES = [
    Story(
        0,
        "initialization, no keepers: cannot choose an initial master (error, nothing written)",
        init_spec,
        error="cannot choose initial master: no keepers registered",
    ),
    Story(
        1,
        "initialization, one keeper: db1 (initMode new) created on it and set as master",
        lambda: init_spec().keeper("keeper1"),
        lambda b: b.db(
            "db1",
            "keeper1",
            role=MASTER,
            init_mode=DB_INIT_NEW,
            include_previous_config=True,
            current=0,
            healthy=False,
        ).master("db1"),
    ),
    Story(
        2,
        "initialization, two keepers: the first (random index 0 of sorted keys) gets the master",
        lambda: init_spec(additional_wal_senders=None).keeper("keeper1").keeper("keeper2"),
        lambda b: b.db(
            "db1",
            "keeper1",
            role=MASTER,
            init_mode=DB_INIT_NEW,
            include_previous_config=True,
            current=0,
            healthy=False,
        ).master("db1"),
    ),
    Story(
        3,
        "initialization: db1 did not initialize within initTimeout: DBs reset, master unset",
        lambda: (
            CD(PHASE_INITIALIZING, init_mode="new", merge_pg_parameters=True)
            .keeper("keeper1")
            .keeper("keeper2")
            .db("db1", "keeper1", role=MASTER, init_mode=DB_INIT_NEW, current=0, healthy=False)
            .master("db1")
        ),
        lambda b: b.drop_db("db1").master(""),
    ),
    Story(4, "master and standby healthy: no change", two),
    Story(
        5,
        "master db unhealthy: standby elected, proxies fenced",
        lambda: two().db("db1", healthy=False),
        lambda b: elected(b, "db2"),
    ),
    Story(
        6,
        "new master db2 converged: old master removed, its keeper gets a resync standby, proxies pointed",
        lambda: (
            two()
            .db("db1", healthy=False)
            .db("db2", role=MASTER, follows=None, followers=[], generation=2, current=2)
            .master("db2")
            .proxy(generation=1, master="")
        ),
        lambda b: (
            b.drop_db("db1")
            .db("db2", generation=3, followers=["db3"])
            .db("db3", "keeper1", follows="db2", init_mode=DB_INIT_RESYNC, current=0, healthy=False)
            .proxy(generation=2, master="db2")
        ),
    ),
    Story(
        7,
        "master unhealthy, standby never reported (currentGeneration 0): no eligible master, no change",
        lambda: two().db("db1", healthy=False).db("db2", current=0),
    ),
    Story(
        8,
        "master healthy but not converged within convergenceTimeout: standby elected",
        lambda: two().db("db1", current=0),
        lambda b: elected(b, "db2"),
    ),
    Story(
        9,
        "maxStandbysPerSender 1, standby good, a free keeper: nothing added",
        lambda: two(max_standbys_per_sender=1).keeper("keeper3"),
    ),
    Story(
        10,
        "maxStandbysPerSender 1, standby never reported: new resync standby on the free keeper",
        lambda: two(max_standbys_per_sender=1).keeper("keeper3").db("db2", init_mode="", current=0),
        lambda b: b.db(
            "db3", "keeper3", follows="db1", init_mode=DB_INIT_RESYNC, current=0, healthy=False
        ).db("db1", generation=2, followers=["db2", "db3"]),
    ),
    Story(
        11,
        "from #10: db3 good, db2 still not reported: db2 removed (only maxStandbysPerSender kept)",
        lambda: (
            three(max_standbys_per_sender=1)
            .db("db1", generation=2, current=2)
            .db("db2", init_mode="", current=0)
        ),
        lambda b: b.drop_db("db2").db("db1", generation=3, followers=["db3"]),
    ),
    Story(
        12,
        "maxStandbysPerSender 1, standby good, no free keeper: no change",
        lambda: two(max_standbys_per_sender=1),
    ),
    Story(
        13,
        "keeper2 without a DB, dead for 100h (> deadKeeperRemovalInterval): removed; db1 loses the "
        "stale follower. Go's input marks keeper2 healthy because its test skips health detection; "
        "here keeper2 publishes nothing, so it is unhealthy and its lastHealthyTime stays 100h old",
        lambda: (
            two().drop_db("db2").keeper("keeper2", healthy=False, last_healthy=WALL0 - timedelta(hours=100))
        ),
        lambda b: b.drop_keeper("keeper2").db("db1", generation=2, followers=[]),
    ),
    Story(
        14,
        "cluster spec changed: requestTimeout, maxStandbys, additionalWalSenders, usePgrewind, "
        "pgParameters copied into every DB spec; sync replication turned on with db2 as sync standby",
        lambda: (
            two(
                request_timeout=Duration.parse("20s"),
                max_standbys=40,
                additional_wal_senders=10,
                synchronous_replication=True,
                use_pgrewind=True,
                pg_parameters={"param01": "value01", "param02": "value02"},
            )
            .db("db1", spec_overrides=_stale())
            .db("db2", spec_overrides=_stale())
        ),
        lambda b: b.db(
            "db1", spec_overrides={}, generation=2, sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=[]
        ).db("db2", spec_overrides={}, generation=2),
    ),
    Story(
        15,
        "sync replication just enabled, master (spec not yet synchronous) unhealthy: async election; "
        "the new master gets a fake sync standby",
        lambda: two(**sync()).db("db1", healthy=False),
        lambda b: elected(b, "db2").db("db2", sync=True, sync_standbys=[], ext_sync=[FAKE]),
    ),
    Story(
        16,
        "same as #15 (Go repeats it): standby elected, new master synchronous with a fake standby",
        lambda: two(**sync()).db("db1", healthy=False),
        lambda b: elected(b, "db2").db("db2", sync=True, sync_standbys=[], ext_sync=[FAKE]),
    ),
    Story(
        17,
        "sync on, master unhealthy, db2 known in sync: db2 elected, db1 becomes its sync standby",
        lambda: two(**sync()).db(
            "db1", healthy=False, sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"]
        ),
        lambda b: elected(b, "db2").db("db2", sync=True, sync_standbys=["db1"], ext_sync=[]),
    ),
    Story(
        18,
        "sync on, sync standby unhealthy and no better one: kept as sync standby, no change",
        lambda: (
            two(**sync())
            .db("db1", sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
            .db("db2", healthy=False)
        ),
    ),
    Story(
        19,
        "sync on (min=max=1), sync standby db2 unhealthy: db3 chosen, both defined (two-step merge)",
        lambda: (
            three(**sync())
            .db("db1", sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
            .db("db2", healthy=False)
        ),
        lambda b: b.db("db1", generation=2, sync_standbys=["db2", "db3"]),
    ),
    Story(
        20,
        "from #19, master unhealthy before reporting db3 in sync: known-in-sync is only db2, which is "
        "unhealthy: no eligible master, no change",
        lambda: (
            three(**sync())
            .db("db1", healthy=False, generation=2, current=1, sync=True, sync_standbys=["db2", "db3"])
            .db("db1", ext_sync=[], in_sync=["db2"])
            .db("db2", healthy=False)
        ),
    ),
    Story(
        21,
        "from #19, db3 not yet reported in sync: wait, db2 stays the only known-in-sync standby",
        lambda: (
            three(**sync())
            .db("db1", generation=2, current=2, sync=True, sync_standbys=["db2", "db3"], ext_sync=[])
            .db("db1", in_sync=["db2"], cur_sync=[])
            .db("db2", healthy=False)
        ),
    ),
    Story(
        22,
        "from #21 with db3 failed too: defined set shrinks back to the known-in-sync one (db2)",
        lambda: (
            three(**sync())
            .db("db1", generation=2, current=2, sync=True, sync_standbys=["db2", "db3"], ext_sync=[])
            .db("db1", in_sync=["db2"], cur_sync=[])
            .db("db2", healthy=False)
            .db("db3", healthy=False)
        ),
        lambda b: b.db("db1", generation=3, sync_standbys=["db2"]),
    ),
    Story(
        23,
        "from #19, both defined standbys known in sync: failed db2 dropped from both sets",
        lambda: (
            three(**sync())
            .db("db1", generation=2, current=2, sync=True, sync_standbys=["db2", "db3"], ext_sync=[])
            .db("db1", in_sync=["db2", "db3"], cur_sync=["db3"])
            .db("db2", healthy=False)
        ),
        lambda b: b.db("db1", generation=3, sync_standbys=["db3"], in_sync=["db3"]),
    ),
    Story(
        24,
        "from #23, master unhealthy: db3 (reported ∩ defined) elected, db1 its sync standby",
        lambda: (
            three(**sync())
            .db("db1", healthy=False, generation=3, current=2, sync=True, sync_standbys=["db3"], ext_sync=[])
            .db("db1", in_sync=["db2", "db3"])
            .db("db2", healthy=False)
        ),
        lambda b: elected(b, "db3", old_gen=4).db("db3", sync=True, sync_standbys=["db1"], ext_sync=[]),
    ),
    Story(
        25,
        "sync on, master and db2 failed: db3 elected; its sync standbys (db2, db1) sorted",
        lambda: (
            three(**sync())
            .db(
                "db1",
                healthy=False,
                sync=True,
                sync_standbys=["db2", "db3"],
                ext_sync=[],
                in_sync=["db2", "db3"],
            )
            .db("db2", healthy=False)
        ),
        lambda b: elected(b, "db3").db("db3", sync=True, sync_standbys=["db1", "db2"], ext_sync=[]),
    ),
    Story(
        26,
        "sync on, only standby has --can-be-synchronous-replica=false: never chosen, fake standby kept "
        "(Go's title says the master is unhealthy; its input has it healthy)",
        lambda: (
            two(**sync())
            .keeper("keeper2", can_be_sync=False)
            .db("db1", sync=True, sync_standbys=[], ext_sync=[FAKE], in_sync=[], cur_sync=[])
        ),
    ),
    Story(
        27,
        "sync on, master unhealthy, its sync standby has --can-be-master=false: never promoted",
        lambda: (
            two(**sync())
            .keeper("keeper2", can_be_master=False)
            .db("db1", healthy=False, sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
            .db("db1", cur_sync=["db2"])
        ),
    ),
    Story(
        28,
        "sync just enabled with minSynchronousStandbys 0, master unhealthy: standby elected, no fake",
        lambda: two(**sync(min_synchronous_standbys=0)).db("db1", healthy=False),
        lambda b: elected(b, "db2").db("db2", sync=True, sync_standbys=[], ext_sync=[]),
    ),
    Story(
        29,
        "sync on, min 0, master unhealthy, db2 in sync: elected with db1 as sync standby, no fake",
        lambda: two(**sync(min_synchronous_standbys=0)).db(
            "db1", healthy=False, sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"]
        ),
        lambda b: elected(b, "db2").db("db2", sync=True, sync_standbys=["db1"], ext_sync=[]),
    ),
    Story(
        30,
        "sync on, min 0, sync standby unhealthy: removed from both sets even with no replacement",
        lambda: (
            two(**sync(min_synchronous_standbys=0))
            .db("db1", sync=True, sync_standbys=["db2"], ext_sync=[], in_sync=["db2"])
            .db("db2", healthy=False)
        ),
        lambda b: b.db("db1", generation=2, sync_standbys=[], in_sync=[]),
    ),
    Story(
        31,
        "sync on, min 0, standby cannot be synchronous: fake standby removed from the master",
        lambda: (
            two(**sync(min_synchronous_standbys=0))
            .keeper("keeper2", can_be_sync=False)
            .db("db1", sync=True, sync_standbys=[], ext_sync=[FAKE], in_sync=[], cur_sync=[])
        ),
        lambda b: b.db("db1", generation=2, ext_sync=[]),
    ),
]


@pytest.mark.parametrize("story", STORIES, ids=[f"go#{s.n:02d}" for s in STORIES])
def test_update_cluster(story: Story) -> None:
    before = story.before()
    decision = before.decide()
    if story.error is not None:
        assert decision.cluster_data is None
        assert decision.error == story.error
        assert isinstance(decision.events[-1], ev.UpdateError)
        return
    assert decision.error is None, decision.events
    want = story.after(before.clone()) if story.after else before
    got = decision.cluster_data
    assert comparable(got) == comparable(want.build()), f"#{story.n} {story.text}\n{diff(got, want.build())}"


def test_story_numbers_are_go_numbers() -> None:
    assert [s.n for s in STORIES] == list(range(32))


def test_go05_reasons_explain_the_failover() -> None:
    d = STORIES[5].before().decide()
    failed = d.of(ev.MasterFailed)
    assert [(f.db_uid, f.causes) for f in failed] == [("db1", (ev.MasterFailure.UNHEALTHY,))]
    (e,) = d.of(ev.MasterElected)
    assert (e.old_master_db, e.new_master_db, e.synchronous) == ("db1", "db2", False)
    assert [(c.db_uid, c.chosen, c.refusals) for c in e.candidates] == [("db2", True, ())]
    assert d.of(ev.ProxiesFenced) == [ev.ProxiesFenced("db1", "db2", 2)]
    bumped = {b.db_uid: b.fields for b in d.of(ev.DBGenerationBumped)}
    assert bumped == {"db1": ("followers",), "db2": ("followConfig", "role")}


def test_go07_no_eligible_master_names_each_refusal() -> None:
    d = STORIES[7].before().decide()
    (n,) = d.of(ev.NoEligibleMaster)
    (c,) = n.candidates
    assert c.db_uid == "db2" and not c.chosen
    assert c.refusals == (Refusal.UNKNOWN_STATE, Refusal.NOT_CONVERGED)


def test_go20_sync_refusals() -> None:
    d = STORIES[20].before().decide()
    (n,) = d.of(ev.NoEligibleMaster)
    assert n.synchronous and n.known_in_sync == ("db2",)
    refusals = {c.db_uid: c.refusals for c in n.candidates}
    assert refusals["db3"] == (Refusal.NOT_IN_SYNC_SET,)
    assert Refusal.UNHEALTHY in refusals["db2"] and Refusal.NO_FRESH_REPORT in refusals["db2"]
    (f,) = d.of(ev.MasterFailed)
    assert f.causes == (ev.MasterFailure.UNHEALTHY, ev.MasterFailure.CONVERGENCE_FAILED)


def test_go22_and_go19_sync_reasons() -> None:
    d = STORIES[22].before().decide()
    changes = d.of(ev.SyncStandbysChanged)
    assert [(c.cause, c.old_defined, c.new_defined) for c in changes] == [
        (ev.SyncChange.RECONCILE, ("db2", "db3"), ("db2",))
    ]
    d = STORIES[19].before().decide()
    (c,) = d.of(ev.SyncStandbysChanged)
    assert (c.cause, c.old_defined, c.new_defined, c.new_in_sync) == (
        ev.SyncChange.RESELECT,
        ("db2",),
        ("db2", "db3"),
        ("db2",),
    )
    d = STORIES[21].before().decide()
    assert d.of(ev.SyncStandbysWaiting) == [ev.SyncStandbysWaiting("db1", ("db2",), ("db2", "db3"))]


def test_init_existing_keeper_missing_is_an_error() -> None:
    b = (
        CD(PHASE_INITIALIZING, init_mode="existing")
        .spec(existing_config=_existing("keeper9"))
        .keeper("keeper1")
    )
    d = b.decide()
    assert d.cluster_data is None and d.error == "keeper 'keeper9' state not available"


def test_init_existing_creates_master_on_the_named_keeper() -> None:
    b = CD(PHASE_INITIALIZING, init_mode="existing").spec(existing_config=_existing("keeper2"))
    b.keeper("keeper1").keeper("keeper2")
    d = b.decide()
    want = b.clone().db("db1", "keeper2", role=MASTER, init_mode=DB_INIT_EXISTING, current=0, healthy=False)
    want.db("db1", include_previous_config=True).master("db1")
    assert comparable(d.cluster_data) == comparable(want.build()), diff(d.cluster_data, want.build())
    assert d.of(ev.DBAdded) == [
        ev.DBAdded("db1", "keeper2", MASTER, DB_INIT_EXISTING, ev.DBAddition.EXISTING_MASTER)
    ]


def _existing(keeper: str) -> ExistingConfig:
    return ExistingConfig(keeper_uid=keeper)
