"""stolon-keeper: makes the local PostgreSQL match the DB the cluster data assigns to it.

Threads (as Go Stolon's keeper):

- the **main thread** runs the state machine every ``sleepInterval``: read the cluster
  data, gather local facts, :func:`~stolon.keeper.plan.plan`, execute;
- the **collector** queries PostgreSQL every ``sleepInterval/2`` (time-bounded);
- the **publisher** writes the KeeperInfo every ``sleepInterval`` with a TTL. It never
  publishes a stale healthy state: a collection older than ``sleepInterval`` is published
  as unhealthy. It keeps publishing while the main thread runs a long base backup.

The postmaster is tied to this process (``PR_SET_PDEATHSIG``): if the keeper dies, even
by SIGKILL, its PostgreSQL shuts down. When the store is unreachable the keeper leaves
PostgreSQL as it is (Go Stolon's behaviour: the proxies fence clients); see
docs/keeper.md.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from opentelemetry.trace import Status, StatusCode

from stolon import telemetry
from stolon.backup.base import BackupError
from stolon.keeper import pgconfig
from stolon.keeper import plan as p
from stolon.keeper.activity import ActivityTracker
from stolon.keeper.backup_jobs import BackupJobs
from stolon.keeper.backups import KeeperBackups, MethodSetup
from stolon.keeper.cdmemo import ClusterDataMemo, PlanInputs, reuse_plan
from stolon.keeper.conditions import conditions
from stolon.keeper.config import KeeperConfig
from stolon.keeper.executor import Executor, StepFailed
from stolon.keeper.localstate import (
    PGDATA_DIR,
    DataDirLock,
    DataDirLockedError,
    DBLocalState,
    KeeperLocalState,
)
from stolon.keeper.pgconfig import DesiredConfig, KeeperIdentity
from stolon.keeper.pgstate import StateConnections, collect_state
from stolon.keeper.selffence import SelfFence
from stolon.metrics import Metrics, set_role
from stolon.model import (
    DB,
    ClusterData,
    ClusterDataError,
    KeeperInfo,
    PostgresState,
    TimelineHistory,
)
from stolon.model.cluster import (
    DB_INIT_PITR,
    ROLE_MASTER,
    SWITCHOVER_CATCHING_UP,
    PostgresBinaryVersion,
)
from stolon.model.infos import ArchiverState
from stolon.model.spec import DEFAULT_BACKUP_TIMEOUT, ClusterSpec, DefaultedSpec
from stolon.model.uid import new_uid, new_uuid
from stolon.plugins import StolonPluginManager
from stolon.postgres import safefs
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.controldata import system_identifier
from stolon.postgres.credentials import AuthMethod, Credentials
from stolon.postgres.datadir import LocalRole
from stolon.postgres.errors import PostgresError
from stolon.postgres.instance import Instance
from stolon.postgres.lease import LEASE_FILE, LeaseFile, without_lease
from stolon.postgres.runas import OSUser, resolve_pg_os_user
from stolon.specstate import StoredSpecCheck
from stolon.store import ClusterStore, open_store
from stolon.store.base import ChangeKind, StoreError, Watch

log = logging.getLogger("stolon.keeper")

DEFAULT_SLEEP = 5.0
#: Steps after which the PostgreSQL state is collected and published at once.
STATE_CHANGING_STEPS = (
    p.Promote,
    p.StartPostgres,
    p.Restart,
    p.StopPostgres,
    p.StopCleanly,
    p.FinishInit,
    p.Reload,
)
MAX_INIT_PASSES = 3


def light_pass(
    *,
    woken: bool,
    last: tuple[ClusterData | None, float] | None,
    cd: ClusterData | None,
    now: float,
    period: float,
) -> bool:
    """Whether a cycle may stop after reading the cluster data (:meth:`Keeper.cycle`): it
    was woken by a change, the memo handed back the very object the last complete cycle
    ran on (only the sentinel's heartbeat fields moved), and that cycle started less than
    a period ago."""
    return woken and last is not None and last[0] is cd and now < last[1] + period


def _changes_state(steps: tuple[p.Step, ...], facts: p.LocalFacts) -> bool:
    """Whether running ``steps`` changes what the keeper reports (role, running, applied
    generation): then it reports at once instead of at the next heartbeat."""
    for step in steps:
        if isinstance(step, STATE_CHANGING_STEPS):
            return True
        if isinstance(step, p.SaveGeneration) and (step.db_uid, step.generation) != (
            facts.db_uid,
            facts.db_generation,
        ):
            return True
    return False


class FatalError(Exception):
    """The keeper can't run (Go Stolon's log.Fatal cases)."""


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to interrupt a long step."""


@dataclass
class Collected:
    state: PostgresState
    at: float
    in_sync: tuple[str, ...]
    system_id: str
    timeline: int
    xlog: int


class KeeperMetrics:
    def __init__(self, cluster_name: str) -> None:
        self.m = Metrics("keeper", cluster_name)
        g = self.m.gauge
        self.cd_valid = g(
            "stolon_keeper_clusterdata_last_valid_update_seconds", "Last time we received a valid clusterdata"
        )
        self.target_role = g("stolon_keeper_target_role", "Keeper last requested target role", ("role",))
        self.local_role = g("stolon_keeper_local_role", "Keeper current local role", ("role",))
        self.needs_reload = g("stolon_keeper_needs_reload", "Set to 1 if Postgres requires reload")
        self.needs_restart = g("stolon_keeper_needs_restart", "Set to 1 if Postgres requires restart")
        self.last_sync = g(
            "stolon_keeper_last_sync_success_seconds", "Last time we synchronized the postgres instance"
        )
        self.sleep_interval = g("stolon_keeper_sleep_interval", "Seconds to sleep between sync loops")
        self.shutdown = g("stolon_keeper_shutdown_seconds", "Shutdown time (received termination signal)")
        self.self_fenced = g(
            "stolon_keeper_self_fenced",
            "1 while this master refuses writes because the store has not confirmed it",
        )
        self.self_fences = self.m.counter(
            "stolon_keeper_self_fences", "Times this keeper made its master refuse writes (self-fencing)"
        )
        self.archive_failed = g(
            "stolon_keeper_archive_failed_count", "WAL archiving failures (pg_stat_archiver.failed_count)"
        )
        self.archived = g(
            "stolon_keeper_archived_count", "WAL files archived (pg_stat_archiver.archived_count)"
        )
        self.last_archived = g(
            "stolon_keeper_last_archived_time_seconds", "Time the last WAL file was archived (unix seconds)"
        )
        self.backup_error = g(
            "stolon_keeper_backup_method_error", "Set to 1 if the cluster's backup method can't be used here"
        )
        self.last_backup = g(
            "stolon_keeper_last_backup_success_seconds", "Time this keeper last completed a base backup"
        )
        self.invalid_parameters = g(
            "stolon_keeper_invalid_parameters",
            "pgParameters entries left out of postgresql.conf (invalid, or rejected by PostgreSQL)",
        )
        self.reload_rejected = g(
            "stolon_keeper_config_reload_rejected",
            "Set to 1 if PostgreSQL did not apply the configuration at the last reload",
        )
        self.spec_warnings = g(
            "stolon_cluster_spec_warnings",
            "Rules of ours the stored cluster spec breaks (used as documented; see stolonctl status)",
        )
        set_role(self.target_role, "undefined")
        set_role(self.local_role, "undefined")


class Keeper:
    """The keeper process: ``plugins`` gives it its store backend and backup methods."""

    def __init__(self, cfg: KeeperConfig, plugins: StolonPluginManager) -> None:
        self.cfg = cfg
        self.plugins = plugins
        self.data_dir = cfg.data_dir
        self.boot_uuid = new_uuid()
        self.uid = cfg.uid
        self.cluster_uid = ""
        self.sleep = DEFAULT_SLEEP
        self.request_timeout = 10.0
        self.metrics = KeeperMetrics(cfg.store.cluster_name)
        self._stop = threading.Event()
        #: set to make the collector collect and then the publisher publish at once
        self._collect_now = threading.Event()
        #: the switchover whose target this keeper last reported at once
        self._switchover_kicked = ""
        self._publish_now = threading.Event()
        self._busy = False
        #: the main thread waits for a change or its next cycle: a signal ends the wait
        #: (raising Shutdown there), so the wait needs no polling of the stop flag
        self._idle = False
        self._collected: Collected | None = None
        #: the collector's connections, kept open between collections
        self._state_conns: StateConnections | None = None
        self._lock: DataDirLock | None = None
        self.instance: Instance | None = None
        self.executor: Executor | None = None
        self.pg_version = PostgresBinaryVersion()
        self.os_user: OSUser | None = None
        self.backups: KeeperBackups | None = None
        self.jobs: BackupJobs | None = None
        self._backup_setup: MethodSetup | None = None
        self._archive_failures: int | None = None
        self.spec_check = StoredSpecCheck(log)
        #: the pgParameters of our DB spec (for the conditions we publish)
        self.spec_parameters: dict[str, str] = {}
        self.self_fence: SelfFence | None = None
        self.lease: LeaseFile | None = None
        #: the cluster data as last read, reused while only the sentinel's heartbeat
        #: fields change (see stolon.keeper.cdmemo)
        self._cd_memo = ClusterDataMemo()
        #: the spec accepted from a cluster data object and its defaults, for that object
        self._accepted: tuple[ClusterData, ClusterSpec, DefaultedSpec] | None = None
        #: the last plan and what it was planned on (cluster data object, identity, facts)
        self._last_plan: tuple[PlanInputs, p.Plan] | None = None
        #: cycles that reused the last plan (tests, debugging)
        self.plans_reused = 0
        #: the cluster data object the last complete cycle ran on, and when it started: a
        #: wake-up on a heartbeat-only write before the next period is a light cycle
        self._full_cycle: tuple[ClusterData | None, float] | None = None
        #: light cycles run (tests, debugging)
        self.light_cycles = 0

    # -- start-up ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        cfg = self.cfg
        try:
            self.os_user = resolve_pg_os_user(cfg.pg_os_user)
            bins = PgBinaries.find(cfg.pg_bin_path or None)
            version = bins.check_supported()
            bins.check_runnable_by(self.os_user)
        except PostgresError as e:
            raise FatalError(str(e)) from None
        self.pg_version = PostgresBinaryVersion(maj=version.major, min=version.minor)
        try:
            self.data_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            # PostgreSQL (another OS user) must reach <data-dir>/postgres: the data dir is
            # its, mode 0700; our own files in it stay root's, mode 0600. Owner and mode are
            # set through a descriptor, and a link at --data-dir is followed only if nobody
            # but root can change the directory holding it.
            safefs.make_dir(self.data_dir, self.os_user, 0o700, follow_last=True)
        except (OSError, PostgresError) as e:
            raise FatalError(f"cannot use --data-dir {str(self.data_dir)!r}: {e}") from None
        if not cfg.disable_data_dir_locking:
            self._lock = DataDirLock(self.data_dir)
            try:
                self._lock.acquire()
            except DataDirLockedError as e:
                raise FatalError(str(e)) from None
            except (OSError, PostgresError) as e:
                raise FatalError(f"cannot lock the data dir: {e}") from None
            log.info("exclusive lock on data dir taken")
        try:
            saved = KeeperLocalState.load(self.data_dir)
        except (OSError, ValueError, PostgresError) as e:
            raise FatalError(f"cannot read the keeper state: {e}") from None
        if saved is not None and saved.uid and cfg.uid and saved.uid != cfg.uid:
            raise FatalError(f"saved uid {saved.uid!r} differs from configuration uid: {cfg.uid!r}")
        self.uid = (saved.uid if saved else "") or cfg.uid or new_uid()
        self.cluster_uid = saved.cluster_uid if saved else ""
        if saved is None or saved.uid != self.uid:
            KeeperLocalState(self.uid, self.cluster_uid).save(self.data_dir)
        log.info("keeper uid %s, boot uuid %s", self.uid, self.boot_uuid)
        su = Credentials(
            cfg.pg_su_username, cfg.pg_su_password.reveal() or None, AuthMethod(cfg.pg_su_auth_method)
        )
        repl = (
            su
            if cfg.pg_repl_username == cfg.pg_su_username
            else Credentials(
                cfg.pg_repl_username,
                cfg.pg_repl_password.reveal() or None,
                AuthMethod(cfg.pg_repl_auth_method),
            )
        )
        self.instance = Instance(
            self.data_dir / PGDATA_DIR,
            bins,
            self.os_user,
            port=int(cfg.pg_port),
            socket_dir=self.data_dir / "run",
            superuser=su,
            replication=repl,
        )
        self.instance.stop_stale_postmaster()
        self.backups = KeeperBackups(
            self.plugins, self.data_dir, self.instance, cfg.store.cluster_name, version.major
        )
        self.executor = Executor(cfg, self.instance, self.data_dir, self.backups)
        self.jobs = BackupJobs(self.data_dir, ActivityTracker())
        # the master lease the stolon_lease module checks at commit (stolon/postgres/lease.py)
        self.lease = LeaseFile(self.data_dir / LEASE_FILE, self.os_user, bins)
        self.self_fence = SelfFence(
            self.uid,
            self.instance.set_write_fence,
            lambda: open_store(self.cfg.store, self.plugins),
            on_change=self._self_fence_changed,
            write_lease=self.lease.write,
        )
        self.executor.before_master = self.self_fence.becoming_master

    def _lease_file(self) -> str:
        """The lease file PostgreSQL is to check: self-fencing on and the module installed
        ("" otherwise: the module is not loaded)."""
        if self.lease is None or self.self_fence is None or self.self_fence.timeout <= 0:
            return ""
        return str(self.lease.path) if self.lease.installed() else ""

    def _self_fence_changed(self, fenced: bool, why: str) -> None:
        self.metrics.self_fenced.set(1 if fenced else 0)
        if fenced:
            self.metrics.self_fences.inc()

    def identity(self) -> KeeperIdentity:
        cfg = self.cfg
        return KeeperIdentity(
            uid=self.uid,
            listen_address=cfg.pg_listen_address,
            port=int(cfg.pg_port),
            socket_dir=str(self.data_dir / "run"),
            su_username=cfg.pg_su_username,
            su_auth=AuthMethod(cfg.pg_su_auth_method),
            repl_username=cfg.pg_repl_username,
            repl_auth=AuthMethod(cfg.pg_repl_auth_method),
            repl_password=cfg.pg_repl_password.reveal() or None,
        )

    # -- collector / publisher --------------------------------------------------------------
    def _collect_once(self) -> None:
        inst = self.instance
        assert inst is not None
        dbls = DBLocalState.load(self.data_dir)
        st = PostgresState(
            uid=dbls.uid,
            generation=dbls.generation,
            listen_address=self.cfg.pg_advertise_address,
            port=self.cfg.pg_advertise_port,
        )
        cs = collect_state(inst, timeout=self.request_timeout, conns=self._state_conns)
        in_sync: tuple[str, ...] = ()
        if cs.healthy:
            st.healthy = True
            st.system_id = cs.system_id
            st.timeline_id = cs.timeline_id
            st.xlog_pos = cs.xlog_pos
            st.timelines_history = [
                TimelineHistory(timeline_id=h.timeline_id, switch_point=h.switch_point, reason=h.reason)
                for h in cs.timelines_history
            ] or None
            reported = without_lease(cs.pg_parameters)
            st.pg_parameters = (
                pgconfig.without_backup_parameters(reported) if self._backup_setup is not None else reported
            )
            st.synchronous_standbys = list(cs.synchronous_standbys)
            st.older_wal_file = cs.older_wal_file
            in_sync = tuple(cs.synchronous_standbys)
            if cs.archiver is not None:
                a = cs.archiver
                st.archiver = ArchiverState(
                    archived_count=a.archived_count,
                    last_archived_wal=a.last_archived_wal,
                    last_archived_time=a.last_archived_time,
                    failed_count=a.failed_count,
                    last_failed_wal=a.last_failed_wal,
                    last_failed_time=a.last_failed_time,
                )
                self._note_archive_failures(a.failed_count, a.last_failed_wal)
                self.metrics.archive_failed.set(a.failed_count)
                self.metrics.archived.set(a.archived_count)
                if a.last_archived_time is not None:
                    self.metrics.last_archived.set(a.last_archived_time.timestamp())
            if self.executor is not None and self.executor.state.lost_slots:
                st.lost_replication_slots = list(self.executor.state.lost_slots)
        elif cs.errors:
            log.debug("postgres state not healthy: %s", "; ".join(cs.errors))
        self._collected = Collected(st, time.monotonic(), in_sync, cs.system_id, cs.timeline_id, cs.xlog_pos)
        if self.executor is not None and cs.healthy:
            self.executor.last_xlog = (cs.timeline_id, cs.xlog_pos)

    def _note_archive_failures(self, failed_count: int, last_failed_wal: str) -> None:
        """A span (and a log line) when archiving failed since the last collection."""
        seen = self._archive_failures
        self._archive_failures = failed_count
        if seen is None or failed_count <= seen:
            return  # first sight, or the statistics were reset
        log.warning(
            "archiving WAL failed %d more time(s), last with %s", failed_count - seen, last_failed_wal
        )
        tracer = telemetry.tracer("keeper")
        with tracer.start_as_current_span("keeper.archive_failure") as span:
            span.set_attribute(telemetry.ATTR_KEEPER, self.uid)
            span.set_attribute("stolon.backup.method", self._backup_setup.name if self._backup_setup else "")
            span.set_attribute("stolon.archive.failed_count", failed_count)
            span.set_attribute("stolon.archive.new_failures", failed_count - seen)
            span.set_attribute("stolon.archive.last_failed_wal", last_failed_wal)
            span.set_status(Status(StatusCode.ERROR, f"archiving {last_failed_wal} failed"))

    def _fresh(self) -> Collected | None:
        c = self._collected
        if c is None or time.monotonic() - c.at > self.sleep:
            return None
        return c

    def _collector(self) -> None:
        assert self.instance is not None
        self._state_conns = StateConnections(self.instance)
        try:
            while not self._stop.is_set():
                kicked = self._collect_now.is_set()
                self._collect_now.clear()
                try:
                    self._collect_once()
                except Exception as e:
                    log.warning("collecting the postgres state failed: %s", e)
                if kicked:
                    self._publish_now.set()
                self._wait(self._collect_now, max(0.2, self.sleep / 2))
        finally:
            self._state_conns.close()

    def _wait(self, event: threading.Event, timeout: float) -> None:
        """Wait for ``event`` (or a stop: :meth:`_halt` sets every event) up to
        ``timeout`` seconds."""
        if not self._stop.is_set():
            event.wait(timeout)

    def _halt(self) -> None:
        """Stop: the flag, and the events the threads wait on (so they see it at once
        without polling it)."""
        self._stop.set()
        self._collect_now.set()
        self._publish_now.set()

    def report_now(self) -> None:
        """Collect the PostgreSQL state and publish the keeper info now (after a step that
        changed it: the sentinel learns of a promotion without waiting for a heartbeat)."""
        self._collect_now.set()

    def keeper_info(self) -> KeeperInfo:
        fresh = self._fresh()
        if fresh is not None:
            pg_state = fresh.state
        else:
            dbls = DBLocalState.load(self.data_dir)
            pg_state = PostgresState(
                uid=dbls.uid,
                generation=dbls.generation,
                listen_address=self.cfg.pg_advertise_address,
                port=self.cfg.pg_advertise_port,
                healthy=False,
            )
        stopped = self.executor.state.stopped_at if self.executor is not None else None
        if stopped is not None and not pg_state.healthy and stopped[0] == pg_state.uid:
            # Cleanly shut down as the DB spec asks (switchover): say where its WAL ends.
            pg_state = pg_state.copy()
            pg_state.stopped_xlog_pos = stopped[1]
        if self.executor is not None:
            found = conditions(self.spec_parameters, self.executor.state)
            self.metrics.invalid_parameters.set(sum(1 for c in found if c.parameter))
            self.metrics.reload_rejected.set(1 if self.executor.state.reload_problem else 0)
            if found:
                pg_state = pg_state.copy()
                pg_state.conditions = found
        activity = None
        if self.executor is not None:
            activity = self.executor.activity.current
        if activity is None and self.jobs is not None:
            activity = self.jobs.tracker.current
        return KeeperInfo(
            info_uid=new_uid(),
            uid=self.uid,
            cluster_uid=self.cluster_uid,
            boot_uuid=self.boot_uuid,
            postgres_binary_version=self.pg_version,
            postgres_state=pg_state,
            can_be_master=self.cfg.can_be_master,
            can_be_synchronous_replica=self.cfg.can_be_synchronous_replica,
            activity=activity,
            backup=self.jobs.published if self.jobs is not None else None,
            backup_error=self.backups.error if self.backups is not None else "",
        )

    def _publisher(self) -> None:
        store = open_store(self.cfg.store, self.plugins)
        try:
            while not self._stop.is_set():
                self._publish_now.clear()
                if self.cluster_uid:
                    try:
                        info = self.keeper_info()
                        started = time.monotonic()
                        store.put_keeper_info(info, ttl=self.sleep)
                        if self.self_fence is not None:
                            self.self_fence.wrote(started)
                    except StoreError as e:
                        log.warning("failed to update keeper info: %s", e)
                    except (OSError, ValueError, PostgresError) as e:
                        # e.g. dbstate unreadable (the data dir is the PostgreSQL user's):
                        # skip this publication, never end the thread
                        log.error("cannot build the keeper info: %s", e)
                self._wait(self._publish_now, self.sleep)
        finally:
            store.close()

    # -- the state machine ------------------------------------------------------------------
    def local_facts(self, cd: ClusterData | None) -> p.LocalFacts:
        inst = self.instance
        ex = self.executor
        assert inst is not None and ex is not None
        dbls = DBLocalState.load(self.data_dir)
        running = inst.is_running()
        applied = inst.applied_config if running else None
        fresh = self._fresh()
        system_id = fresh.system_id if fresh is not None and fresh.system_id else ""
        db = cd.db_of_keeper(self.uid) if cd is not None else None
        if not system_id and db is not None and db.uid != dbls.uid:
            system_id = system_identifier(inst)
        pitr_command, pitr_error = self._pitr_facts(cd, db, dbls.uid)
        return p.LocalFacts(
            boot_uuid=self.boot_uuid,
            db_uid=dbls.uid,
            db_generation=dbls.generation,
            initializing=dbls.initializing,
            init_parameters=dbls.init_pg_parameters,
            pg_major=self.pg_version.maj,
            pg_initialized=inst.is_initialized(),
            pg_running=running,
            local_role=str(inst.local_role()),
            local_system_id=system_id,
            applied=DesiredConfig(dict(applied.parameters), tuple(applied.hba), applied.recovery)
            if applied
            else None,
            sync_guard=ex.state.sync_guard,
            in_sync_standbys=fresh.in_sync if fresh is not None else None,
            backup=self._backup_setup.commands if self._backup_setup is not None else None,
            pitr_restore_command=pitr_command,
            pitr_error=pitr_error,
            rejected_parameters={name: value for name, (value, _m) in ex.state.rejected.items()},
            reload_rejected=ex.state.reload_problem is not None,
            lease_file=self._lease_file(),
        )

    def _pitr_facts(self, cd: ClusterData | None, db: DB | None, local_db_uid: str) -> tuple[str, str]:
        """(restore command, error) of ``pitrConfig.fromBackup``'s method, when our DB is
        about to be restored from a backup."""
        if (
            cd is None
            or cd.cluster is None
            or db is None
            or db.spec is None
            or db.uid == local_db_uid
            or db.spec.init_mode != DB_INIT_PITR
            or db.spec.pitr_config is None
            or db.spec.pitr_config.from_backup is None
            or self.backups is None
        ):
            return "", ""
        section = cd.cluster.spec.backup if cd.cluster.spec is not None else None
        name, settings = pgconfig.from_backup_method(db.spec.pitr_config.from_backup, section)
        try:
            return self.backups.pitr_setup(name, settings).commands.restore_command, ""
        except BackupError as e:
            return "", str(e)

    def cycle(self, store: ClusterStore, *, woken: bool = False) -> None:
        """One pass: read the cluster data, plan, run the plan's steps.

        ``woken``: the cluster data changed before the period was over. When the memo
        says the change was the leader sentinel's heartbeat only (the same object as the
        last complete cycle's), the pass stops after the self-fencing confirmation: the
        plan and its steps would run on the same inputs as less than ``sleepInterval``
        ago, and the periodic pass comes at its time. At rest the sentinel writes every
        ``sleepInterval`` and the two periods drift, so this halves the passes (Go's
        keeper runs one per ``sleepInterval``). Any other change runs a whole pass at once.
        """
        ex = self.executor
        assert ex is not None
        started = time.monotonic()
        try:
            cd, _ = store.get_cluster_data(parse=self._cd_memo.parse)
        except ClusterDataError:
            if self.self_fence is not None:
                self.self_fence.read_unusable(started)
            return  # unreadable (logged once by the store): postgres is left as it is
        except StoreError as e:
            log.error("cannot get cluster data, leaving postgres as it is: %s", e)
            return
        if cd is not None and cd.cluster is not None:
            accepted = self._accept(cd)
            if accepted is None:
                return  # logged once: postgres is left as it is
            spec, d = accepted
            self.sleep = d.sleep_interval.seconds or DEFAULT_SLEEP
            if self.self_fence is not None:
                self.self_fence.configure(d.self_fencing_timeout.seconds, self.sleep)
                self.self_fence.read(started, cd)
            self.request_timeout = d.request_timeout.seconds
            ex.timeouts.db_wait_ready = d.db_wait_ready_timeout.seconds
            ex.timeouts.sync = d.sync_timeout.seconds
            ex.timeouts.request = d.request_timeout.seconds
            self._apply_backup_spec(spec)
            self.metrics.cd_valid.set(time.time())
            self.metrics.sleep_interval.set(self.sleep)
            if cd.cluster.uid != self.cluster_uid:
                self.cluster_uid = cd.cluster.uid
                KeeperLocalState(self.uid, self.cluster_uid).save(self.data_dir)
        if light_pass(woken=woken, last=self._full_cycle, cd=cd, now=started, period=self.sleep):
            self.light_cycles += 1
            return
        self._full_cycle = None
        mine = cd.db_of_keeper(self.uid) if cd is not None else None
        self.spec_parameters = dict(mine.spec.pg_parameters or {}) if mine is not None and mine.spec else {}
        ex.state.rejected = {
            k: v for k, v in ex.state.rejected.items() if self.spec_parameters.get(k) == v[0]
        }
        self._report_if_switchover_target(cd, mine.uid if mine is not None else "")
        me = self.identity()
        for _ in range(MAX_INIT_PASSES):
            facts = self.local_facts(cd)
            pl = self._plan(cd, me, facts)
            for note in pl.notes:
                log.info("%s", note)
            db = cd.db_of_keeper(self.uid) if cd is not None else None
            ex.trace_context = db.trace_context if db is not None else None
            ex.db_uid = db.uid if db is not None else ""
            set_role(self.metrics.target_role, pl.target_role)
            set_role(self.metrics.local_role, facts.local_role)
            self._note_local_master(facts)
            self._busy = True
            try:
                done = ex.run(pl.steps)
            finally:
                self._busy = False
                if _changes_state(pl.steps, facts):
                    self.report_now()
            if done and pl.converges:
                self.metrics.last_sync.set(time.time())
            self.metrics.needs_restart.set(1 if ex.state.needs_restart else 0)
            if not (done and pl.initializes):
                break
        self._note_local_master(None)
        self._consider_backups(cd)
        self._full_cycle = (cd, started)

    def _accept(self, cd: ClusterData) -> tuple[ClusterSpec, DefaultedSpec] | None:
        """The stored spec (None: refused, logged once) and its defaults; worked out again
        only for a new cluster data object (the memo returns the same object while nothing
        but heartbeats changed)."""
        if self._accepted is not None and self._accepted[0] is cd:
            return self._accepted[1], self._accepted[2]
        self._accepted = None
        spec = self.spec_check.accept(cd)
        self.metrics.spec_warnings.set(len(self.spec_check.warnings))
        if spec is None or cd.cluster is None:
            return None
        d = cd.cluster.def_spec().d()
        self._accepted = (cd, spec, d)
        return spec, d

    def _plan(self, cd: ClusterData | None, me: KeeperIdentity, facts: p.LocalFacts) -> p.Plan:
        """:func:`~stolon.keeper.plan.plan`, or its last result when it would be planned on
        the same inputs (it is a pure function): the same cluster data object, identity and
        local facts."""
        inputs = PlanInputs(cd, me, facts)
        last = self._last_plan
        if last is not None and reuse_plan(last[0], inputs):
            self.plans_reused += 1
            return last[1]
        pl = p.plan(cd, me, facts)
        self._last_plan = (inputs, pl)
        return pl

    def _report_if_switchover_target(self, cd: ClusterData | None, db_uid: str) -> None:
        """The sentinel promotes a switchover's target once it reports the old master's
        shutdown position: when the cluster data says the old master stopped and this DB is
        the target, report at once instead of at the next heartbeat (up to sleepInterval)."""
        st = cd.cluster.status if cd is not None and cd.cluster is not None else None
        sw = st.switchover if st is not None else None
        if sw is None or not db_uid or sw.target_db != db_uid or sw.phase != SWITCHOVER_CATCHING_UP:
            return
        if sw.id != self._switchover_kicked:
            self._switchover_kicked = sw.id
            self.report_now()

    def _note_local_master(self, facts: p.LocalFacts | None) -> None:
        """Tell self-fencing whether the local server runs as a master (after a cycle's
        steps, from a fresh look; before them, from the facts they were planned on)."""
        if self.self_fence is None or self.instance is None:
            return
        if facts is not None:
            running_master = facts.pg_running and facts.local_role == str(LocalRole.MASTER)
        else:
            running_master = self.instance.is_running() and self.instance.local_role() == LocalRole.MASTER
        self.self_fence.local_master(running_master)

    def _apply_backup_spec(self, spec: ClusterSpec) -> None:
        """This cycle's backup method (built once per settings change)."""
        assert self.backups is not None and self.executor is not None
        self._backup_setup = self.backups.archive_setup(spec)
        self.executor.backup_setup = self._backup_setup
        timeout = spec.backup.effective_timeout if spec.backup is not None else DEFAULT_BACKUP_TIMEOUT
        self.executor.timeouts.backup = timeout.seconds
        self.metrics.backup_error.set(1 if self.backups.error else 0)

    def _consider_backups(self, cd: ClusterData | None) -> None:
        """Start the backup work that is due (a requested base backup, the repository)."""
        jobs, inst = self.jobs, self.instance
        if jobs is None or inst is None or cd is None or cd.cluster is None:
            return
        db = cd.db_of_keeper(self.uid)
        my_db = db.uid if db is not None else ""
        master_running = bool(
            db is not None
            and db.spec is not None
            and db.spec.role == ROLE_MASTER
            and cd.cluster.status.master == my_db
            and inst.is_running()
            and inst.local_role() == LocalRole.MASTER
        )
        spec = cd.cluster.spec
        section = spec.backup if spec is not None else None
        jobs.consider(
            cd,
            keeper_uid=self.uid,
            my_db_uid=my_db,
            master_running=master_running,
            setup=self._backup_setup,
            setup_error=self.backups.error if self.backups is not None else "",
            retain=section.retain if section is not None else None,
            timeout=(section.effective_timeout if section is not None else DEFAULT_BACKUP_TIMEOUT).seconds,
        )
        if jobs.last_success:
            self.metrics.last_backup.set(jobs.last_success)

    def run(self) -> int:
        try:
            self._prepare()
        except FatalError as e:
            log.critical("%s", e)
            return 1
        telemetry.setup_tracing("keeper", self.cfg.store.cluster_name)
        try:
            self.metrics.m.serve(self.cfg.metrics_listen_address)
        except OSError as e:
            log.critical("metrics http server error: %s", e)
            return 1
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        store = open_store(self.cfg.store, self.plugins)
        watch = store.watch(frozenset({ChangeKind.CLUSTER_DATA}))
        threads = [
            threading.Thread(target=self._collector, name="collector", daemon=True),
            threading.Thread(target=self._publisher, name="publisher", daemon=True),
        ]
        for t in threads:
            t.start()
        if self.self_fence is not None:
            self.self_fence.start()
        try:
            woken = False
            while not self._stop.is_set():
                try:
                    self.cycle(store, woken=woken)
                except Shutdown:
                    break
                except (StepFailed, PostgresError, StoreError, OSError) as e:
                    log.error("%s", e)
                except Exception:
                    log.exception("unexpected error in the keeper state machine")
                woken = self._wait_change(watch, self._next_period())
        except Shutdown:
            pass
        finally:
            self._halt()
            if self.self_fence is not None:
                self.self_fence.stop()
            watch.close()
            self._shutdown(store)
        return 0

    def _next_period(self) -> float:
        """Seconds until the next periodic cycle: ``sleepInterval`` after the start of the
        last complete one (``sleepInterval`` from now when the last one did not complete)."""
        last = self._full_cycle
        if last is None:
            return self.sleep
        return max(0.0, last[1] + self.sleep - time.monotonic())

    def _wait_change(self, watch: Watch, timeout: float) -> bool:
        """Until the cluster data changes (a new generation to apply, a new master to
        follow: True) or ``timeout`` seconds (False): the periodic cycle stays the
        heartbeat. A signal raises Shutdown out of the wait (see :meth:`_on_signal`)."""
        deadline = time.monotonic() + timeout
        self._idle = True
        try:
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if watch.wait(left):
                    return True
            return False
        finally:
            self._idle = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("got signal %s, stopping", signal.Signals(signum).name)
        self.metrics.shutdown.set(time.time())
        first = not self._stop.is_set()
        self._halt()
        if first and (self._busy or self._idle):
            raise Shutdown()

    def _shutdown(self, store: ClusterStore) -> None:
        # Ignore further signals while we stop PostgreSQL cleanly.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.instance is not None:
            try:
                if self.instance.is_running():
                    log.info("stopping database")
                    self.instance.stop("fast")
            except PostgresError as e:
                log.error("failed to stop postgres: %s", e)
        store.close()
        if self._lock is not None:
            self._lock.release()
