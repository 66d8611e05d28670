"""Backup requests in the cluster data (``cluster.status.backup``), part of the pure
decision: follow the request the master's keeper is working on, and request a base
backup at each ``backup.schedule`` slot.

* An active request (``requested``/``running``) moves with what the master's keeper
  reports in its info (``backup`` for the same request id): ``running``, then
  ``completed`` with the backup id or ``failed`` with the keeper's message. It fails when
  the master is no longer the DB it was made for, or when no outcome came within
  ``backup.timeout`` (plus :data:`GRACE_S`) of the request.
* Schedule: the latest cron slot at or before now is compared with
  ``lastScheduledSlot``. The first time a schedule is seen its current slot is only
  recorded (no backup for a slot that passed before the schedule existed); each later slot
  gets one request, or a :class:`~stolon.sentinel.events.BackupSlotSkipped` event when a
  backup is still running or there is no master. Several sentinels can't request twice:
  the slot is recorded in the same compare-and-swap write as the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from stolon.model.cluster import (
    BACKUP_BY_SCHEDULE,
    BACKUP_COMPLETED,
    BACKUP_FAILED,
    BACKUP_REQUESTED,
    BACKUP_RUNNING,
    BackupRequest,
    BackupStatus,
    ClusterData,
)
from stolon.model.cron import CronError, CronSchedule
from stolon.model.infos import KeeperInfo
from stolon.model.spec import DEFAULT_BACKUP_TIMEOUT
from stolon.sentinel.cycle import Cycle, dbs, status
from stolon.sentinel.events import (
    BackupCompleted,
    BackupFailed,
    BackupFailure,
    BackupRequested,
    BackupSlotSkip,
    BackupSlotSkipped,
    BackupStarted,
)

#: Extra time beyond ``backup.timeout`` before a request without outcome is failed.
GRACE_S = 60.0


def update_backups(cd: ClusterData, infos: Mapping[str, KeeperInfo], cyc: Cycle) -> None:
    st = status(cd)
    section = cyc.spec.backup
    req = st.backup.request if st.backup is not None else None
    if req is not None and req.active:
        timeout = section.effective_timeout if section is not None else DEFAULT_BACKUP_TIMEOUT
        _follow(req, st.master, infos, cyc, timeout.seconds)
    if section is not None and section.schedule:
        _schedule(cd, section.schedule, cyc)


def _fail(req: BackupRequest, cause: BackupFailure, detail: str, cyc: Cycle) -> None:
    req.phase = BACKUP_FAILED
    req.message = detail
    req.end_time = cyc.now.wall
    cyc.emit(BackupFailed(req.id, cause, detail))


def _follow(
    req: BackupRequest, master: str, infos: Mapping[str, KeeperInfo], cyc: Cycle, timeout_s: float
) -> None:
    if req.db_uid != master:
        _fail(
            req,
            BackupFailure.MASTER_CHANGED,
            "the master changed before the backup was taken: request a new one",
            cyc,
        )
        return
    info = infos.get(req.keeper_uid)
    ks = info.backup if info is not None else None
    if ks is not None and ks.request_id == req.id:
        if ks.phase in (BACKUP_RUNNING, BACKUP_COMPLETED, BACKUP_FAILED) and req.phase == BACKUP_REQUESTED:
            req.phase = BACKUP_RUNNING
            req.start_time = ks.start_time or cyc.now.wall
            cyc.emit(BackupStarted(req.id, req.keeper_uid))
        if ks.phase == BACKUP_COMPLETED:
            req.phase = BACKUP_COMPLETED
            req.backup_id = ks.backup_id
            req.size = ks.size
            req.end_time = ks.end_time or cyc.now.wall
            req.message = ""
            cyc.emit(BackupCompleted(req.id, ks.backup_id, ks.size))
            return
        if ks.phase == BACKUP_FAILED:
            _fail(req, BackupFailure.KEEPER_FAILED, ks.message or "the keeper reported a failure", cyc)
            return
    if req.request_time is not None and cyc.now.wall - req.request_time > timedelta(
        seconds=timeout_s + GRACE_S
    ):
        _fail(req, BackupFailure.TIMED_OUT, f"no outcome within backup.timeout ({timeout_s:g}s)", cyc)


def _schedule(cd: ClusterData, expression: str, cyc: Cycle) -> None:
    try:
        schedule = CronSchedule.parse(expression)
    except CronError:
        return  # validation refuses it on input; stored bad data is ignored
    slot = schedule.latest(cyc.now.wall)
    if slot is None:
        return
    st = status(cd)
    if st.backup is None:
        st.backup = BackupStatus()
    last = st.backup.last_scheduled_slot
    if last is not None and slot <= last:
        return
    st.backup.last_scheduled_slot = slot
    if last is None:
        return  # first sight of the schedule: start with the next slot
    req = st.backup.request
    if req is not None and req.active:
        cyc.emit(BackupSlotSkipped(slot, BackupSlotSkip.BUSY))
        return
    master = dbs(cd).get(st.master)
    if master is None or master.spec is None:
        cyc.emit(BackupSlotSkipped(slot, BackupSlotSkip.NO_MASTER))
        return
    new = BackupRequest(
        id=cyc.new_uid(),
        phase=BACKUP_REQUESTED,
        requested_by=BACKUP_BY_SCHEDULE,
        request_time=cyc.now.wall,
        db_uid=master.uid,
        keeper_uid=master.spec.keeper_uid,
    )
    st.backup.request = new
    cyc.emit(BackupRequested(new.id, new.requested_by, new.db_uid, new.keeper_uid, slot))
