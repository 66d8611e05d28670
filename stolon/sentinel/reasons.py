"""Structured reasons: what one sentinel cycle decided, and why.

Every decision :func:`stolon.sentinel.decide.decide` takes is reported as one of the frozen
dataclasses below, in the order the cycle took them. They are the product of a cycle as much
as the new cluster data: the sentinel daemon turns them into OpenTelemetry span events
(``kind`` is the event name, :meth:`Reason.attributes` the attributes) and metrics, and
operators read them to learn why a failover did or did not happen.

Stability: ``kind`` strings, field names and the string constants used as causes are part of
the sentinel's observable interface. Add fields and kinds freely; don't rename or remove them.

Conventions:
- ``*_db`` / ``db_uid`` fields are DB UIDs, ``*_keeper`` / ``keeper_uid`` fields keeper UIDs.
- Times named ``*_mono`` are seconds on the sentinel's monotonic clock (only differences mean
  anything); ``*_age_s`` are ages in seconds at the time of the cycle. Wall-clock times are
  :class:`datetime.datetime` and appear only where the cluster data persists them.
- List-valued fields are tuples, sorted unless their order means something (documented).

Health reasons (``keeper_unhealthy``, ``db_healthy``, ...) mark transitions and
``db_not_converged`` is reported once per generation; decisions that are re-taken every
cycle (``master_failed``/``no_eligible_master``, ``proxies_waiting``,
``sync_standbys_waiting``, ``waiting_for_initial_master``) repeat every cycle while they hold.
Everything that changes the cluster data has a reason in the cycle that changes it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

# -- cause vocabularies ----------------------------------------------------------------------

#: Why a DB's health check failed this cycle (``DBUnhealthy.cause``).
DB_ERROR_NO_KEEPER_INFO = "no_keeper_info"  # the keeper published no fresh info
DB_ERROR_NO_DB_STATE = "no_db_state"  # the info has no postgresState
DB_ERROR_UNEXPECTED_DB_UID = "unexpected_db_uid"  # the keeper reports another DB incarnation
DB_ERROR_POSTGRES_UNHEALTHY = "postgres_unhealthy"  # postgresState.healthy is false
DB_ERROR_KEEPER_UNHEALTHY = "keeper_unhealthy"  # the DB's own state is fine but its keeper failed

#: Why the master is considered failed (``MasterFailed.causes``).
MASTER_UNHEALTHY = "unhealthy"
MASTER_CONVERGENCE_FAILED = "convergence_failed"

#: Why an election candidate was refused (``Candidate.refusals``), in evaluation order.
REFUSED_KEEPER_UNHEALTHY = "keeper_unhealthy"
REFUSED_UNKNOWN_STATE = "unknown_state"  # never reported a state (currentGeneration 0)
REFUSED_INVALID_SYSTEM_ID = "invalid_system_id"
REFUSED_FORKED_TIMELINE = "forked_timeline"
REFUSED_NOT_CONVERGED = "not_converged"  # currentGeneration != generation (e.g. still resyncing)
REFUSED_UNHEALTHY = "unhealthy"
REFUSED_DIFFERENT_TIMELINE = "different_timeline"
REFUSED_LAG_TOO_HIGH = "lag_too_high"  # async: lag above maxStandbyLag
REFUSED_CANNOT_BE_MASTER = "cannot_be_master"  # keeper started with --can-be-master=false
REFUSED_NO_FRESH_REPORT = "no_fresh_report"  # no healthy report for this DB in this cycle
REFUSED_NOT_STREAMING = "not_streaming"  # async: no replication progress near the master's last report
REFUSED_NOT_IN_SYNC_SET = "not_in_sync_set"  # sync: outside the old master's known-in-sync set
REFUSED_OUTRANKED = "outranked"  # eligible, but another eligible candidate ranks higher

#: Why a DB was removed (``DBRemoved.cause``).
REMOVED_OLD_MASTER = "old_master"
REMOVED_INVALID_SYSTEM_ID = "invalid_system_id"
REMOVED_FORKED_TIMELINE = "forked_timeline"
REMOVED_CANNOT_SYNC = "cannot_sync"  # the WAL it needs is gone from the master
REMOVED_NOT_GOOD_STANDBY = "not_good_standby"  # enough good standbys exist; this one isn't good
REMOVED_STANDBY_IN_EXCESS = "standby_in_excess"  # more good standbys than maxStandbysPerSender
REMOVED_INIT_FAILED = "init_failed"  # the initial master did not initialize in time

#: Why a DB was added (``DBAdded.cause``).
ADDED_INITIAL_MASTER = "initial_master"  # initMode new
ADDED_EXISTING_MASTER = "existing_master"  # initMode existing
ADDED_PITR_MASTER = "pitr_master"  # initMode pitr
ADDED_NEW_STANDBY = "new_standby"  # a resync standby on a free keeper

#: Why the synchronous standby lists changed (``SyncStandbysChanged.cause``).
SYNC_FAILOVER = "failover"  # the new master inherits the old master's list
SYNC_RECONCILE = "reconcile"  # standbys not yet in sync failed: spec shrunk to the known-in-sync set
SYNC_RESELECT = "reselect"  # a new set was chosen (failed ones dropped, good ones added, merge)
SYNC_DISABLED = "disabled"  # synchronous replication is off: lists cleared

#: Why proxies are not yet pointed at the master (``ProxiesWaiting.cause``).
PROXIES_NOT_CONVERGED = "proxies_not_converged"
PROXIES_MASTER_NOT_PROMOTED = "master_not_promoted"
PROXIES_MASTER_UNHEALTHY = "master_unhealthy"


#: Why a switchover waits (``SwitchoverWaiting.cause``).
SWITCHOVER_WAIT_MASTER_STOP = "master_not_stopped"  # the old master has not reported its clean shutdown
SWITCHOVER_WAIT_TARGET_BEHIND = "target_behind"  # the target has not reported the old master's last WAL
SWITCHOVER_WAIT_TARGET_REPORT = "target_no_fresh_report"  # no healthy report of the target this cycle

#: Why a switchover was cancelled (``SwitchoverCancelled.cause``).
SWITCHOVER_TIMED_OUT = "timeout"
SWITCHOVER_MASTER_CHANGED = "master_changed"  # the master is not the one the request was made for
SWITCHOVER_MASTER_FAILED = "master_failed"  # the old master failed: automatic failover takes over
SWITCHOVER_UNKNOWN_KEEPER = "unknown_keeper"
SWITCHOVER_NOT_ELIGIBLE = "target_not_eligible"
SWITCHOVER_NO_CANDIDATE = "no_eligible_standby"
SWITCHOVER_UNSUPPORTED = "unsupported"  # a standby cluster
SWITCHOVER_NEW_MASTER_REPLACED = "new_master_replaced"  # the promoted target failed before it was ready


#: Why a backup request failed (``BackupFailed.cause``).
BACKUP_KEEPER_FAILED = "keeper_failed"  # the master's keeper reported the failure
BACKUP_MASTER_CHANGED = "master_changed"  # the master is not the DB the request was made for
BACKUP_TIMED_OUT = "timeout"  # no outcome within backup.timeout

#: Why a scheduled slot got no backup (``BackupSlotSkipped.cause``).
BACKUP_SLOT_BUSY = "backup_running"
BACKUP_SLOT_NO_MASTER = "no_master"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Reason:
    """Base of every reason. ``kind`` is the stable event name."""

    kind: ClassVar[str] = "reason"

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
            if isinstance(value, bool | int | float | str):
                out[f.name] = value
            elif isinstance(value, datetime):
                out[f.name] = value.isoformat()
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                out[f.name] = list(value)
            else:
                out[f.name] = [json.dumps(_plain(v), sort_keys=True) for v in value]
        return out


# -- cycle -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirstRun(Reason):
    """First cycle after (re)gaining leadership: memory reset; keeper infos are only recorded
    (``infos_recorded`` of them) and every health flag is the one stored in the cluster data."""

    kind: ClassVar[str] = "first_run"
    infos_recorded: int


@dataclass(frozen=True)
class UpdateError(Reason):
    """The cycle could not compute new cluster data; nothing is to be written."""

    kind: ClassVar[str] = "update_error"
    message: str


# -- health (§4.2) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeeperInfoWrongCluster(Reason):
    """A keeper info for another cluster UID was dropped."""

    kind: ClassVar[str] = "keeper_info_wrong_cluster"
    keeper_uid: str
    cluster_uid: str


@dataclass(frozen=True)
class KeeperInfoRejected(Reason):
    """A keeper info was ignored: its UID breaks the keeper UID rule, its ``uid`` field is
    not the UID it is stored under, or its address or port is not one (anything else could
    reach other keepers' pg_hba.conf and conninfos). ``keeper_uid`` is escaped for display
    (:func:`stolon.model.text.printable`). Repeats every cycle while the info is there."""

    kind: ClassVar[str] = "keeper_info_rejected"
    keeper_uid: str
    why: str


@dataclass(frozen=True)
class KeeperAdded(Reason):
    """A keeper published its first fresh info and got a Keeper object."""

    kind: ClassVar[str] = "keeper_added"
    keeper_uid: str


@dataclass(frozen=True)
class KeeperForceFailed(Reason):
    """``stolonctl failkeeper``: the keeper is unhealthy for this one cycle."""

    kind: ClassVar[str] = "keeper_force_failed"
    keeper_uid: str


@dataclass(frozen=True)
class KeeperUnhealthy(Reason):
    """A keeper went from healthy to unhealthy. ``error_since_mono`` is None when forced."""

    kind: ClassVar[str] = "keeper_unhealthy"
    keeper_uid: str
    error_since_mono: float | None
    error_age_s: float | None
    forced: bool


@dataclass(frozen=True)
class KeeperHealthy(Reason):
    """A keeper went from unhealthy to healthy."""

    kind: ClassVar[str] = "keeper_healthy"
    keeper_uid: str


@dataclass(frozen=True)
class DBUnhealthy(Reason):
    """A DB went from healthy to unhealthy; ``cause`` is this cycle's ``DB_ERROR_*``."""

    kind: ClassVar[str] = "db_unhealthy"
    db_uid: str
    keeper_uid: str
    cause: str
    error_since_mono: float | None
    error_age_s: float | None


@dataclass(frozen=True)
class DBHealthy(Reason):
    """A DB went from unhealthy to healthy."""

    kind: ClassVar[str] = "db_healthy"
    db_uid: str
    keeper_uid: str


# -- initialization (§4.4) -------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingForInitialMaster(Reason):
    """The initial master DB has not finished initializing yet."""

    kind: ClassVar[str] = "waiting_for_initial_master"
    db_uid: str
    keeper_uid: str
    init_mode: str
    converged: bool
    healthy: bool


@dataclass(frozen=True)
class InitFailed(Reason):
    """The initial master did not converge within ``timeout_s``: DBs reset, master unset."""

    kind: ClassVar[str] = "init_failed"
    db_uid: str
    keeper_uid: str
    timeout_s: float


@dataclass(frozen=True)
class PhaseChanged(Reason):
    """Cluster phase change (``initializing`` → ``normal`` when the initial master is ready)."""

    kind: ClassVar[str] = "phase_changed"
    old_phase: str
    new_phase: str
    master_db: str
    merged_pg_parameters: bool


# -- normal phase (§4.5) ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeeperRemoved(Reason):
    """A keeper without a DB was unhealthy for longer than deadKeeperRemovalInterval."""

    kind: ClassVar[str] = "keeper_removed"
    keeper_uid: str
    last_healthy_time: datetime | None


@dataclass(frozen=True)
class DBNotConverged(Reason):
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
class MasterFailed(Reason):
    """The current master is not OK; ``causes`` are ``MASTER_*`` constants."""

    kind: ClassVar[str] = "master_failed"
    db_uid: str
    keeper_uid: str
    causes: tuple[str, ...]
    generation: int
    current_generation: int


@dataclass(frozen=True)
class Candidate:
    """One DB considered in an election (nested in :class:`MasterElected` / :class:`NoEligibleMaster`).

    ``lag_bytes`` is the old master's last reported xLogPos minus this DB's (negative when the
    DB is ahead). ``in_sync_set`` is None in an asynchronous election. ``streaming`` is the
    quirk-2 verdict: True/False, or None when not evaluated (synchronous election, or the old
    master was never seen reporting by this sentinel, see DECISIONS.md). ``refusals`` lists
    every ``REFUSED_*`` reason that applies, in evaluation order; empty for the chosen one.
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
    refusals: tuple[str, ...]


@dataclass(frozen=True)
class MasterElected(Reason):
    """Failover decision: ``new_master_db`` replaces ``old_master_db``.

    ``why`` repeats the old master's failure causes (``MASTER_*``). ``synchronous`` tells
    whether the election was restricted to ``known_in_sync`` (the old master's reported ∩
    defined synchronous standbys). Candidates are ranked best first.
    """

    kind: ClassVar[str] = "master_elected"
    old_master_db: str
    old_master_keeper: str
    why: tuple[str, ...]
    new_master_db: str
    new_master_keeper: str
    synchronous: bool
    known_in_sync: tuple[str, ...]
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class NoEligibleMaster(Reason):
    """The master failed but no candidate qualifies; nothing changes. See ``candidates``."""

    kind: ClassVar[str] = "no_eligible_master"
    old_master_db: str
    old_master_keeper: str
    why: tuple[str, ...]
    synchronous: bool
    known_in_sync: tuple[str, ...]
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class ProxiesFenced(Reason):
    """Fencing step 1: ``masterDbUid`` cleared so every proxy drops its connections."""

    kind: ClassVar[str] = "proxies_fenced"
    old_master_db: str
    new_master_db: str
    proxy_generation: int


@dataclass(frozen=True)
class ProxiesWaiting(Reason):
    """Fencing step 2 is on hold: ``cause`` is a ``PROXIES_*`` constant; ``proxies`` lists the
    active proxies that have not applied ``proxy_generation`` (empty when waiting on the master)."""

    kind: ClassVar[str] = "proxies_waiting"
    master_db: str
    cause: str
    proxies: tuple[str, ...]
    proxy_generation: int


@dataclass(frozen=True)
class ProxiesPointed(Reason):
    """Fencing step 2: proxies told to route to ``master_db``."""

    kind: ClassVar[str] = "proxies_pointed"
    master_db: str
    proxy_generation: int


@dataclass(frozen=True)
class EnabledProxiesChanged(Reason):
    """The set of proxies allowed to route changed (active proxies, §4.7)."""

    kind: ClassVar[str] = "enabled_proxies_changed"
    old: tuple[str, ...]
    new: tuple[str, ...]
    proxy_generation: int


@dataclass(frozen=True)
class StandbyClusterPromoted(Reason):
    """The cluster role became master: the standby-cluster master stops following the remote
    primary and is promoted (§4.9)."""

    kind: ClassVar[str] = "standby_cluster_promoted"
    db_uid: str
    keeper_uid: str


@dataclass(frozen=True)
class DBAdded(Reason):
    """A DB was created; ``cause`` is an ``ADDED_*`` constant."""

    kind: ClassVar[str] = "db_added"
    db_uid: str
    keeper_uid: str
    role: str
    init_mode: str
    cause: str


@dataclass(frozen=True)
class DBRemoved(Reason):
    """A DB was removed; ``cause`` is a ``REMOVED_*`` constant, ``detail`` free text."""

    kind: ClassVar[str] = "db_removed"
    db_uid: str
    keeper_uid: str
    cause: str
    detail: str = ""


@dataclass(frozen=True)
class SyncStandbysWaiting(Reason):
    """The master has not yet reported every defined synchronous standby as in sync."""

    kind: ClassVar[str] = "sync_standbys_waiting"
    master_db: str
    in_sync: tuple[str, ...]
    defined: tuple[str, ...]


@dataclass(frozen=True)
class SyncStandbysChanged(Reason):
    """The master's synchronous standby lists changed (old → new).

    ``defined`` is ``spec.synchronousStandbys``, ``in_sync`` is ``status.synchronousStandbys``
    (the known-in-sync set; order as stored), ``external`` is
    ``spec.externalSynchronousStandbys`` (``stolonfakestandby`` when real ones are missing).
    """

    kind: ClassVar[str] = "sync_standbys_changed"
    master_db: str
    cause: str
    old_defined: tuple[str, ...]
    new_defined: tuple[str, ...]
    old_in_sync: tuple[str, ...]
    new_in_sync: tuple[str, ...]
    old_external: tuple[str, ...]
    new_external: tuple[str, ...]


# -- fencing (ours; docs/fencing.md) ---------------------------------------------------------


@dataclass(frozen=True)
class FencingRequested(Reason):
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
class FencingChecked(Reason):
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
class SwitchoverStarted(Reason):
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
class SwitchoverMasterStopped(Reason):
    """Step 2: the old master reported its clean shutdown; its WAL ends at ``xlog_pos``."""

    kind: ClassVar[str] = "switchover_master_stopped"
    switchover_id: str
    db_uid: str
    keeper_uid: str
    xlog_pos: int


@dataclass(frozen=True)
class SwitchoverWaiting(Reason):
    """A switchover step is waiting; ``cause`` is a ``SWITCHOVER_WAIT_*`` constant."""

    kind: ClassVar[str] = "switchover_waiting"
    switchover_id: str
    phase: str
    cause: str
    detail: str


@dataclass(frozen=True)
class SwitchoverPromoted(Reason):
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
class SwitchoverCompleted(Reason):
    """The new master is promoted and healthy; the old master comes back as a standby."""

    kind: ClassVar[str] = "switchover_completed"
    switchover_id: str
    new_master_db: str
    new_master_keeper: str


@dataclass(frozen=True)
class SwitchoverCancelled(Reason):
    """The switchover was refused or abandoned in ``phase``; ``cause`` is a
    ``SWITCHOVER_*`` constant, ``detail`` the one-line message stored in the request. A
    stopped old master is told to start again (it is still the master)."""

    kind: ClassVar[str] = "switchover_cancelled"
    switchover_id: str
    phase: str
    cause: str
    detail: str


# -- backups (docs/backup.md) ----------------------------------------------------------------


@dataclass(frozen=True)
class BackupRequested(Reason):
    """The schedule (``backup.schedule``) asked the master's keeper for a base backup for
    ``slot``; requests from stolonctl are written by stolonctl and have no reason here."""

    kind: ClassVar[str] = "backup_requested"
    request_id: str
    requested_by: str
    db_uid: str
    keeper_uid: str
    slot: datetime | None = None


@dataclass(frozen=True)
class BackupStarted(Reason):
    """The master's keeper reported that it started the requested backup."""

    kind: ClassVar[str] = "backup_started"
    request_id: str
    keeper_uid: str


@dataclass(frozen=True)
class BackupCompleted(Reason):
    kind: ClassVar[str] = "backup_completed"
    request_id: str
    backup_id: str
    size: int


@dataclass(frozen=True)
class BackupFailed(Reason):
    """``cause`` is a ``BACKUP_*`` constant, ``detail`` the message stored in the request."""

    kind: ClassVar[str] = "backup_failed"
    request_id: str
    cause: str
    detail: str


@dataclass(frozen=True)
class BackupSlotSkipped(Reason):
    """A ``backup.schedule`` slot passed without a new request (``cause``)."""

    kind: ClassVar[str] = "backup_slot_skipped"
    slot: datetime
    cause: str


# -- spec and generations (§3.5, §3.8) --------------------------------------------------------


@dataclass(frozen=True)
class SpecPropagated(Reason):
    """Cluster-spec values were copied into this DB's spec; ``fields`` are DBSpec JSON keys."""

    kind: ClassVar[str] = "spec_propagated"
    db_uid: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class DBGenerationBumped(Reason):
    """The DB spec changed, so its generation went up; ``fields`` are the changed JSON keys."""

    kind: ClassVar[str] = "db_generation_bumped"
    db_uid: str
    old_generation: int
    new_generation: int
    fields: tuple[str, ...]


ALL_REASONS: tuple[type[Reason], ...] = (
    FirstRun,
    UpdateError,
    KeeperInfoWrongCluster,
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
