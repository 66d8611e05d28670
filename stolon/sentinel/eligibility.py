"""Who may become master: the one rule that failover and switchover both apply.

A DB may replace the master ``old`` when none of the :class:`Refusal` conditions holds
(:func:`refusals`). Three callers, one rule:

* the failover election (:mod:`stolon.sentinel.failover`) judges every other DB each cycle,
  with the evidence only a sentinel has: whether the DB reported healthy in this very cycle
  and whether it was streaming when the master was last seen (docs/sentinel-decisions.md,
  quirk 2);
* the planned switchover (:mod:`stolon.sentinel.switchover`) applies the same rule plus its
  own condition, :attr:`Refusal.NOT_A_STANDBY` (:func:`switchover_refusals`): a switchover
  may ask for more than a failover, never for less;
* ``stolonctl switchover`` checks a request before writing it, from the cluster data alone:
  the evidence of a cycle is unknown there (``None``) and left to the sentinel.

Everything here reads the cluster data as stored (no normalization needed) and changes
nothing. The DB facts the rule is made of (a DB's type, whether its data belongs to the
master's history) live here too, so that this module depends on the model only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from stolon.model.cluster import (
    DB,
    FOLLOW_EXTERNAL,
    FOLLOW_INTERNAL,
    NO_GENERATION,
    ROLE_MASTER,
    ROLE_STANDBY,
    ClusterData,
    Keeper,
    TimelineHistory,
)
from stolon.model.spec import ROLE_STANDBY as CLUSTER_ROLE_STANDBY
from stolon.model.spec import ClusterSpec, DefaultedSpec


class Refusal(enum.StrEnum):
    """Why a DB may not become master, in the order the rule checks them.

    The values are stable: they appear in the sentinel's ``master_elected`` and
    ``no_eligible_master`` events (``Candidate.refusals``) and in traces.
    """

    #: switchover only: the target must be a standby following the master
    NOT_A_STANDBY = "not_a_standby"
    KEEPER_UNHEALTHY = "keeper_unhealthy"
    #: never reported a state (currentGeneration 0)
    UNKNOWN_STATE = "unknown_state"
    INVALID_SYSTEM_ID = "invalid_system_id"
    FORKED_TIMELINE = "forked_timeline"
    #: currentGeneration != generation (e.g. still resyncing)
    NOT_CONVERGED = "not_converged"
    UNHEALTHY = "unhealthy"
    DIFFERENT_TIMELINE = "different_timeline"
    #: asynchronous cluster: further behind the master's last reported xLogPos than maxStandbyLag
    LAG_TOO_HIGH = "lag_too_high"
    #: its keeper runs with --can-be-master=false
    CANNOT_BE_MASTER = "cannot_be_master"
    #: no healthy report of this DB in this cycle (sentinel only)
    NO_FRESH_REPORT = "no_fresh_report"
    #: asynchronous election: no replication progress near the master's last report (sentinel only)
    NOT_STREAMING = "not_streaming"
    #: synchronous election: outside the old master's known-in-sync set
    NOT_IN_SYNC_SET = "not_in_sync_set"
    #: eligible, but another eligible candidate ranks higher (election ranking, not the rule)
    OUTRANKED = "outranked"


#: One line per refusal, for people (stolonctl errors, switchover messages).
EXPLANATIONS: Mapping[Refusal, str] = MappingProxyType(
    {
        Refusal.NOT_A_STANDBY: "it is not a standby of the master",
        Refusal.KEEPER_UNHEALTHY: "its keeper is unhealthy",
        Refusal.UNKNOWN_STATE: "it never reported its state",
        Refusal.INVALID_SYSTEM_ID: "its data belongs to another cluster (system identifier)",
        Refusal.FORKED_TIMELINE: "its data forked from the master's history",
        Refusal.NOT_CONVERGED: "it has not converged to its spec (e.g. still resyncing)",
        Refusal.UNHEALTHY: "it is not healthy",
        Refusal.DIFFERENT_TIMELINE: "it is on another timeline than the master",
        Refusal.LAG_TOO_HIGH: "it lags behind the master by more than maxStandbyLag",
        Refusal.CANNOT_BE_MASTER: "its keeper runs with --can-be-master=false",
        Refusal.NO_FRESH_REPORT: "its keeper did not report it healthy in this cycle",
        Refusal.NOT_STREAMING: "it was not replicating when the master was last seen",
        Refusal.NOT_IN_SYNC_SET: "it is not in the master's synchronous standby set",
        Refusal.OUTRANKED: "another eligible standby has more WAL",
    }
)


def explain(refusals: Iterable[Refusal]) -> str:
    """The refusals as one comma-separated line."""
    return ", ".join(EXPLANATIONS[r] for r in refusals)


# -- DB facts ------------------------------------------------------------------------------------

# DB types (Go's dbType): a standby-cluster master (standby role, external follow) is a master.
MASTER_TYPE = "master"
STANDBY_TYPE = "standby"

# Validity (Go's dbValidity, with the invalid case split by cause).
VALID = "valid"
UNKNOWN = "unknown"
INVALID_SYSTEM_ID = "invalid_system_id"
FORKED_TIMELINE = "forked_timeline"


def db_type(db: DB) -> str:
    s = db.spec
    if s is None:
        return STANDBY_TYPE
    if s.role == ROLE_MASTER:
        return MASTER_TYPE
    if s.role == ROLE_STANDBY and s.follow_config is not None and s.follow_config.type == FOLLOW_EXTERNAL:
        return MASTER_TYPE
    return STANDBY_TYPE


def timeline_history(db: DB, timeline_id: int) -> TimelineHistory | None:
    for entry in db.status.timelines_history or []:
        if entry.timeline_id == timeline_id:
            return entry
    return None


def is_different_timeline_branch(followed: DB, db: DB) -> bool:
    """Whether ``db`` cannot follow ``followed`` because their histories forked (as Go's
    ``IsDifferentTimelineBranch``)."""
    f_tl, d_tl = followed.status.timeline_id, db.status.timeline_id
    if f_tl < d_tl:
        return True
    if f_tl == d_tl:
        if d_tl <= 1:
            return False  # no history file exists on timeline 1
        f_entry = timeline_history(followed, d_tl - 1)
        d_entry = timeline_history(db, d_tl - 1)
        if f_entry is None or d_entry is None:
            return False
        return f_entry.switch_point != d_entry.switch_point
    # followed is on a later timeline: did it leave ours before the point we reached?
    f_entry = timeline_history(followed, d_tl)
    return f_entry is not None and f_entry.switch_point < db.status.xlog_pos


def db_validity(cd: ClusterData, db: DB) -> str:
    """Whether ``db``'s data belongs to the current master's history."""
    if db.status.current_generation == NO_GENERATION:
        return UNKNOWN
    master_uid = cd.cluster.status.master if cd.cluster is not None else ""
    master = (cd.dbs or {}).get(master_uid)
    if master is None:
        return VALID
    if db.status.system_id and db.status.system_id != master.status.system_id:
        return INVALID_SYSTEM_ID
    if is_different_timeline_branch(master, db):
        return FORKED_TIMELINE
    return VALID


def follows(db: DB, master: DB) -> bool:
    """Whether ``db`` is a standby replicating from ``master`` inside the cluster."""
    fc = db.spec.follow_config if db.spec is not None else None
    return (
        db.uid != master.uid
        and db_type(db) == STANDBY_TYPE
        and fc is not None
        and fc.type == FOLLOW_INTERNAL
        and fc.dbuid == master.uid
    )


def sync_repl(cluster_spec: ClusterSpec) -> bool:
    """Synchronous replication is used only by a cluster whose role is master."""
    return bool(cluster_spec.synchronous_replication) and cluster_spec.role != CLUSTER_ROLE_STANDBY


def known_in_sync(master: DB) -> list[str]:
    """The master's reported ∩ defined synchronous standbys (order of the reported list)."""
    defined = (master.spec.synchronous_standbys if master.spec is not None else None) or []
    return [uid for uid in master.status.synchronous_standbys or [] if uid in defined]


# -- the rule ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """What a master change must respect, fixed by the master being replaced.

    ``synchronous``: the old master's own DB spec had synchronousReplication, so only its
    known-in-sync standbys (``in_sync``) may replace it, whatever their lag (Go's rule).
    ``max_lag``: the asynchronous lag limit (maxStandbyLag); None when the *cluster* spec
    is synchronous (Go: the cluster spec decides the lag filter).
    """

    old: DB
    synchronous: bool
    in_sync: frozenset[str]
    max_lag: int | None

    @classmethod
    def of(cls, old: DB, cluster_spec: ClusterSpec) -> Terms:
        synchronous = bool(old.spec is not None and old.spec.synchronous_replication)
        in_sync = frozenset(known_in_sync(old)) if synchronous else frozenset()
        full = cluster_spec.with_defaults()
        max_lag = None if sync_repl(full) else DefaultedSpec(full).max_standby_lag
        return cls(old, synchronous, in_sync, max_lag)


@dataclass(frozen=True)
class Evidence:
    """What only a running sentinel knows about a candidate; None: not known by this caller.

    ``fresh_report``: its status was refreshed in this very cycle from a healthy report.
    ``streaming``: it was replicating around the time the master was last seen healthy
    (None also when undecidable; only an asynchronous election uses it).
    """

    fresh_report: bool | None = None
    streaming: bool | None = None


#: stolonctl's evidence: none (the sentinel checks the rest before it promotes).
NO_EVIDENCE = Evidence()


def refusals(cd: ClusterData, terms: Terms, db: DB, evidence: Evidence = NO_EVIDENCE) -> list[Refusal]:
    """Why ``db`` may not replace ``terms.old`` (empty: it may), in :class:`Refusal` order.

    This is the failover rule; every condition is checked, so the list is complete.
    """
    old = terms.old
    out: list[Refusal] = []
    keeper = _keeper(cd, db)
    if keeper is None or not keeper.status.healthy:
        out.append(Refusal.KEEPER_UNHEALTHY)
    validity = db_validity(cd, db)
    if validity == UNKNOWN:
        out.append(Refusal.UNKNOWN_STATE)
    elif validity == INVALID_SYSTEM_ID:
        out.append(Refusal.INVALID_SYSTEM_ID)
    elif validity == FORKED_TIMELINE:
        out.append(Refusal.FORKED_TIMELINE)
    if db.status.current_generation != db.generation:
        out.append(Refusal.NOT_CONVERGED)
    if not db.status.healthy:
        out.append(Refusal.UNHEALTHY)
    if db.status.timeline_id != old.status.timeline_id:
        out.append(Refusal.DIFFERENT_TIMELINE)
    if terms.max_lag is not None and old.status.xlog_pos - db.status.xlog_pos > terms.max_lag:
        out.append(Refusal.LAG_TOO_HIGH)
    if keeper is not None and keeper.status.can_be_master is False:
        out.append(Refusal.CANNOT_BE_MASTER)
    if evidence.fresh_report is False:
        out.append(Refusal.NO_FRESH_REPORT)
    if not terms.synchronous and evidence.streaming is False:
        out.append(Refusal.NOT_STREAMING)
    if terms.synchronous and db.uid not in terms.in_sync:
        out.append(Refusal.NOT_IN_SYNC_SET)
    return out


def switchover_refusals(
    cd: ClusterData, terms: Terms, db: DB, evidence: Evidence = NO_EVIDENCE
) -> list[Refusal]:
    """Why ``db`` may not be a switchover's target: the failover rule plus
    :attr:`Refusal.NOT_A_STANDBY`."""
    extra = [] if follows(db, terms.old) else [Refusal.NOT_A_STANDBY]
    return extra + refusals(cd, terms, db, evidence)


def switchover_candidates(
    cd: ClusterData, terms: Terms, evidence: Mapping[str, Evidence] | None = None
) -> tuple[list[DB], dict[str, list[Refusal]]]:
    """Possible switchover targets, best first (highest reported xLogPos, then UID), and the
    refusals of the others by keeper UID. ``evidence`` by DB UID (none: not known)."""
    ok: list[DB] = []
    refused: dict[str, list[Refusal]] = {}
    dbs = cd.dbs or {}
    for uid in sorted(dbs):
        if uid == terms.old.uid:
            continue
        db = dbs[uid]
        why = switchover_refusals(cd, terms, db, (evidence or {}).get(uid, NO_EVIDENCE))
        if why:
            refused[db.spec.keeper_uid if db.spec is not None else uid] = why
        else:
            ok.append(db)
    ok.sort(key=lambda d: (-d.status.xlog_pos, d.uid))
    return ok, refused


def explain_by_keeper(refused: Mapping[str, Iterable[Refusal]]) -> str:
    """``keeper: why, why; keeper: why`` (or ``no standby``)."""
    return "; ".join(f"{k}: {explain(v)}" for k, v in sorted(refused.items())) or "no standby"


def _keeper(cd: ClusterData, db: DB) -> Keeper | None:
    if db.spec is None:
        return None
    return (cd.keepers or {}).get(db.spec.keeper_uid)
