"""Backup requests in decide(): following the master keeper's report, failing on a master
change or a timeout, and the schedule's slots (pure stories, no store, no sleeps)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from stolon.model.cluster import (
    BACKUP_BY_SCHEDULE,
    BACKUP_BY_STOLONCTL,
    BACKUP_COMPLETED,
    BACKUP_FAILED,
    BACKUP_REQUESTED,
    BACKUP_RUNNING,
    BackupRequest,
    BackupStatus,
    ClusterData,
)
from stolon.model.infos import KeeperBackupState
from stolon.sentinel import Decision, decide
from stolon.sentinel import events as ev
from stolon.testing.sentinel_builders import CD, MASTER, NOW, WALL0

BACKUP = {"method": "directory", "settings": {"path": "/b"}}


def two(**spec: Any) -> CD:
    return (
        CD(**{"backup": BACKUP, **spec})
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"], xlog=1000, timeline=1)
        .db("db2", "keeper2", follows="db1", xlog=1000, timeline=1)
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def request(
    phase: str = BACKUP_REQUESTED, db: str = "db1", keeper: str = "keeper1", **kw: Any
) -> BackupRequest:
    return BackupRequest(
        id="req1",
        phase=phase,
        requested_by=BACKUP_BY_STOLONCTL,
        request_time=kw.pop("request_time", WALL0 - timedelta(seconds=10)),
        db_uid=db,
        keeper_uid=keeper,
        **kw,
    )


def run(
    b: CD,
    req: BackupRequest | None = None,
    *,
    report: KeeperBackupState | None = None,
    last_slot: datetime | None = None,
    now: Any = NOW,
) -> tuple[Decision, ClusterData]:
    stored = b.build()
    assert stored.cluster is not None
    if req is not None or last_slot is not None:
        stored.cluster.status.backup = BackupStatus(request=req, last_scheduled_slot=last_slot)
    obs = b.observations()
    if report is not None:
        infos = dict(obs.keepers_info)
        info = infos["keeper1"].copy()
        info.backup = report
        infos["keeper1"] = info
        obs = type(obs)(infos, obs.proxies_info, obs.first_run, obs.fencing)
    d = decide(stored, obs, b.memory(now), now, new_uid=lambda: "new1", pick_index=lambda n: 0)
    assert d.cluster_data is not None, d.error
    return d, d.cluster_data


def req_of(cd: ClusterData) -> BackupRequest:
    assert cd.cluster is not None and cd.cluster.status.backup is not None
    req = cd.cluster.status.backup.request
    assert req is not None
    return req


def test_no_backup_section_no_status() -> None:
    b = CD().keeper("keeper1").db("db1", "keeper1", role=MASTER, xlog=1).master("db1")
    d, cd = run(b)
    assert cd.cluster is not None and cd.cluster.status.backup is None
    assert not [x for x in d.events if x.kind.startswith("backup")]


def test_requested_waits_for_the_keeper() -> None:
    d, cd = run(two(), request())
    assert req_of(cd).phase == BACKUP_REQUESTED
    assert not d.of(ev.BackupStarted)


def test_running_reported() -> None:
    start = WALL0 - timedelta(seconds=5)
    d, cd = run(
        two(), request(), report=KeeperBackupState(request_id="req1", phase=BACKUP_RUNNING, start_time=start)
    )
    assert req_of(cd).phase == BACKUP_RUNNING and req_of(cd).start_time == start
    assert d.of(ev.BackupStarted) == [ev.BackupStarted("req1", "keeper1")]


def test_completed_reported_even_without_seeing_running() -> None:
    rep = KeeperBackupState(
        request_id="req1", phase=BACKUP_COMPLETED, backup_id="B1", size=42, end_time=WALL0
    )
    d, cd = run(two(), request(), report=rep)
    got = req_of(cd)
    assert (got.phase, got.backup_id, got.size) == (BACKUP_COMPLETED, "B1", 42)
    assert [x.kind for x in d.events if x.kind.startswith("backup")] == [
        "backup_started",
        "backup_completed",
    ]


def test_keeper_failure_copied() -> None:
    rep = KeeperBackupState(request_id="req1", phase=BACKUP_FAILED, message="disk full")
    d, cd = run(two(), request(BACKUP_RUNNING), report=rep)
    assert req_of(cd).phase == BACKUP_FAILED and req_of(cd).message == "disk full"
    assert d.of(ev.BackupFailed)[0].cause == ev.BackupFailure.KEEPER_FAILED


def test_report_of_another_request_ignored() -> None:
    rep = KeeperBackupState(request_id="old", phase=BACKUP_COMPLETED, backup_id="B0")
    _, cd = run(two(), request(), report=rep)
    assert req_of(cd).phase == BACKUP_REQUESTED


def test_master_changed_fails_the_request() -> None:
    d, cd = run(two(), request(db="db2", keeper="keeper2"))
    assert req_of(cd).phase == BACKUP_FAILED
    assert d.of(ev.BackupFailed)[0].cause == ev.BackupFailure.MASTER_CHANGED


def test_timeout() -> None:
    old = WALL0 - timedelta(hours=7)
    d, cd = run(two(), request(BACKUP_RUNNING, request_time=old))
    assert req_of(cd).phase == BACKUP_FAILED
    assert d.of(ev.BackupFailed)[0].cause == ev.BackupFailure.TIMED_OUT


def test_custom_timeout_not_reached() -> None:
    b = two(backup={**BACKUP, "timeout": "10h"})
    _, cd = run(b, request(BACKUP_RUNNING, request_time=WALL0 - timedelta(hours=7)))
    assert req_of(cd).phase == BACKUP_RUNNING


def test_ended_request_untouched() -> None:
    done = request(BACKUP_COMPLETED, backup_id="B1")
    d, cd = run(two(), done, report=KeeperBackupState(request_id="req1", phase=BACKUP_FAILED))
    assert req_of(cd).phase == BACKUP_COMPLETED
    assert not [x for x in d.events if x.kind.startswith("backup")]


# -- schedule ---------------------------------------------------------------------------------

HOURLY = {**BACKUP, "schedule": "0 * * * *"}


def test_schedule_first_sight_records_the_slot_only() -> None:
    d, cd = run(two(backup=HOURLY))
    assert cd.cluster is not None and cd.cluster.status.backup is not None
    assert cd.cluster.status.backup.last_scheduled_slot == WALL0.replace(minute=0)
    assert cd.cluster.status.backup.request is None
    assert not d.of(ev.BackupRequested)


def test_schedule_new_slot_requests_once() -> None:
    last = WALL0.replace(minute=0) - timedelta(hours=1)
    d, cd = run(two(backup=HOURLY), last_slot=last)
    req = req_of(cd)
    assert (req.id, req.phase, req.requested_by, req.db_uid, req.keeper_uid) == (
        "new1",
        BACKUP_REQUESTED,
        BACKUP_BY_SCHEDULE,
        "db1",
        "keeper1",
    )
    assert d.of(ev.BackupRequested)[0].slot == WALL0.replace(minute=0)
    # the next cycle, with the written slot, requests nothing more
    assert cd.cluster is not None and cd.cluster.status.backup is not None
    d2, cd2 = run(two(backup=HOURLY), req, last_slot=cd.cluster.status.backup.last_scheduled_slot)
    assert not d2.of(ev.BackupRequested)
    assert req_of(cd2).id == "new1"


def test_schedule_slot_skipped_while_a_backup_runs() -> None:
    last = WALL0.replace(minute=0) - timedelta(hours=1)
    d, cd = run(two(backup=HOURLY), request(BACKUP_RUNNING), last_slot=last)
    assert req_of(cd).id == "req1"
    assert d.of(ev.BackupSlotSkipped)[0].cause == ev.BackupSlotSkip.BUSY
    assert cd.cluster is not None and cd.cluster.status.backup is not None
    assert cd.cluster.status.backup.last_scheduled_slot == WALL0.replace(minute=0)


@pytest.mark.parametrize("missed", [1, 5])
def test_schedule_missed_slots_give_one_request(missed: int) -> None:
    last = WALL0.replace(minute=0) - timedelta(hours=missed)
    d, _ = run(two(backup=HOURLY), last_slot=last)
    assert len(d.of(ev.BackupRequested)) == 1
