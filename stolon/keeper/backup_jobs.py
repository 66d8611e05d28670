"""Base backups asked of this keeper through the cluster data (``cluster.status.backup``).

``stolonctl backup create`` or the leader sentinel's schedule writes a request for the
current master DB; that DB's keeper runs it here, in a thread of its own (a backup can
take hours and the keeper must keep managing PostgreSQL meanwhile), reports the outcome in
its keeper info (``backup``), and the leader sentinel copies it into the request.

What was handled is remembered in ``<data-dir>/backupstate`` (root's, 0600): a restarted
keeper reports the outcome again and never runs a request twice. A request that was
running when the keeper stopped is reported failed (the tool's partial backup is not
listed: every method lists only complete backups). After a successful backup, when
``backup.retain`` is set, older backups are deleted (a failure there is logged; the backup
still counts).

The master's keeper also creates the repository (:meth:`BackupMethod.ensure_repository`,
e.g. a pgBackRest stanza) once PostgreSQL runs as master, so WAL archiving works before
the first backup.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from stolon import telemetry
from stolon.backup.base import BackupContext, BackupError, one_line
from stolon.keeper.activity import ActivityTracker
from stolon.keeper.backups import MethodSetup
from stolon.keeper.localstate import MAX_STATE_FILE, write_atomic
from stolon.model.cluster import (
    BACKUP_COMPLETED,
    BACKUP_FAILED,
    BACKUP_RUNNING,
    BackupRequest,
    ClusterData,
)
from stolon.model.infos import KeeperBackupState
from stolon.postgres import safefs
from stolon.postgres.errors import PostgresError

log = logging.getLogger("stolon.keeper.backup")

STATE_FILE = "backupstate"


def wanted_request(
    cd: ClusterData | None, keeper_uid: str, my_db_uid: str, handled: str
) -> BackupRequest | None:
    """The request this keeper must run now: active, for our DB, which is the master, and
    not handled before."""
    if cd is None or cd.cluster is None or not my_db_uid:
        return None
    st = cd.cluster.status.backup
    req = st.request if st is not None else None
    if req is None or not req.active or not req.id or req.id == handled:
        return None
    if req.db_uid != my_db_uid or cd.cluster.status.master != my_db_uid:
        return None
    if req.keeper_uid and req.keeper_uid != keeper_uid:
        return None
    return req


class BackupJobs:
    def __init__(self, data_dir: Path, tracker: ActivityTracker) -> None:
        self.data_dir = data_dir
        self.tracker = tracker
        self.tracer = telemetry.tracer("keeper")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ensured: tuple[str, str] | None = None  # (method commands, db uid)
        self.state = self._load()
        #: unix time of the last successful backup (metric)
        self.last_success = 0.0

    # -- persisted state ---------------------------------------------------------------------
    def _load(self) -> KeeperBackupState | None:
        try:
            # the data dir is the PostgreSQL user's: no link or FIFO is followed, size-bounded
            raw = safefs.read_file(self.data_dir / STATE_FILE, limit=MAX_STATE_FILE)
        except (OSError, PostgresError) as e:
            log.warning("cannot read %s: %s", STATE_FILE, e)
            return None
        if raw is None:
            return None
        text = raw.decode(errors="replace")
        try:
            st = KeeperBackupState.loads(text)
        except ValueError as e:
            log.warning("ignoring a malformed %s: %s", STATE_FILE, e)
            return None
        if st.phase == BACKUP_RUNNING:
            st.phase = BACKUP_FAILED
            st.message = "the keeper stopped while the backup was running: request a new one"
            st.end_time = datetime.now(UTC)
            self._save(st)
        return st

    def _save(self, st: KeeperBackupState) -> None:
        write_atomic(self.data_dir / STATE_FILE, json.dumps(st.to_obj()).encode())

    def _set(self, st: KeeperBackupState) -> None:
        with self._lock:
            self.state = st
        try:
            self._save(st)
        except OSError as e:
            log.error("cannot save %s: %s", STATE_FILE, e)

    @property
    def published(self) -> KeeperBackupState | None:
        with self._lock:
            return self.state.copy() if self.state is not None else None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- each keeper cycle ------------------------------------------------------------------
    def consider(
        self,
        cd: ClusterData | None,
        *,
        keeper_uid: str,
        my_db_uid: str,
        master_running: bool,
        setup: MethodSetup | None,
        setup_error: str,
        retain: int | None,
        timeout: float,
    ) -> None:
        """Start what is due: the repository for a newly running master, a requested backup."""
        if self.busy:
            return
        if (
            master_running
            and setup is not None
            and self._ensured != (setup.commands.archive_command, my_db_uid)
        ):
            self._start(self._ensure, setup, my_db_uid)
            return
        handled = self.state.request_id if self.state is not None else ""
        req = wanted_request(cd, keeper_uid, my_db_uid, handled)
        if req is None or not master_running:
            return
        if setup is None:
            now = datetime.now(UTC)
            why = setup_error or "the cluster spec has no backup section"
            self._set(
                KeeperBackupState(
                    request_id=req.id, phase=BACKUP_FAILED, start_time=now, end_time=now, message=why
                )
            )
            log.error("backup request %s failed: %s", req.id, why)
            return
        self._start(self._run, req, setup, retain, timeout)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, name="backup", daemon=True)
        self._thread = t
        t.start()

    def _ensure(self, setup: MethodSetup, db_uid: str) -> None:
        try:
            setup.method.ensure_repository(setup.ctx)
            self._ensured = (setup.commands.archive_command, db_uid)
            log.info("backup repository of method %s is ready", setup.name)
        except (BackupError, PostgresError, OSError) as e:
            log.error("cannot prepare the backup repository of method %s: %s", setup.name, e)
            time.sleep(5.0)  # the next cycle tries again

    def _run(self, req: BackupRequest, setup: MethodSetup, retain: int | None, timeout: float) -> None:
        start = datetime.now(UTC)
        t0 = time.monotonic()
        self._set(KeeperBackupState(request_id=req.id, phase=BACKUP_RUNNING, start_time=start))
        ctx = replace(setup.ctx, timeout=timeout)
        with self.tracer.start_as_current_span("keeper.backup") as span:
            span.set_attribute("stolon.backup.method", setup.name)
            span.set_attribute("stolon.backup.request_id", req.id)
            span.set_attribute("stolon.backup.requested_by", req.requested_by)
            try:
                setup.method.ensure_repository(ctx)
                with self.tracker.running("backup", f"base backup with {setup.name} (request {req.id})"):
                    info = setup.method.create_backup(ctx, self.tracker.report)
            except (BackupError, PostgresError, OSError) as e:
                message = one_line(e)
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, message))
                self._set(
                    KeeperBackupState(
                        request_id=req.id,
                        phase=BACKUP_FAILED,
                        start_time=start,
                        end_time=datetime.now(UTC),
                        message=message,
                    )
                )
                log.error("backup request %s failed: %s", req.id, message)
                return
            duration = time.monotonic() - t0
            span.set_attribute("stolon.backup.id", info.id)
            span.set_attribute("stolon.backup.size", info.size)
            span.set_attribute("stolon.backup.duration_s", round(duration, 3))
            log.info("backup %s taken in %.1fs (%d bytes), request %s", info.id, duration, info.size, req.id)
            if retain:
                self._retain(setup, ctx, retain, span)
            self.last_success = time.time()
            self._set(
                KeeperBackupState(
                    request_id=req.id,
                    phase=BACKUP_COMPLETED,
                    backup_id=info.id,
                    start_time=start,
                    end_time=datetime.now(UTC),
                    size=info.size,
                )
            )

    def _retain(self, setup: MethodSetup, ctx: BackupContext, retain: int, span: trace.Span) -> None:
        try:
            deleted = setup.method.delete_backups(ctx, retain)
        except (BackupError, PostgresError, OSError) as e:
            log.error("applying backup.retain=%d failed: %s", retain, e)
            span.add_event("retention failed", {"error": one_line(e)})
            return
        if deleted:
            log.info("backup.retain=%d: deleted backups %s", retain, ", ".join(deleted))
        span.set_attribute("stolon.backup.deleted", ",".join(deleted))
