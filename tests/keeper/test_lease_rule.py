"""The master lease's value and parameters (stolon.keeper.selffence.lease_ns,
stolon.postgres.lease, pgconfig): pure, no PostgreSQL, no sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from stolon.keeper import pgconfig
from stolon.keeper.selffence import Contact, SelfFence, lease_ns
from stolon.model import ClusterData
from stolon.postgres import lease
from stolon.postgres.errors import PostgresError
from stolon.store import ClusterStore

from .test_plan import ME, add_db, cd
from .test_selffence_rule import _cd, _Clock

T = 2.0
NS = 1_000_000_000

#: (contact, timeout, master_since, expected lease in ns)
CASES: list[Any] = [
    pytest.param(Contact(4.0, 4.5), T, 1.0, 6 * NS, id="a master: the older confirmation + T"),
    pytest.param(Contact(None, None), T, 3.0, 5 * NS, id="a new master: since it became one + T"),
    pytest.param(Contact(1.0, 1.0), T, 3.0, 5 * NS, id="confirmations older than mastership"),
    pytest.param(Contact(2.0, 2.0), T, 1.0, 4 * NS, id="cut off: a lapsed lease (its deadline)"),
    pytest.param(Contact(4.9, 4.0, 4.5), T, 1.0, lease.REVOKED_NS, id="another master named: revoked"),
    pytest.param(Contact(4.9, 4.6, 4.5), T, 1.0, int(6.6 * NS), id="named another, then us again"),
    pytest.param(Contact(4.0, 4.0), T, None, lease.REVOKED_NS, id="not a master: revoked"),
    pytest.param(Contact(4.0, 4.0), 0.0, 1.0, lease.FAR_FUTURE_NS, id="self-fencing off: never lapses"),
    pytest.param(Contact(), 0.0, None, lease.FAR_FUTURE_NS, id="off, not a master: never lapses"),
    pytest.param(Contact(), T, -5.0, 1, id="a deadline before the clock's origin: lapsed, not revoked"),
]


@pytest.mark.parametrize(("contact", "timeout", "master_since", "want"), CASES)
def test_lease_value(contact: Contact, timeout: float, master_since: float | None, want: int) -> None:
    assert lease_ns(contact, timeout=timeout, master_since=master_since) == want


def _no_store() -> ClusterStore:
    raise AssertionError("the probe is not started in these tests")


class _Leases:
    """Records the leases SelfFence writes (the file writer's stand-in; the real one is
    tested in tests/postgres/test_lease.py)."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.fail = False

    def __call__(self, ns: int) -> None:
        if self.fail:
            raise OSError("no data directory")
        self.written.append(ns)


def test_the_watchdog_writes_the_lease_only_when_it_changes() -> None:
    clock = _Clock()
    leases = _Leases()
    sf = SelfFence("k0", lambda on: None, _no_store, clock=clock, write_lease=leases)
    sf.renew_lease()
    assert leases.written == []  # the timeout is not known yet: nothing written
    sf.configure(T, 1.0)
    sf.renew_lease()
    assert leases.written == [lease.REVOKED_NS]  # not a master
    sf.renew_lease()
    assert leases.written == [lease.REVOKED_NS]  # unchanged: not written again
    sf.becoming_master()  # before a promotion: a fresh lease from now
    assert leases.written[-1] == lease.to_ns(100.0 + T)
    sf.local_master(True)  # the promotion done: the same master_since
    sf.wrote(100.5)
    sf.read(100.6, _cd("db0"))
    sf.renew_lease()
    assert leases.written[-1] == lease.to_ns(100.5 + T)
    n = len(leases.written)
    sf.renew_lease()
    assert len(leases.written) == n
    sf.read(101.0, _cd("db1"))  # another master named: revoked at once
    sf.renew_lease()
    assert leases.written[-1] == lease.REVOKED_NS
    sf.configure(0.0, 1.0)  # self-fencing turned off
    sf.renew_lease()
    assert leases.written[-1] == lease.FAR_FUTURE_NS


def test_a_failed_lease_write_is_retried() -> None:
    clock = _Clock()
    leases = _Leases()
    sf = SelfFence("k0", lambda on: None, _no_store, clock=clock, write_lease=leases)
    sf.configure(T, 1.0)
    leases.fail = True
    sf.becoming_master()
    sf.renew_lease()
    assert leases.written == []
    leases.fail = False
    sf.renew_lease()
    assert leases.written == [lease.to_ns(100.0 + T)]


def test_a_fence_failure_does_not_stop_the_lease() -> None:
    clock = _Clock()
    leases = _Leases()

    def cannot(on: bool) -> None:
        raise PostgresError("server gone")

    sf = SelfFence("k0", cannot, _no_store, clock=clock, write_lease=leases)
    sf.configure(T, 1.0)
    sf.local_master(True)
    clock.now = 103.0
    sf.check()
    sf.renew_lease()
    assert leases.written == [lease.to_ns(100.0 + T)]  # lapsed, as the fence is due


@pytest.mark.parametrize(
    ("user", "want"),
    [
        (None, "stolon_lease"),
        ("", "stolon_lease"),
        ("pg_stat_statements", "pg_stat_statements, stolon_lease"),
        (" auto_explain ,pg_stat_statements", "auto_explain, pg_stat_statements, stolon_lease"),
        ("stolon_lease, auto_explain", "stolon_lease, auto_explain"),
        ('"stolon_lease"', '"stolon_lease"'),
    ],
)
def test_preload_merges_with_the_users_libraries(user: str | None, want: str) -> None:
    assert lease.merge_preload(user) == want


def test_lease_parameters_round_trip() -> None:
    user = {"shared_preload_libraries": "pg_stat_statements", "work_mem": "8MB"}
    with_it = lease.with_lease(user, "/data/stolon_lease")
    assert with_it == {
        "shared_preload_libraries": "pg_stat_statements, stolon_lease",
        "stolon_lease.file": "/data/stolon_lease",
        "work_mem": "8MB",
    }
    assert lease.without_lease(with_it) == user
    assert lease.without_lease(lease.with_lease({}, "x")) == {}


def test_the_lease_file_format() -> None:
    assert lease.render(42, "b00t") == b"42 b00t\n"
    assert lease.parse(b"42 b00t\n") == (42, "b00t")
    for bad in (b"", b"42", b"x b00t", b"-1 b00t", b"1 2 3", b"\xff 1"):
        assert lease.parse(bad) is None
    assert lease.to_ns(1.5) == 1_500_000_000 and lease.to_ns(-3.0) == 0


def test_the_keeper_loads_the_module_only_with_a_lease_file() -> None:
    c: ClusterData = cd()
    db = add_db(c, "db0", "k0", "master", pg_parameters={"shared_preload_libraries": "pg_stat_statements"})
    without = pgconfig.db_parameters(db, c, ME, pg_major=15, init_parameters=None)
    assert without["shared_preload_libraries"] == "pg_stat_statements"
    assert lease.FILE_PARAMETER not in without
    with_it = pgconfig.db_parameters(
        db, c, ME, pg_major=15, init_parameters=None, lease_file="/k/stolon_lease"
    )
    assert with_it["shared_preload_libraries"] == "pg_stat_statements, stolon_lease"
    assert with_it[lease.FILE_PARAMETER] == "/k/stolon_lease"
    # the user's entry is changed: not one the executor may drop as the user's
    assert "shared_preload_libraries" not in pgconfig.droppable_parameters(db, with_it, None)
