"""Failure detection on the keepers' own silence: exact deadlines, not sampling periods.

The daemon tells ``decide`` since when each keeper's info has not changed
(``Observations.keeper_silence_since``); the error timers start there, and
``failure_deadline`` says when the next healthy keeper or DB crosses ``failInterval``. The
InfoTracker sorts what the daemon reads between cycles into heartbeats and material
changes. No store, no sleeps.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from stolon.model.duration import SECOND, Duration
from stolon.model.infos import KeeperInfo, PostgresState
from stolon.sentinel import KeeperInfoSeen, Memory, Observations, decide
from stolon.sentinel import events as ev
from stolon.sentinel.health import failure_deadline
from stolon.sentinel.infotracker import KEEPER_PROGRESS_FIELDS, InfoTracker, signature
from stolon.testing.sentinel_builders import CD, MASTER, NOW, pick_first, uids

FAIL = 20.0  # the default failInterval of the builders' spec


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


def silent_keeper2(silent_for: float) -> tuple[Observations, Memory]:
    """keeper2 publishes nothing new: its info is the one the memory saw; the daemon saw it
    change ``silent_for`` seconds ago."""
    b = two()
    obs = b.observations()
    mem = b.memory()
    mem = replace(
        mem,
        keeper_infos={
            **mem.keeper_infos,
            "keeper2": KeeperInfoSeen("keeper2-info-new", True, NOW.mono - silent_for),
        },
    )
    obs = replace(obs, keeper_silence_since={"keeper1": NOW.mono, "keeper2": NOW.mono - silent_for})
    return obs, mem


@pytest.mark.parametrize(
    ("silent_for", "healthy"),
    [
        (0.5, True),  # fresh: no error at all
        (6.0, True),  # stale (sleepInterval 5s): the error timer starts at the last change
        (FAIL, True),  # exactly failInterval: still healthy
        (FAIL + 0.01, False),  # just past it: failed, in the first cycle that runs
    ],
)
def test_a_keeper_fails_exactly_fail_interval_after_its_last_info_change(
    silent_for: float, healthy: bool
) -> None:
    obs, mem = silent_keeper2(silent_for)
    d = decide(two().build(), obs, mem, NOW, new_uid=uids(), pick_index=pick_first)
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    assert d.cluster_data.keepers["keeper2"].status.healthy is healthy
    if silent_for > 5.0:
        # Go would start both timers now (the cycle that found the info stale)
        assert d.memory.keeper_errors == {"keeper2": NOW.mono - silent_for}
        assert d.memory.db_errors == {"db2": NOW.mono - silent_for}
    else:
        assert d.memory.keeper_errors == {}
    if not healthy:
        (u,) = d.of(ev.KeeperUnhealthy)
        assert u.error_since_mono == NOW.mono - silent_for
        assert u.error_age_s == pytest.approx(silent_for)
        (dbu,) = d.of(ev.DBUnhealthy)
        assert dbu.db_uid == "db2"


def test_a_new_info_is_dated_by_when_the_daemon_saw_it_not_by_the_cycle() -> None:
    """keeper2's new info was read 4.5 s before this cycle (sleepInterval 5s): fresh now,
    stale 0.6 s later, and its error then counts from the read."""
    b = two()
    obs = replace(b.observations(), keeper_silence_since={"keeper1": NOW.mono, "keeper2": NOW.mono - 4.5})
    d = decide(b.build(), obs, b.memory(), NOW, new_uid=uids(), pick_index=pick_first)
    assert d.memory.keeper_infos["keeper2"] == KeeperInfoSeen("keeper2-info-new", True, NOW.mono - 4.5)
    assert d.memory.keeper_errors == {}
    assert d.cluster_data is not None
    later = NOW.after(0.6)
    d2 = decide(d.cluster_data, obs, d.memory, later, new_uid=uids(), pick_index=pick_first)
    assert d2.memory.keeper_errors == {"keeper2": NOW.mono - 4.5}


def test_without_silence_times_the_timers_start_at_the_cycle_as_in_go() -> None:
    b = two()
    mem = b.memory()
    mem = replace(
        mem,
        keeper_infos={**mem.keeper_infos, "keeper2": KeeperInfoSeen("keeper2-info-new", True, NOW.mono - 6)},
    )
    d = decide(b.build(), b.observations(), mem, NOW, new_uid=uids(), pick_index=pick_first)
    assert d.memory.keeper_errors == {"keeper2": NOW.mono}


def test_a_silence_time_in_the_future_is_taken_as_now() -> None:
    obs, mem = silent_keeper2(6.0)
    obs = replace(obs, keeper_silence_since={"keeper2": NOW.mono + 100})
    d = decide(two().build(), obs, mem, NOW, new_uid=uids(), pick_index=pick_first)
    assert d.memory.keeper_errors == {"keeper2": NOW.mono}


def test_an_unhealthy_postgres_error_starts_at_the_cycle_that_read_it() -> None:
    b = two().db("db2", pg_healthy=False)
    obs = replace(b.observations(), keeper_silence_since={"keeper1": NOW.mono - 1, "keeper2": NOW.mono - 1})
    d = decide(b.build(), obs, replace(b.memory(), db_errors={}), NOW, new_uid=uids(), pick_index=pick_first)
    assert d.memory.db_errors == {"db2": NOW.mono}


# -- failure_deadline ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("healthy", "silence", "keeper_errors", "db_errors", "want"),
    [
        # a healthy keeper: its last sign of life + failInterval
        ({"keeper1": True, "keeper2": True}, {"keeper1": 100.0, "keeper2": 90.0}, {}, {}, 90.0 + FAIL),
        # an unhealthy keeper has no deadline left
        ({"keeper1": True, "keeper2": False}, {"keeper1": 100.0, "keeper2": 90.0}, {}, {}, 100.0 + FAIL),
        # no silence known (its info is gone and forgotten): its running error timer
        ({"keeper1": True, "keeper2": True}, {"keeper1": 100.0}, {"keeper2": 95.0}, {}, 95.0 + FAIL),
        # a DB with a running error timer (PostgreSQL unhealthy) while its keeper lives
        ({"keeper1": True, "keeper2": True}, {"keeper1": 100.0, "keeper2": 100.0}, {}, {"db2": 85.0}, 85.0 + FAIL),
        # nothing to wait for
        ({"keeper1": False, "keeper2": False}, {}, {}, {}, None),
    ],
)  # fmt: skip
def test_failure_deadline(
    healthy: dict[str, bool],
    silence: dict[str, float],
    keeper_errors: dict[str, float],
    db_errors: dict[str, float],
    want: float | None,
) -> None:
    b = two()
    for uid, h in healthy.items():
        b.keeper(uid, healthy=h)
    cd = b.build()
    mem = Memory(keeper_errors=keeper_errors, db_errors=db_errors)
    assert failure_deadline(cd, mem, silence, FAIL) == want


def test_failure_deadline_ignores_unhealthy_dbs() -> None:
    b = two().db("db2", healthy=False)
    mem = Memory(db_errors={"db2": 10.0})
    assert failure_deadline(b.build(), mem, {"keeper1": 100.0, "keeper2": 100.0}, FAIL) == 100.0 + FAIL


# -- InfoTracker ----------------------------------------------------------------------------------


def keeper_info(info_uid: str, xlog: int = 100, healthy: bool = True, generation: int = 1) -> bytes:
    return KeeperInfo(
        info_uid=info_uid,
        uid="keeper1",
        cluster_uid="c",
        postgres_state=PostgresState(uid="db1", generation=generation, healthy=healthy, xlog_pos=xlog),
    ).to_bytes()


@pytest.mark.parametrize(
    ("second", "changed", "material"),
    [
        (keeper_info("a"), False, False),  # the same info read again
        (keeper_info("b"), True, False),  # a heartbeat: only the infoUID moved
        (keeper_info("b", xlog=200), True, False),  # WAL progress: taken at the next cycle
        (keeper_info("b", healthy=False), True, True),  # PostgreSQL became unhealthy
        (keeper_info("b", generation=2), True, True),  # a new generation applied (a promotion)
        (b"not json", True, True),  # malformed: the cycle reports it
    ],
)
def test_tracker_sorts_heartbeats_from_material_changes(second: bytes, changed: bool, material: bool) -> None:
    t = InfoTracker(KEEPER_PROGRESS_FIELDS)
    assert t.observe({"keeper1": keeper_info("a")}, 10.0) == (True, True)  # first sight
    assert t.observe({"keeper1": second}, 11.0) == (changed, material)
    moved = signature(second)[0] != "a"
    assert t.silence_since() == {"keeper1": 11.0 if moved else 10.0}


def test_tracker_infos_appearing_and_disappearing_are_material_and_silence_goes_on() -> None:
    t = InfoTracker(KEEPER_PROGRESS_FIELDS)
    t.observe({"keeper1": keeper_info("a")}, 10.0)
    assert t.observe({}, 12.0) == (True, True)
    assert t.silence_since() == {"keeper1": 10.0}  # still silent since its last info
    assert t.observe({}, 13.0) == (False, False)
    assert t.observe({"keeper1": keeper_info("a")}, 14.0) == (True, True)
    assert t.silence_since() == {"keeper1": 14.0}


def test_tracker_restart_dates_every_silence_from_the_next_read() -> None:
    """After the daemon lost sight of the store, a keeper that could not publish meanwhile
    is not failed for it."""
    t = InfoTracker(KEEPER_PROGRESS_FIELDS)
    t.observe({"keeper1": keeper_info("a"), "keeper2": keeper_info("x")}, 10.0)
    t.restart()
    assert t.silence_since() == {"keeper1": 10.0, "keeper2": 10.0}  # until the next read
    t.observe({"keeper1": keeper_info("a"), "keeper2": keeper_info("x")}, 50.0)
    assert t.silence_since() == {"keeper1": 50.0, "keeper2": 50.0}
    t.observe({"keeper1": keeper_info("b"), "keeper2": keeper_info("x")}, 51.0)
    assert t.silence_since() == {"keeper1": 51.0, "keeper2": 50.0}


@pytest.mark.parametrize(
    "data",
    [b"[1, 2]", b'{"infoUID": 7}', b"{" * 100_000, b'{"a": "' + b"x" * 300_000 + b'"}'],
)
def test_signature_of_untrusted_documents_never_raises(data: bytes) -> None:
    info_uid, _ = signature(data, KEEPER_PROGRESS_FIELDS)
    assert isinstance(info_uid, str)


def test_signature_drops_only_the_heartbeat_fields() -> None:
    raw = json.dumps(
        {"infoUID": "u", "uid": "k", "postgresState": {"xLogPos": 5, "healthy": True}, "activity": "odd"}
    ).encode()
    assert signature(raw, KEEPER_PROGRESS_FIELDS) == (
        "u",
        {"uid": "k", "postgresState": {"healthy": True}, "activity": "odd"},
    )


def test_an_info_unchanged_for_fail_interval_is_stale_even_when_sleep_interval_is_longer() -> None:
    """sleepInterval 60s, failInterval 20s: a keeper silent for 21 s is failed, not kept
    fresh until the sleepInterval window ends."""
    obs, mem = silent_keeper2(21.0)
    b = two().spec(sleep_interval=Duration(60 * SECOND))
    d = decide(b.build(), obs, mem, NOW, new_uid=uids(), pick_index=pick_first)
    assert d.cluster_data is not None and d.cluster_data.keepers is not None
    assert not d.cluster_data.keepers["keeper2"].status.healthy
