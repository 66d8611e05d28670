"""Runs the steps of a keeper plan against the PostgreSQL instance.

Each long or state-changing step (initdb, restore, resync, promote, restart, reload) is an
OpenTelemetry span with the DB and keeper uids; when the cluster data carries the trace
context of the sentinel decision that produced the DB's generation, the span joins that
trace. A step that fails raises; the daemon logs it and plans again next cycle.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import assert_never

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from stolon import telemetry
from stolon.backup.base import (
    LATEST,
    BackupContext,
    BackupError,
    BackupInfo,
    RecoveryTarget,
    one_line,
    select_backup,
)
from stolon.keeper import pgconfig
from stolon.keeper import plan as p
from stolon.keeper.activity import ActivityTracker, directory_size, human_bytes, watch_directory
from stolon.keeper.archive_catchup import push_older_segments
from stolon.keeper.backups import KeeperBackups, MethodSetup
from stolon.keeper.config import KeeperConfig
from stolon.keeper.localstate import DBLocalState
from stolon.keeper.pgconfig import DesiredConfig
from stolon.logonce import OncePerChange
from stolon.postgres import datadir, roles, safefs, slots, state
from stolon.postgres import lease as pglease
from stolon.postgres.configcheck import rejected_parameters
from stolon.postgres.connection import ReusableConnection
from stolon.postgres.controldata import read_controldata
from stolon.postgres.errors import PostgresError, ReloadRejectedError
from stolon.postgres.hba import quote_hba_token
from stolon.postgres.instance import Instance
from stolon.postgres.lsn import format_lsn, parse_lsn
from stolon.postgres.recovery import NO_RECOVERY, RECOVERY_SIGNAL, STANDBY_SIGNAL, RecoveryMode
from stolon.postgres.replication import SourceServer, basebackup, rewind
from stolon.postgres.runas import run_command

log = logging.getLogger("stolon.keeper")

#: pg_controldata's "Database cluster state" of a primary after a clean shutdown.
CLEAN_SHUTDOWN = "shut down"

#: Bound for commands whose spec timeout is 0 ("no limit"): every subprocess is bounded.
MAX_UNBOUNDED = 24 * 3600.0


class StepFailed(Exception):
    """A step could not be done; the message says why (logged by the daemon)."""


@dataclass
class Timeouts:
    db_wait_ready: float = 60.0
    sync: float = 0.0
    request: float = 10.0
    #: one base backup or restore through a backup method (``backup.timeout``)
    backup: float = 6 * 3600.0

    @property
    def sync_bound(self) -> float:
        return self.sync if self.sync > 0 else MAX_UNBOUNDED


#: the longest a reading of pending_restart is reused (seconds)
PENDING_RESTART_MAX_AGE = 30.0


@dataclass
class ExecutorState:
    """What the executor remembers between cycles (in memory only)."""

    sync_guard: bool = False
    needs_restart: bool = False
    lost_slots: list[str] = field(default_factory=list)
    init_parameters: dict[str, str] | None = None
    #: (db uid, shutdown checkpoint location) after a StopCleanly, until PostgreSQL starts again
    stopped_at: tuple[str, int] | None = None
    #: user parameters the server rejected: name → (rejected value, its message); left out
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: why the last reload was not applied (None: it was, or none happened)
    reload_problem: str | None = None
    #: parameters waiting for a restart that the keeper does not do (automaticPgRestart off)
    pending_restart: list[str] = field(default_factory=list)


def expand_restore_command(command: str, data_dir: Path) -> str:
    """Go Stolon's ``%d`` expansion: ``%d`` is the data directory, ``%%`` a literal ``%``."""
    out = []
    i = 0
    while i < len(command):
        c = command[i]
        if c == "%" and i + 1 < len(command):
            nxt = command[i + 1]
            if nxt == "d":
                out.append(str(data_dir))
                i += 2
                continue
            if nxt == "%":
                out.append("%")
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


class Executor:
    def __init__(
        self, cfg: KeeperConfig, instance: Instance, data_dir: Path, backups: KeeperBackups | None = None
    ) -> None:
        self.cfg = cfg
        self.instance = instance
        self.data_dir = data_dir
        self.state = ExecutorState()
        self.timeouts = Timeouts()
        self.tracer = telemetry.tracer("keeper")
        self.activity = ActivityTracker()
        #: the keeper's backup methods (None: backups not available in this process)
        self.backups = backups
        #: the cluster's backup method, as of the current cycle (set by the daemon)
        self.backup_setup: MethodSetup | None = None
        #: trace context of the DB generation being applied (set by the daemon each cycle)
        self.trace_context: dict[str, str] | None = None
        #: UID of the DB the cluster data assigns to this keeper (set by the daemon each
        #: cycle): the ``stolon.db.uid`` of the spans of steps that name no DB
        self.db_uid = ""
        self.last_xlog = (0, 0)  # (timeline, xlog pos) last collected, for span attributes
        #: the last candidate configuration checked by the server, and what it rejected
        self._checked: tuple[object, dict[str, str]] | None = None
        self._rejections = OncePerChange(log)
        #: called before PostgreSQL is promoted or started as a master (set by the daemon:
        #: self-fencing writes a fresh master lease, stolon/postgres/lease.py)
        self.before_master: Callable[[], None] | None = None
        #: the superuser connection of the checks every cycle plans (pending restart,
        #: replication slots), kept open between cycles: see ReusableConnection
        self.kept = ReusableConnection(instance.admin_params)
        #: bumped whenever a configuration is applied (start, reload, restart)
        self._config_epoch = 0
        #: the settings pending a restart as last read: ((postmaster pid, configuration
        #: epoch), when, names)
        self._pending_read: tuple[tuple[int, int], float, list[str]] | None = None

    def _becoming_master(self) -> None:
        if self.before_master is not None:
            self.before_master()

    # -- tracing ----------------------------------------------------------------------------
    @contextmanager
    def _span(self, name: str, db_uid: str, **attrs: str | int | bool) -> Iterator[trace.Span]:
        parent = telemetry.context_from(self.trace_context)
        with self.tracer.start_as_current_span(f"keeper.{name}", context=parent) as span:
            span.set_attribute(telemetry.ATTR_KEEPER, self.cfg.uid)
            span.set_attribute(telemetry.ATTR_DB, db_uid)
            tl, pos = self.last_xlog
            if tl:
                span.set_attribute(telemetry.ATTR_TIMELINE, tl)
                span.set_attribute(telemetry.ATTR_XLOGPOS, pos)
            for k, v in attrs.items():
                span.set_attribute(f"stolon.{k}", v)
            yield span

    # -- helpers ----------------------------------------------------------------------------
    def _apply(self, config: DesiredConfig) -> None:
        # A configuration about to be applied (start, restart, reload): the next check must
        # not run in a backend that has not processed the reload yet.
        self.kept.close_connection()
        self._config_epoch += 1
        parameters = self._without_rejected(config)
        self.instance.set_config(parameters=parameters, hba=config.hba, recovery=config.recovery)

    def _without_rejected(self, config: DesiredConfig) -> dict[str, str]:
        """``config.parameters`` without the user entries the server rejects.

        The candidate file is checked by the server binary (:mod:`stolon.postgres.configcheck`)
        whenever it differs from the last one checked; each rejected user entry is left out,
        remembered (the plan leaves it out too while its value stays the same) and logged
        once. The keeper's own entries are never left out: a rejected one is logged, and the
        start or reload fails as it would have.
        """
        params = dict(config.parameters)
        if not config.droppable or not self.instance.is_initialized():
            return params
        recovery = config.recovery.conf_parameters
        key = (tuple(sorted(params.items())), tuple(sorted(recovery.items())))
        if self._checked is not None and self._checked[0] == key:
            rejected = self._checked[1]
        else:
            try:
                result = rejected_parameters(
                    self.instance, params, recovery, timeout=max(self.timeouts.request, 5.0) + 10.0
                )
            except (PostgresError, OSError) as e:
                log.warning("cannot check the configuration with the server (using it unchecked): %s", e)
                return params
            rejected = result.rejected
            if result.unexplained:
                log.error("the server refuses the configuration: %s", result.unexplained)
            self._checked = (key, rejected)
        for name, message in rejected.items():
            if name in config.droppable:
                value = params.pop(name)
                self.state.rejected[name] = (value, message)
                self._rejections.report(
                    name,
                    value,
                    f"pgParameters.{name} = {value!r} is rejected by PostgreSQL and left out of"
                    f" postgresql.conf: {message}",
                )
            else:
                self._rejections.report(name, params[name], f"PostgreSQL rejects parameter {name}: {message}")
        return params

    def _start(self, config: DesiredConfig, *, tmp_merged: bool = False, wait: float | None = None) -> None:
        self.state.stopped_at = None
        self._apply(config)
        if config.recovery.mode is RecoveryMode.NONE:
            self._becoming_master()
        try:
            self.instance.start(tmp_merged=tmp_merged)
            self.instance.wait_ready(self.timeouts.db_wait_ready if wait is None else wait)
        except PostgresError as e:
            raise StepFailed(f"failed to start postgres: {e}") from None

    def _read_init_parameters(self) -> dict[str, str]:
        with self.instance.connect_admin() as conn:
            params = state.user_config_parameters(conn)
        # the archive settings the backup method renders are ours, not the instance's, and
        # so is what loads the lease module
        params = pglease.without_lease(params)
        return pgconfig.without_backup_parameters(params) if self.backup_setup is not None else params

    def _ensure_roles(self) -> None:
        """For an existing data dir: set the superuser password and make sure the
        replication role exists with its password, hashed for the configured method."""
        su, repl = self.instance.superuser, self.instance.replication
        with self.instance.connect_admin() as conn:
            if repl.username == su.username:
                roles.setup_roles(conn, su, repl)
                return
            roles.set_password(conn, su)
            roles.ensure_replication_role(conn, repl)

    def _save_dbstate(self, st: DBLocalState) -> None:
        st.save(self.data_dir)

    # -- steps ------------------------------------------------------------------------------
    def run(self, steps: tuple[p.Step, ...]) -> bool:
        """Run the steps in order; return True when all ran (no Wait/Fail)."""
        for step in steps:
            if isinstance(step, p.Wait):
                log.info("%s", step.message)
                return False
            if isinstance(step, p.Fail):
                log.error("%s", step.message)
                return False
            self._dispatch(step)
        return True

    def _dispatch(self, step: p.Step) -> None:
        """One step to its handler. Exhaustive over :data:`stolon.keeper.plan.Step`: mypy
        fails on a step type without a case here (``assert_never``)."""
        match step:
            case p.StopPostgres():
                self._do_StopPostgres(step)
            case p.CleanFailedInit():
                self._do_CleanFailedInit(step)
            case p.StopCleanly():
                self._do_StopCleanly(step)
            case p.BeginInit():
                self._do_BeginInit(step)
            case p.InitNew():
                self._do_InitNew(step)
            case p.InitPITR():
                self._do_InitPITR(step)
            case p.InitExisting():
                self._do_InitExisting(step)
            case p.Resync():
                self._do_Resync(step)
            case p.FinishInit():
                self._do_FinishInit(step)
            case p.StartPostgres():
                self._do_StartPostgres(step)
            case p.Promote():
                self._do_Promote(step)
            case p.Reload():
                self._do_Reload(step)
            case p.Restart():
                self._do_Restart(step)
            case p.CheckRestart():
                self._do_CheckRestart(step)
            case p.RefreshSlots():
                self._do_RefreshSlots(step)
            case p.SetSyncGuard():
                self._do_SetSyncGuard(step)
            case p.SaveGeneration():
                self._do_SaveGeneration(step)
            case p.Wait() | p.Fail():
                raise StepFailed(f"{type(step).__name__} is not an action: {step.message}")
            case _:
                assert_never(step)

    def _do_StopPostgres(self, step: p.StopPostgres) -> None:
        if self.instance.is_running():
            log.info("stopping database: %s", step.reason)
            self.instance.stop("fast")

    def _do_CleanFailedInit(self, step: p.CleanFailedInit) -> None:
        log.error("db failed to initialize or resync")
        self.instance.stop("fast")
        self.instance.remove_data_dir()
        self._save_dbstate(DBLocalState())

    def _do_StopCleanly(self, step: p.StopCleanly) -> None:
        if self.instance.is_running():
            log.info("%s", step.reason)
            with self._span("shutdown", step.db_uid):
                self.instance.stop("fast")
        elif self.state.stopped_at is not None and self.state.stopped_at[0] == step.db_uid:
            return  # already shut down and read by this process
        facts = read_controldata(self.instance, timeout=self.timeouts.request)
        state = facts.get("Database cluster state", "")
        if state != CLEAN_SHUTDOWN:
            # Crashed: recover and shut down again, so the end of its WAL covers everything
            # it may have acknowledged (proxies are fenced; direct writes meanwhile are in it).
            log.warning("postgres was not shut down cleanly (%r): starting it to shut it down cleanly", state)
            self._start(step.config)
            with self._span("shutdown", step.db_uid):
                self.instance.stop("fast")
            facts = read_controldata(self.instance, timeout=self.timeouts.request)
            state = facts.get("Database cluster state", "")
            if state != CLEAN_SHUTDOWN:
                raise StepFailed(f"postgres is still not cleanly shut down (state {state!r})")
        try:
            pos = parse_lsn(facts.get("Latest checkpoint location", ""))
        except ValueError as e:
            raise StepFailed(f"cannot read the shutdown checkpoint location: {e}") from None
        if self.state.stopped_at != (step.db_uid, pos):
            log.info("postgres shut down cleanly, its WAL ends with the checkpoint at %s", format_lsn(pos))
        self.state.stopped_at = (step.db_uid, pos)

    def _do_BeginInit(self, step: p.BeginInit) -> None:
        self.state.stopped_at = None
        self.state.sync_guard = False
        self.state.init_parameters = None
        self._save_dbstate(DBLocalState(uid=step.db_uid, generation=0, initializing=step.initializing))

    def _do_InitNew(self, step: p.InitNew) -> None:
        log.info("initializing the database cluster")
        with self._span("initdb", step.db_uid):
            self.instance.stop("fast")
            self.instance.remove_data_dir()
            self.instance.initdb(
                locale=step.locale or None,
                encoding=step.encoding or None,
                data_checksums=step.data_checksums,
            )
            self._start(step.config, tmp_merged=True)
            if step.include_previous:
                self.state.init_parameters = self._read_init_parameters()
            self.instance.setup_roles()
            self.instance.stop("fast")

    def _do_InitPITR(self, step: p.InitPITR) -> None:
        log.info("restoring the database cluster")
        with self._span("restore", step.db_uid) as span:
            self.instance.stop("fast")
            self.instance.remove_data_dir()
            pgdata = self.instance.data_dir
            datadir.create_data_dir(pgdata, self.instance.os_user)
            if step.backup_source is not None:
                self._restore_from_backup(step.backup_source, span)
            else:
                command = expand_restore_command(step.data_restore_command, pgdata)
                log.info("running the data restore command")
                try:
                    run_command(
                        ["/bin/sh", "-c", command],
                        user=self.instance.os_user,
                        timeout=self.timeouts.sync_bound,
                    )
                except PostgresError as e:
                    datadir.remove_data_dir(pgdata)
                    span.record_exception(e)
                    raise StepFailed(f"data restore command failed: {e}") from None
            # The restore may have left files of other owners; PGDATA must not be a link
            # (the command runs as the PostgreSQL user, who could have swapped it).
            try:
                safefs.give_tree_to(pgdata, self.instance.os_user)
            except (OSError, PostgresError) as e:
                span.record_exception(e)
                raise StepFailed(f"the restore left an unusable data directory: {e}") from None
            config = step.config
            set_roles = step.backup_source is not None and step.wait_recovery
            if set_roles:
                # The restored roles have the source cluster's passwords: until ours are set,
                # the superuser may log in without one over the keeper's private socket
                # directory (only root and PostgreSQL's OS user can reach it).
                su = quote_hba_token(self.instance.superuser.username)
                config = replace(config, hba=(f"local postgres {su} trust", *config.hba))
            self._start(config, tmp_merged=True, wait=self.timeouts.sync_bound)
            if step.wait_recovery:
                self.instance.wait_recovery_done(self.timeouts.sync)
                self.instance.wait_ready(self.timeouts.sync_bound)
                # out of archive recovery: a master, about to take the keeper's writes
                self._becoming_master()
            if set_roles:
                self.instance.wait_writable(self.timeouts.sync_bound)
                self._ensure_roles()
            if step.include_previous:
                self.state.init_parameters = self._read_init_parameters()
            self.instance.stop("fast")

    def _restore_from_backup(self, source: p.BackupSource, span: trace.Span) -> None:
        """``pitrConfig.fromBackup``: pick the backup and restore it into the (empty) PGDATA;
        on any failure PGDATA is removed and the step fails with a one-line reason."""
        pgdata = self.instance.data_dir
        span.set_attribute("stolon.backup.method", source.method)
        try:
            if self.backups is None:
                raise BackupError("backup methods are not available in this keeper")
            setup = self.backups.pitr_setup(source.method, json.loads(source.settings_json))
            ctx = replace(setup.ctx, timeout=self.timeouts.backup)
            target = RecoveryTarget(source.target_kind, source.target_value)
            backup = select_backup(setup.method.list_backups(ctx), source.backup_id, target)
            span.set_attribute("stolon.backup.id", backup.id)
            span.set_attribute("stolon.backup.size", backup.size)
            span.set_attribute("stolon.backup.recovery_target", target.describe())
            self._restore_backup(setup, ctx, backup)
        except (BackupError, PostgresError, OSError) as e:
            datadir.remove_data_dir(pgdata)
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, str(e)))
            raise StepFailed(f"restore from backup failed: {one_line(e)}") from None

    def _restore_backup(self, setup: MethodSetup, ctx: BackupContext, backup: BackupInfo) -> None:
        pgdata = self.instance.data_dir
        start = time.monotonic()
        detail = f"restoring backup {backup.id} ({setup.name}) into {pgdata}"
        with self.activity.running("restore", detail, backup.size), watch_directory(self.activity, pgdata):
            setup.method.restore_backup(ctx, backup, pgdata, self.activity.report)
        for leftover in (RECOVERY_SIGNAL, STANDBY_SIGNAL):
            safefs.unlink(pgdata / leftover)  # not through a PGDATA the restore made a link
        log.info(
            "backup %s restored in %.1fs (%s)",
            backup.id,
            time.monotonic() - start,
            human_bytes(directory_size(pgdata)),
        )

    def _do_InitExisting(self, step: p.InitExisting) -> None:
        log.info("using the existing database cluster")
        with self._span("init_existing", step.db_uid):
            self.instance.stop("fast")
            if not self.instance.is_initialized():
                raise StepFailed(
                    f"init mode existing but {self.instance.data_dir} is not an initialized data directory"
                )
            self._start(
                DesiredConfig(step.config.parameters, step.config.hba, NO_RECOVERY, step.config.droppable),
                tmp_merged=True,
            )
            if step.include_previous:
                self.state.init_parameters = self._read_init_parameters()
            self._ensure_roles()
            self.instance.stop("fast")

    def _do_Resync(self, step: p.Resync) -> None:
        log.info("resyncing the database cluster")
        with self._span("resync", step.db_uid, source_db=step.source_db) as span:
            self.instance.stop("fast")
            rewound = False
            if step.try_rewind:
                su = self.instance.superuser
                try:
                    with self.tracer.start_as_current_span("keeper.pg_rewind"):
                        rewind(
                            self.instance,
                            SourceServer(step.source_host, step.source_port, su.username, su.login_password),
                            timeout=self.timeouts.sync_bound,
                        )
                    rewound = True
                except PostgresError as e:
                    log.warning("pg_rewind failed, falling back to a full resync: %s", e)
                    span.add_event("pg_rewind failed, falling back to pg_basebackup", {"error": str(e)})
            if rewound:
                try:
                    self._start(step.config)
                    span.set_attribute("stolon.resync.method", "pg_rewind")
                    return
                except StepFailed as e:
                    log.warning("rewound instance did not start (%s): doing a full resync", e)
                    span.add_event("rewound instance not ready, falling back to pg_basebackup")
                    self.instance.stop("fast")
            self.instance.remove_data_dir()
            if step.from_backup and self._resync_from_backup(step, span):
                return
            repl = self.instance.replication
            with (
                self.tracer.start_as_current_span("keeper.pg_basebackup"),
                self.activity.running("pg_basebackup", f"copying db {step.source_db}"),
                watch_directory(self.activity, self.instance.data_dir),
            ):
                basebackup(
                    self.instance,
                    SourceServer(step.source_host, step.source_port, repl.username, repl.login_password),
                    db_uid=step.db_uid,
                    timeout=self.timeouts.sync_bound,
                )
            span.set_attribute("stolon.resync.method", "pg_basebackup")
            self._start(step.config, wait=max(self.timeouts.db_wait_ready, self.timeouts.sync))

    def _resync_from_backup(self, step: p.Resync, span: trace.Span) -> bool:
        """``backup.restoreStandbys``: restore the latest backup, then start as a standby
        (WAL from the archive, then streaming). False (PGDATA removed) when it can't."""
        setup = self.backup_setup
        if setup is None:
            return False
        pgdata = self.instance.data_dir
        try:
            datadir.create_data_dir(pgdata, self.instance.os_user)
            ctx = replace(setup.ctx, timeout=self.timeouts.backup)
            backups = setup.method.list_backups(ctx)
            if step.source_system_id:
                backups = [b for b in backups if b.system_id in ("", step.source_system_id)]
            backup = select_backup(backups, LATEST, RecoveryTarget())
            with self.tracer.start_as_current_span("keeper.restore_backup") as bspan:
                bspan.set_attribute("stolon.backup.method", setup.name)
                bspan.set_attribute("stolon.backup.id", backup.id)
                bspan.set_attribute("stolon.backup.size", backup.size)
                self._restore_backup(setup, ctx, backup)
            safefs.give_tree_to(pgdata, self.instance.os_user)  # link-safe; PGDATA must not be a link
            self._start(step.config, wait=max(self.timeouts.db_wait_ready, self.timeouts.sync))
        except (BackupError, PostgresError, StepFailed, OSError) as e:
            log.warning(
                "restoring the latest backup failed, copying from db %s instead: %s", step.source_db, e
            )
            span.add_event("restore from backup failed, falling back to pg_basebackup", {"error": str(e)})
            try:
                self.instance.stop("immediate")
            except PostgresError:
                pass
            datadir.remove_data_dir(pgdata)
            return False
        span.set_attribute("stolon.resync.method", f"backup:{setup.name}")
        return True

    def _do_FinishInit(self, step: p.FinishInit) -> None:
        self._save_dbstate(
            DBLocalState(
                uid=step.db_uid,
                generation=0,
                initializing=False,
                init_pg_parameters=self.state.init_parameters,
            )
        )

    def _do_StartPostgres(self, step: p.StartPostgres) -> None:
        log.info("%s", step.reason)
        self._start(step.config)

    def _do_Promote(self, step: p.Promote) -> None:
        log.info("promoting to master")
        with self._span("promote", self.db_uid):
            self._sync_names_before_promotion(step.config)
            self._apply(step.config)
            self._becoming_master()
            self.instance.promote(wait=True, timeout=max(self.timeouts.db_wait_ready, 10.0))
            setup = self.backup_setup
            if setup is not None and setup.commands.archive_mode == "on":
                push_older_segments(
                    self.instance.data_dir, setup.commands.archive_command, self.instance.os_user, self.tracer
                )

    def _sync_names_before_promotion(self, config: DesiredConfig) -> None:
        """A synchronous master-to-be waits for its synchronous standbys from its first
        commit: ``synchronous_standby_names`` is reloaded on the standby before
        ``pg_ctl promote`` (Instance.synchronous_standby_names_before_promotion). Should
        that reload fail, the promotion goes on as before (a failover must not hang on
        it); the proxies are fenced until the new master reports its promotion."""
        names = config.parameters.get("synchronous_standby_names", "")
        if not names or not self.instance.is_running():
            return
        try:
            if self.instance.synchronous_standby_names_before_promotion(
                names, confirm_timeout=max(self.timeouts.request, 1.0)
            ):
                log.info("synchronous_standby_names set to %r before the promotion", names)
        except (PostgresError, ValueError, OSError) as e:
            log.warning("could not set synchronous_standby_names before the promotion: %s", e)

    def _do_Reload(self, step: p.Reload) -> None:
        log.info("%s", step.reason)
        with self._span("reload", self.db_uid, reason=step.reason) as span:
            self._apply(step.config)
            try:
                self.instance.reload(confirm_timeout=max(self.timeouts.request, 1.0))
            except ReloadRejectedError as e:
                # Not taken as applied: the plan asks for the reload again next cycle, and
                # the keeper reports it (condition, metric). The step does not fail: a bad
                # pgHBA entry must not make the master miss its convergence and fail over.
                self.state.reload_problem = str(e)
                span.set_attribute("stolon.reload.rejected", str(e))
                self._rejections.report(
                    "reload", str(e), f"the configuration reload was not applied (retried every cycle): {e}"
                )
                return
            self.state.reload_problem = None
            self._rejections.clear("reload", "the configuration reload was applied")

    def _do_Restart(self, step: p.Restart) -> None:
        log.info("%s", step.reason)
        with self._span("restart", self.db_uid, reason=step.reason):
            self._apply(step.config)
            self.instance.restart("fast")
            self.instance.wait_ready(self.timeouts.db_wait_ready)

    def _pending_restart(self) -> list[str]:
        """``pg_settings.pending_restart``, read again only when it may have changed: after
        a configuration was applied, when the postmaster is another one, and at least every
        :data:`PENDING_RESTART_MAX_AGE` seconds (a change made behind the keeper's back);
        otherwise the last reading (CheckRestart runs every cycle)."""
        pid = self.instance.postmaster_pid
        now = time.monotonic()
        last = self._pending_read
        fresh = last is not None and now - last[1] < PENDING_RESTART_MAX_AGE
        if pid is not None and last is not None and fresh and last[0] == (pid, self._config_epoch):
            return list(last[2])
        key = (pid or 0, self._config_epoch)
        pending = self.kept.run(state.pending_restart, self.instance.request_timeout)
        self._pending_read = (key, now, list(pending)) if pid is not None else None
        return pending

    def _do_CheckRestart(self, step: p.CheckRestart) -> None:
        pending = self._pending_restart()
        self.state.needs_restart = bool(pending)
        self.state.pending_restart = list(pending)
        if not pending:
            return
        if not step.automatic:
            log.info("postgres parameters %s need a restart to apply (automaticPgRestart is off)", pending)
            return
        if step.blockers:
            log.info("not restarting yet: %s", "; ".join(step.blockers))
            return
        self._do_Restart(p.Restart(step.config, f"restarting postgres to apply {', '.join(pending)}"))
        self.state.needs_restart = False
        self.state.pending_restart = []

    def _do_RefreshSlots(self, step: p.RefreshSlots) -> None:
        res = self.kept.run(
            lambda conn: slots.refresh_slots(conn, step.wanted), self.instance.request_timeout
        )
        self.state.lost_slots = res.lost
        for name in res.lost:
            log.warning(
                "replication slot %s lost its WAL (max_slot_wal_keep_size): its standby must resync", name
            )

    def _do_SetSyncGuard(self, step: p.SetSyncGuard) -> None:
        if step.on:
            log.info(
                "not allowing connection as normal users since synchronous replication is enabled and instance was down"
            )
        else:
            log.info("allowing connection as normal users: synchronous standbys are in sync")
        self.state.sync_guard = step.on

    def _do_SaveGeneration(self, step: p.SaveGeneration) -> None:
        current = DBLocalState.load(self.data_dir)
        if current.uid != step.db_uid or current.generation != step.generation or current.initializing:
            current.uid = step.db_uid
            current.generation = step.generation
            current.initializing = False
            self._save_dbstate(current)
