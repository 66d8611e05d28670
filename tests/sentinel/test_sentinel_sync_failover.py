"""A synchronous failover hands the new master a standby that can come, not the dead master.

Go gives the new master the failed master's synchronous standbys with itself replaced by
the failed master: commits then block until later cycles choose a standby that follows
the new master. Ours replaces it by a good standby of the old master outside the set,
re-pointed at once, and keeps it pending while it converges (docs/sentinel-decisions.md,
"Synchronous failover").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from stolon.sentinel import events as ev
from stolon.testing.sentinel_builders import CD, MASTER

FAKE = "stolonfakestandby"


def cluster(n: int = 3, **spec: Any) -> CD:
    b = CD(synchronous_replication=True, **spec)
    for i in range(1, n + 1):
        b.keeper(f"keeper{i}")
    b.db("db1", "keeper1", role=MASTER, followers=[f"db{i}" for i in range(2, n + 1)])
    for i in range(2, n + 1):
        b.db(f"db{i}", f"keeper{i}", follows="db1")
    return b.master("db1").proxy(generation=1, master="db1")


@dataclass
class Case:
    name: str
    n: int = 3
    defined: list[str] = field(default_factory=lambda: ["db2"])
    in_sync: list[str] = field(default_factory=lambda: ["db2"])
    xlog: dict[str, int] = field(default_factory=dict)
    unhealthy: list[str] = field(default_factory=list)
    not_sync_keepers: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    elected: str = "db2"
    want_defined: list[str] = field(default_factory=list)
    want_external: list[str] = field(default_factory=list)


CASES = [
    Case("the other good standby replaces the new master", want_defined=["db3"]),
    Case(
        "the most advanced good standby outside the set is chosen",
        n=4,
        xlog={"db1": 3000, "db2": 3000, "db3": 1000, "db4": 2000},
        want_defined=["db4"],
    ),
    Case(
        "ties go to the smaller DB UID",
        n=4,
        xlog={"db1": 3000, "db2": 3000, "db3": 2000, "db4": 2000},
        want_defined=["db3"],
    ),
    Case(
        "an unhealthy standby is no substitute: the old master, as Go",
        unhealthy=["db3"],
        want_defined=["db1"],
    ),
    Case(
        "a keeper with --can-be-synchronous-replica=false is no substitute",
        not_sync_keepers=["keeper3"],
        want_defined=["db1"],
    ),
    Case("two keepers: nobody else, the old master (Go story 17)", n=2, want_defined=["db1"]),
    Case(
        "max 2: the other member stays, the new master's place goes to a substitute",
        n=4,
        defined=["db2", "db3"],
        in_sync=["db2", "db3"],
        xlog={"db1": 3000, "db2": 3000, "db3": 2000, "db4": 1000},
        spec={"max_synchronous_standbys": 2, "min_synchronous_standbys": 2},
        want_defined=["db3", "db4"],
    ),
    Case(
        "max 2, no substitute: the old master takes the place",
        defined=["db2", "db3"],
        in_sync=["db2", "db3"],
        xlog={"db1": 3000, "db2": 3000, "db3": 2000},
        spec={"max_synchronous_standbys": 2, "min_synchronous_standbys": 2},
        want_defined=["db1", "db3"],
    ),
]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_new_master_synchronous_standbys(c: Case) -> None:
    b = cluster(c.n, **c.spec)
    b.db("db1", healthy=False, sync=True, sync_standbys=c.defined, ext_sync=[], in_sync=c.in_sync)
    for uid, x in c.xlog.items():
        b.db(uid, xlog=x)
    for uid in c.unhealthy:
        b.db(uid, healthy=False)
    for k in c.not_sync_keepers:
        b.keeper(k, can_be_sync=False)
    d = b.decide()
    (e,) = d.of(ev.MasterElected)
    assert e.new_master_db == c.elected
    assert d.cluster_data is not None and d.cluster_data.dbs is not None
    new = d.cluster_data.dbs[c.elected]
    assert new.spec is not None
    assert new.spec.synchronous_replication is True
    assert new.spec.synchronous_standbys == c.want_defined
    assert new.spec.external_synchronous_standbys == c.want_external
    # The known-in-sync set is not widened by the substitution.
    assert set(new.status.synchronous_standbys or []) <= set(c.in_sync)


def after_failover(db3: dict[str, Any]) -> CD:
    """db2 promoted and converged, db3 (its substitute synchronous standby, not yet in sync)
    re-pointed at it; db1 gone."""
    b = CD(synchronous_replication=True).keeper("keeper2").keeper("keeper3")
    b.db("db2", "keeper2", role=MASTER, generation=3, current=3, followers=["db3"])
    b.db("db2", sync=True, sync_standbys=["db3"], ext_sync=[], in_sync=[], cur_sync=[])
    b.db("db3", "keeper3", follows="db2", **db3)
    return b.master("db2").proxy(generation=2, master="db2")


@pytest.mark.parametrize(
    ("db3", "want_defined", "want_external"),
    [
        # Re-pointed, its keeper still applying the generation: stays pending, commits wait for it.
        ({"generation": 2, "current": 1, "converging_for": 1.0}, ["db3"], []),
        # Converged but not yet reported in sync: pending as before.
        ({}, ["db3"], []),
        # Failed: the defined set shrinks to the known one and the fake standby blocks (Go).
        ({"healthy": False}, [], [FAKE]),
        # Converging past the convergence timeout: failed, same.
        ({"generation": 2, "current": 1}, [], [FAKE]),
    ],
    ids=["converging", "converged", "failed", "convergence_failed"],
)
def test_a_pending_substitute_is_kept_while_it_converges(
    db3: dict[str, Any], want_defined: list[str], want_external: list[str]
) -> None:
    d = after_failover(db3).decide()
    cd = d.cluster_data
    assert cd is not None and cd.dbs is not None
    s = cd.dbs["db2"].spec
    assert s is not None
    assert s.synchronous_standbys == want_defined
    assert s.external_synchronous_standbys == want_external
    assert not cd.dbs["db2"].status.synchronous_standbys


def test_the_substitute_joins_the_known_set_once_reported_in_sync() -> None:
    d = after_failover({}).db("db2", cur_sync=["db3"]).decide()
    cd = d.cluster_data
    assert cd is not None and cd.dbs is not None
    assert cd.dbs["db2"].status.synchronous_standbys == ["db3"]
    assert cd.dbs["db2"].spec is not None and cd.dbs["db2"].spec.synchronous_standbys == ["db3"]
