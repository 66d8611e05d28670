"""The event vocabulary of stolon.sentinel.events: ALL_EVENTS is exactly the Event
subclasses, kinds are unique, every kind and every cause value is documented in
docs/sentinel-decisions.md, and events become plain span attributes."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stolon.sentinel import events as ev
from stolon.sentinel.eligibility import Refusal

DOC = Path(__file__).resolve().parents[2] / "docs" / "sentinel-decisions.md"


def _subclasses(cls: type[ev.Event]) -> set[type[ev.Event]]:
    out: set[type[ev.Event]] = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def test_all_events_is_every_subclass_once() -> None:
    assert len(ev.ALL_EVENTS) == len(set(ev.ALL_EVENTS))
    assert set(ev.ALL_EVENTS) == _subclasses(ev.Event)
    kinds = [e.kind for e in ev.ALL_EVENTS]
    assert len(kinds) == len(set(kinds)) and "event" not in kinds


@pytest.mark.parametrize("event", ev.ALL_EVENTS, ids=lambda e: e.kind)
def test_every_event_kind_is_documented(event: type[ev.Event]) -> None:
    assert f"| `{event.kind}` |" in DOC.read_text(encoding="utf-8")
    assert event.__doc__ and not event.__doc__.startswith(event.__name__ + "("), "no docstring"


@pytest.mark.parametrize("cause", ev.CAUSES, ids=lambda c: c.__name__)
def test_every_cause_is_a_strenum_and_documented(cause: type[enum.StrEnum]) -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert issubclass(cause, enum.StrEnum)
    if cause is not Refusal:  # the refusals are documented with the rule (quirk 2) and in eligibility.py
        assert f"`{cause.__name__}`" in doc
        for member in cause:
            assert f"`{member.value}`" in doc, f"{cause.__name__}.{member.name}"


def test_attributes_are_plain_values() -> None:
    e = ev.MasterFailed("db1", "k1", (ev.MasterFailure.UNHEALTHY,), 2, 1)
    attrs = e.attributes()
    assert attrs["causes"] == ["unhealthy"] and type(attrs["causes"][0]) is str
    removed = ev.DBRemoved("db2", "k2", ev.DBRemoval.OLD_MASTER).attributes()
    assert removed["cause"] == "old_master" and type(removed["cause"]) is str
    cand = ev.Candidate(
        "db2", "k2", "standby", 1, 0, 1, True, True, True, None, None, False, (Refusal.OUTRANKED,)
    )
    elected = ev.NoEligibleMaster("db1", "k1", (ev.MasterFailure.UNHEALTHY,), False, (), (cand,))
    assert '"refusals": ["outranked"]' in elected.attributes()["candidates"][0]  # type: ignore[index]
    skipped = ev.BackupSlotSkipped(datetime(2026, 1, 1, tzinfo=UTC), ev.BackupSlotSkip.BUSY).as_dict()
    assert skipped == {
        "kind": "backup_slot_skipped",
        "slot": "2026-01-01T00:00:00+00:00",
        "cause": "backup_running",
    }
