"""Events: what one sentinel cycle decided, and why.

Every decision :func:`stolon.sentinel.decide.decide` takes is reported as one of the frozen
dataclasses below, in the order the cycle took them (``Decision.events``). They are the
product of a cycle as much as the new cluster data: the sentinel daemon turns them into
OpenTelemetry span events (``kind`` is the event name, :meth:`Event.attributes` the
attributes), log lines and metrics, and operators read them to learn why a failover did or
did not happen. Every kind is documented in docs/sentinel-decisions.md ("Events").

Stability: ``kind`` strings, field names and the values of the cause enums are part of the
sentinel's observable interface. Add fields, kinds and causes freely; don't rename or remove
them.

Conventions:
- ``*_db`` / ``db_uid`` fields are DB UIDs, ``*_keeper`` / ``keeper_uid`` fields keeper UIDs.
- ``cause`` fields are :class:`enum.StrEnum` members of this module (an election candidate's
  refusals are :class:`stolon.sentinel.eligibility.Refusal`); their values are what spans and
  logs show.
- Times named ``*_mono`` are seconds on the sentinel's monotonic clock (only differences mean
  anything); ``*_age_s`` are ages in seconds at the time of the cycle. Wall-clock times are
  :class:`datetime.datetime` and appear only where the cluster data persists them.
- List-valued fields are tuples, sorted unless their order means something (documented).

Health events (``keeper_unhealthy``, ``db_healthy``, ...) mark transitions and
``db_not_converged`` is reported once per generation; decisions that are re-taken every
cycle (``master_failed``/``no_eligible_master``, ``proxies_waiting``,
``sync_standbys_waiting``, ``waiting_for_initial_master``) repeat every cycle while they hold.
Everything that changes the cluster data has an event in the cycle that changes it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from stolon.sentinel.eligibility import Refusal

# -- causes ------------------------------------------------------------------------------------


class DBError(enum.StrEnum):
    """Why a DB's health check failed this cycle (``DBUnhealthy.cause``)."""

    NO_KEEPER_INFO = "no_keeper_info"  # the keeper published no fresh info
    NO_DB_STATE = "no_db_state"  # the info has no postgresState
    UNEXPECTED_DB_UID = "unexpected_db_uid"  # the keeper reports another DB incarnation
    POSTGRES_UNHEALTHY = "postgres_unhealthy"  # postgresState.healthy is false
    KEEPER_UNHEALTHY = "keeper_unhealthy"  # the DB's own state is fine but its keeper failed


class MasterFailure(enum.StrEnum):
    """Why the master is considered failed (``MasterFailed.causes``)."""

    UNHEALTHY = "unhealthy"
    CONVERGENCE_FAILED = "convergence_failed"


class DBRemoval(enum.StrEnum):
    """Why a DB was removed (``DBRemoved.cause``)."""

    OLD_MASTER = "old_master"
    INVALID_SYSTEM_ID = "invalid_system_id"
    FORKED_TIMELINE = "forked_timeline"
    CANNOT_SYNC = "cannot_sync"  # the WAL it needs is gone from the master
    NOT_GOOD_STANDBY = "not_good_standby"  # enough good standbys exist; this one isn't good
    STANDBY_IN_EXCESS = "standby_in_excess"  # more good standbys than maxStandbysPerSender
    INIT_FAILED = "init_failed"  # the initial master did not initialize in time


class DBAddition(enum.StrEnum):
    """Why a DB was added (``DBAdded.cause``)."""

    INITIAL_MASTER = "initial_master"  # initMode new
    EXISTING_MASTER = "existing_master"  # initMode existing
    PITR_MASTER = "pitr_master"  # initMode pitr
    NEW_STANDBY = "new_standby"  # a resync standby on a free keeper


class SyncChange(enum.StrEnum):
    """Why the synchronous standby lists changed (``SyncStandbysChanged.cause``)."""

    FAILOVER = "failover"  # the new master inherits the old master's list
    RECONCILE = "reconcile"  # standbys not yet in sync failed: spec shrunk to the known-in-sync set
    RESELECT = "reselect"  # a new set was chosen (failed ones dropped, good ones added, merge)
    DISABLED = "disabled"  # synchronous replication is off: lists cleared


class ProxiesWait(enum.StrEnum):
    """Why proxies are not yet pointed at the master (``ProxiesWaiting.cause``)."""

    NOT_CONVERGED = "proxies_not_converged"
    MASTER_NOT_PROMOTED = "master_not_promoted"
    MASTER_UNHEALTHY = "master_unhealthy"


class SwitchoverWait(enum.StrEnum):
    """Why a switchover waits (``SwitchoverWaiting.cause``)."""

    MASTER_STOP = "master_not_stopped"  # the old master has not reported its clean shutdown
    TARGET_BEHIND = "target_behind"  # the target has not reported the old master's last WAL
    TARGET_REPORT = "target_no_fresh_report"  # no healthy report of the target this cycle
    TARGET_NOT_READY = "target_not_ready"  # caught up, but still refused (e.g. lag): detail says why


class SwitchoverCancel(enum.StrEnum):
    """Why a switchover was cancelled (``SwitchoverCancelled.cause``)."""

    TIMED_OUT = "timeout"
    MASTER_CHANGED = "master_changed"  # the master is not the one the request was made for
    MASTER_FAILED = "master_failed"  # the old master failed: automatic failover takes over
    UNKNOWN_KEEPER = "unknown_keeper"
    NOT_ELIGIBLE = "target_not_eligible"
    NO_CANDIDATE = "no_eligible_standby"
    UNSUPPORTED = "unsupported"  # a standby cluster
    NEW_MASTER_REPLACED = "new_master_replaced"  # the promoted target failed before it was ready


class BackupFailure(enum.StrEnum):
    """Why a backup request failed (``BackupFailed.cause``)."""

    KEEPER_FAILED = "keeper_failed"  # the master's keeper reported the failure
    MASTER_CHANGED = "master_changed"  # the master is not the DB the request was made for
    TIMED_OUT = "timeout"  # no outcome within backup.timeout


class BackupSlotSkip(enum.StrEnum):
    """Why a scheduled slot got no backup (``BackupSlotSkipped.cause``)."""

    BUSY = "backup_running"
    NO_MASTER = "no_master"


#: Every cause vocabulary (docs/sentinel-decisions.md lists their values).
CAUSES: tuple[type[enum.StrEnum], ...] = (
    DBError,
    MasterFailure,
    DBRemoval,
    DBAddition,
    SyncChange,
    ProxiesWait,
    SwitchoverWait,
    SwitchoverCancel,
    BackupFailure,
    BackupSlotSkip,
    Refusal,
)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass(frozen=True)
class Event:
    """Base of every event. ``kind`` is the stable event name."""

    kind: ClassVar[str] = "event"

    def as_dict(self) -> dict[str, Any]:
        """Plain data (nested dataclasses become dicts, tuples lists), with ``kind`` first."""
        out: dict[str, Any] = {"kind": self.kind}
        out.update(_plain(self))
        return out

    def attributes(self) -> dict[str, str | int | float | bool | list[str]]:
        """Flat attributes for an OpenTelemetry span event.

        Scalars and tuples of strings map directly; ``None`` is left out; nested values (the
        election candidates) are JSON-encoded, one string per element.
        """
        out: dict[str, str | int | float | bool | list[str]] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, enum.Enum):
                out[f.name] = value.value
            elif isinstance(value, bool | int | float | str):
                out[f.name] = value
            elif isinstance(value, datetime):
                out[f.name] = value.isoformat()
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                out[f.name] = [v.value if isinstance(v, enum.Enum) else v for v in value]
            else:
                out[f.name] = [json.dumps(_plain(v), sort_keys=True) for v in value]
        return out


# -- cycle -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirstRun(Event):
    """First cycle after (re)gaining leadership: memory reset; keeper infos are only recorded
    (``infos_recorded`` of them) and every health flag is the one stored in the cluster data."""

    kind: ClassVar[str] = "first_run"
    infos_recorded: int


@dataclass(frozen=True)
class UpdateError(Event):
    """The cycle could not compute new cluster data; nothing is to be written."""

    kind: ClassVar[str] = "update_error"
    message: str


# -- health ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeeperInfoWrongCluster(Event):
    """A keeper info for another cluster UID was dropped."""

    kind: ClassVar[str] = "keeper_info_wrong_cluster"
    keeper_uid: str
    cluster_uid: str


@dataclass(frozen=True)
class KeeperInfoRejected(Event):
    """A keeper info was ignored: its UID breaks the keeper UID rule, its ``uid`` field is
    not the UID it is stored under, or its address or port is not one (anything else could
    reach other keepers' pg_hba.conf and conninfos). ``keeper_uid`` is escaped for display
    (:func:`stolon.model.text.printable`). Repeats every cycle while the info is there."""

    kind: ClassVar[str] = "keeper_info_rejected"
    keeper_uid: str
    why: str


@dataclass(frozen=True)
class KeeperAdded(Event):
    """A keeper published its first fresh info and got a Keeper object."""

    kind: ClassVar[str] = "keeper_added"
    keeper_uid: str


@dataclass(frozen=True)
class KeeperForceFailed(Event):
    """``stolonctl failkeeper``: the keeper is unhealthy for this one cycle."""

    kind: ClassVar[str] = "keeper_force_failed"
    keeper_uid: str


@dataclass(frozen=True)
class KeeperUnhealthy(Event):
    """A keeper went from healthy to unhealthy. ``error_since_mono`` is None when forced."""

    kind: ClassVar[str] = "keeper_unhealthy"
    keeper_uid: str
    error_since_mono: float | None
    error_age_s: float | None
    forced: bool


@dataclass(frozen=True)
class KeeperHealthy(Event):
    """A keeper went from unhealthy to healthy."""

    kind: ClassVar[str] = "keeper_healthy"
    keeper_uid: str


@dataclass(frozen=True)
class DBUnhealthy(Event):
    """A DB went from healthy to unhealthy, for this cycle's ``cause``."""

    kind: ClassVar[str] = "db_unhealthy"
    db_uid: str
    keeper_uid: str
    cause: DBError
    error_since_mono: float | None
    error_age_s: float | None


@dataclass(frozen=True)
class DBHealthy(Event):
    """A DB went from unhealthy to healthy."""

    kind: ClassVar[str] = "db_healthy"
    db_uid: str
    keeper_uid: str


# -- initialization --------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingForInitialMaster(Event):
    """The initial master DB has not finished initializing yet."""

    kind: ClassVar[str] = "waiting_for_initial_master"
    db_uid: str
    keeper_uid: str
    init_mode: str
    converged: bool
    healthy: bool


@dataclass(frozen=True)
class InitFailed(Event):
    """The initial master did not converge within ``timeout_s``: DBs reset, master unset."""

    kind: ClassVar[str] = "init_failed"
    db_uid: str
    keeper_uid: str
    timeout_s: float


@dataclass(frozen=True)
class PhaseChanged(Event):
    """Cluster phase change (``initializing`` → ``normal`` when the initial master is ready)."""

    kind: ClassVar[str] = "phase_changed"
    old_phase: str
    new_phase: str
    master_db: str
    merged_pg_parameters: bool


# -- normal phase ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeeperRemoved(Event):
    """A keeper without a DB was unhealthy for longer than deadKeeperRemovalInterval."""

    kind: ClassVar[str] = "keeper_removed"
    keeper_uid: str
    last_healthy_time: datetime | None


@dataclass(frozen=True)
class DBNotConverged(Event):
    """The keeper has not applied ``generation`` within ``timeout_s`` (reported once per
    generation): the DB is failed (a master is replaced, a standby may be replaced)."""

    kind: ClassVar[str] = "db_not_converged"
    db_uid: str
    keeper_uid: str
    generation: int
    current_generation: int
    since_mono: float
    timeout_s: float


@dataclass(frozen=True)
class MasterFailed(Event):
    """The current master is not OK, for ``causes``."""

    kind: ClassVar[str] = "master_failed"
    db_uid: str
    keeper_uid: str
    causes: tuple[MasterFailure, ...]
    generation: int
    current_generation: int


@dataclass(frozen=True)
class Candidate:
    """One DB considered in an election (nested in :class:`MasterElected` / :class:`NoEligibleMaster`).

    ``lag_bytes`` is the old master's last reported xLogPos minus this DB's (negative when the
    DB is ahead). ``in_sync_set`` is None in an asynchronous election. ``streaming`` is the
    quirk-2 verdict: True/False, or None when not evaluated (synchronous election, or the old
    master was never seen reporting by this sentinel, see docs/sentinel-decisions.md). ``refusals`` lists
    every :class:`~stolon.sentinel.eligibility.Refusal` that applies, in evaluation order;
    empty for the chosen one.
    """

    db_uid: str
    keeper_uid: str
    db_type: str
    xlog_pos: int
    lag_bytes: int
    timeline_id: int
    healthy: bool
    converged: bool
    fresh_report: bool
    streaming: bool | None
    in_sync_set: bool | None
    chosen: bool
    refusals: tuple[Refusal, ...]


@dataclass(frozen=True)
class MasterElected(Event):
    """Failover decision: ``new_master_db`` replaces ``old_master_db``.

    ``why`` repeats the old master's failure causes. ``synchronous`` tells
    whether the election was restricted to ``known_in_sync`` (the old master's reported ∩
    defined synchronous standbys). Candidates are ranked best first.
    """

    kind: ClassVar[str] = "master_elected"
    old_master_db: str
    old_master_keeper: str
    why: tuple[MasterFailure, ...]
    new_master_db: str
    new_master_keeper: str
    synchronous: bool
    known_in_sync: tuple[str, ...]
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class NoEligibleMaster(Event):
    """The master failed but no candidate qualifies; nothing changes. See ``candidates``."""

    kind: ClassVar[str] = "no_eligible_master"
    old_master_db: str
    old_master_keeper: str
    why: tuple[MasterFailure, ...]
    synchronous: bool
    known_in_sync: tuple[str, ...]
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class ProxiesFenced(Event):
    """Fencing step 1: ``masterDbUid`` cleared so every proxy drops its connections."""

    kind: ClassVar[str] = "proxies_fenced"
    old_master_db: str
    new_master_db: str
    proxy_generation: int


@dataclass(frozen=True)
class ProxiesWaiting(Event):
    """Fencing step 2 is on hold, for ``cause``; ``proxies`` lists the active proxies that
    have not applied ``proxy_generation`` (empty when waiting on the master)."""

    kind: ClassVar[str] = "proxies_waiting"
    master_db: str
    cause: ProxiesWait
    proxies: tuple[str, ...]
    proxy_generation: int


@dataclass(frozen=True)
class ProxiesPointed(Event):
    """Fencing step 2: proxies told to route to ``master_db``."""

    kind: ClassVar[str] = "proxies_pointed"
    master_db: str
    proxy_generation: int


@dataclass(frozen=True)
class EnabledProxiesChanged(Event):
    """The set of proxies allowed to route changed (active proxies)."""

    kind: ClassVar[str] = "enabled_proxies_changed"
    old: tuple[str, ...]
    new: tuple[str, ...]
    proxy_generation: int


@dataclass(frozen=True)
class StandbyClusterPromoted(Event):
    """The cluster role became master: the standby-cluster master stops following the remote
    primary and is promoted."""

    kind: ClassVar[str] = "standby_cluster_promoted"
    db_uid: str
    keeper_uid: str


@dataclass(frozen=True)
class DBAdded(Event):
    """A DB was created, for ``cause``."""

    kind: ClassVar[str] = "db_added"
    db_uid: str
    keeper_uid: str
    role: str
    init_mode: str
    cause: DBAddition


@dataclass(frozen=True)
class DBRemoved(Event):
    """A DB was removed, for ``cause``; ``detail`` is free text."""

    kind: ClassVar[str] = "db_removed"
    db_uid: str
    keeper_uid: str
    cause: DBRemoval
    detail: str = ""


@dataclass(frozen=True)
class SyncStandbysWaiting(Event):
    """The master has not yet reported every defined synchronous standby as in sync."""

    kind: ClassVar[str] = "sync_standbys_waiting"
    master_db: str
    in_sync: tuple[str, ...]
    defined: tuple[str, ...]


@dataclass(frozen=True)
class SyncStandbysChanged(Event):
    """The master's synchronous standby lists changed (old → new).

    ``defined`` is ``spec.synchronousStandbys``, ``in_sync`` is ``status.synchronousStandbys``
    (the known-in-sync set; order as stored), ``external`` is
    ``spec.externalSynchronousStandbys`` (``stolonfakestandby`` when real ones are missing).
    """

    kind: ClassVar[str] = "sync_standbys_changed"
    master_db: str
    cause: SyncChange
    old_defined: tuple[str, ...]
    new_defined: tuple[str, ...]
    old_in_sync: tuple[str, ...]
    new_in_sync: tuple[str, ...]
    old_external: tuple[str, ...]
    new_external: tuple[str, ...]


# -- fencing (ours; docs/fencing.md) ---------------------------------------------------------


@dataclass(frozen=True)
class FencingRequested(Event):
    """An election chose ``new_master_db``, but the fencing methods of the cluster spec must
    first be run against the old master (which may still be alive). The daemon runs them
    after writing this cycle's cluster data and reports the outcome to the next cycle; the
    proxies are fenced already."""

    kind: ClassVar[str] = "fencing_requested"
    old_master_db: str
    old_master_keeper: str
    host: str
    port: str
    new_master_db: str
    new_master_keeper: str
    methods: tuple[str, ...]
    policy: str
    timeout_s: float


@dataclass(frozen=True)
class FencingChecked(Event):
    """The outcome of fencing the old master, and what the election does with it under
    ``policy``: ``promote`` says whether ``new_master_db`` is promoted in this cycle."""

    kind: ClassVar[str] = "fencing_checked"
    old_master_db: str
    old_master_keeper: str
    new_master_db: str
    policy: str
    fenced: bool
    promote: bool
    detail: str


# -- planned switchover (ours; docs/switchover.md) -------------------------------------------


@dataclass(frozen=True)
class SwitchoverStarted(Event):
    """Step 1: proxies fenced and the old master told to shut down cleanly (DB spec
    ``stopped``); ``target_db`` will be promoted once it has all of the old master's WAL.
    ``chosen_by`` is ``request`` (stolonctl --to) or ``sentinel`` (best eligible standby)."""

    kind: ClassVar[str] = "switchover_started"
    switchover_id: str
    old_master_db: str
    old_master_keeper: str
    target_db: str
    target_keeper: str
    synchronous: bool
    chosen_by: str


@dataclass(frozen=True)
class SwitchoverMasterStopped(Event):
    """Step 2: the old master reported its clean shutdown; its WAL ends at ``xlog_pos``."""

    kind: ClassVar[str] = "switchover_master_stopped"
    switchover_id: str
    db_uid: str
    keeper_uid: str
    xlog_pos: int


@dataclass(frozen=True)
class SwitchoverWaiting(Event):
    """A switchover step is waiting, for ``cause``."""

    kind: ClassVar[str] = "switchover_waiting"
    switchover_id: str
    phase: str
    cause: SwitchoverWait
    detail: str


@dataclass(frozen=True)
class SwitchoverPromoted(Event):
    """Step 3: the target reported ``target_xlog_pos`` ≥ the old master's last position
    ``master_xlog_pos`` and is made master (promoted by its keeper)."""

    kind: ClassVar[str] = "switchover_promoted"
    switchover_id: str
    old_master_db: str
    old_master_keeper: str
    new_master_db: str
    new_master_keeper: str
    master_xlog_pos: int
    target_xlog_pos: int


@dataclass(frozen=True)
class SwitchoverCompleted(Event):
    """The new master is promoted and healthy; the old master comes back as a standby."""

    kind: ClassVar[str] = "switchover_completed"
    switchover_id: str
    new_master_db: str
    new_master_keeper: str


@dataclass(frozen=True)
class SwitchoverCancelled(Event):
    """The switchover was refused or abandoned in ``phase``, for ``cause``; ``detail`` is the
    one-line message stored in the request. A stopped old master is told to start again (it
    is still the master)."""

    kind: ClassVar[str] = "switchover_cancelled"
    switchover_id: str
    phase: str
    cause: SwitchoverCancel
    detail: str


# -- backups (docs/backup.md) ----------------------------------------------------------------


@dataclass(frozen=True)
class BackupRequested(Event):
    """The schedule (``backup.schedule``) asked the master's keeper for a base backup for
    ``slot``; requests from stolonctl are written by stolonctl and have no event here."""

    kind: ClassVar[str] = "backup_requested"
    request_id: str
    requested_by: str
    db_uid: str
    keeper_uid: str
    slot: datetime | None = None


@dataclass(frozen=True)
class BackupStarted(Event):
    """The master's keeper reported that it started the requested backup."""

    kind: ClassVar[str] = "backup_started"
    request_id: str
    keeper_uid: str


@dataclass(frozen=True)
class BackupCompleted(Event):
    """The master's keeper reported the requested backup done: ``backup_id``, ``size`` bytes."""

    kind: ClassVar[str] = "backup_completed"
    request_id: str
    backup_id: str
    size: int


@dataclass(frozen=True)
class BackupFailed(Event):
    """A backup request failed, for ``cause``; ``detail`` is the message stored in the request."""

    kind: ClassVar[str] = "backup_failed"
    request_id: str
    cause: BackupFailure
    detail: str


@dataclass(frozen=True)
class BackupSlotSkipped(Event):
    """A ``backup.schedule`` slot passed without a new request (``cause``)."""

    kind: ClassVar[str] = "backup_slot_skipped"
    slot: datetime
    cause: BackupSlotSkip


# -- spec and generations ---------------------------------------------------------------


@dataclass(frozen=True)
class SpecPropagated(Event):
    """Cluster-spec values were copied into this DB's spec; ``fields`` are DBSpec JSON keys."""

    kind: ClassVar[str] = "spec_propagated"
    db_uid: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class DBGenerationBumped(Event):
    """The DB spec changed, so its generation went up; ``fields`` are the changed JSON keys."""

    kind: ClassVar[str] = "db_generation_bumped"
    db_uid: str
    old_generation: int
    new_generation: int
    fields: tuple[str, ...]


ALL_EVENTS: tuple[type[Event], ...] = (
    FirstRun,
    UpdateError,
    KeeperInfoWrongCluster,
    KeeperInfoRejected,
    KeeperAdded,
    KeeperForceFailed,
    KeeperUnhealthy,
    KeeperHealthy,
    DBUnhealthy,
    DBHealthy,
    WaitingForInitialMaster,
    InitFailed,
    PhaseChanged,
    KeeperRemoved,
    DBNotConverged,
    MasterFailed,
    MasterElected,
    NoEligibleMaster,
    ProxiesFenced,
    ProxiesWaiting,
    ProxiesPointed,
    EnabledProxiesChanged,
    StandbyClusterPromoted,
    DBAdded,
    DBRemoved,
    SyncStandbysWaiting,
    SyncStandbysChanged,
    SpecPropagated,
    DBGenerationBumped,
    FencingRequested,
    FencingChecked,
    SwitchoverStarted,
    SwitchoverMasterStopped,
    SwitchoverWaiting,
    SwitchoverPromoted,
    SwitchoverCompleted,
    SwitchoverCancelled,
    BackupRequested,
    BackupStarted,
    BackupCompleted,
    BackupFailed,
    BackupSlotSkipped,
)
