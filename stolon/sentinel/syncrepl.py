"""Synchronous standby management on a settled master.

The sentinel must always know a set of standbys guaranteed to hold every acknowledged
commit: the *known-in-sync* set, ``status.synchronousStandbys`` of the master, always a
subset of what the master was told to wait for (``spec.synchronousStandbys``). Only its
members may replace the master in a synchronous election.

Phase A reconciles: while the defined set differs from the known-in-sync one, standbys the
master now reports as ``sync`` join the known set; if one not yet in sync failed or
disappeared, the defined set shrinks back to the known one. Phase B, once both agree,
chooses a new set: drop failed standbys and the excess, add the best good standbys up to
``maxSynchronousStandbys``, keep previous members to reach ``minSynchronousStandbys``, and
(PostgreSQL ≥ 9.6) merge: when a new member appears the defined set also keeps every
previous member, so the change happens in two steps and some standby is always both defined
and known in sync. Missing real standbys below the minimum are replaced by the fake
``stolonfakestandby``, which blocks commits (strict mode); minSynchronousStandbys 0 allows
an empty set.

Go leaves two choices to map iteration order (which excess members to drop, which previous
members to keep for the minimum); here they are deterministic: known-in-sync members first,
then higher reported xLogPos, then DB UID.
"""

from __future__ import annotations

from stolon.model.cluster import DB, ClusterData
from stolon.sentinel.cycle import Cycle, dbs, keepers, spec
from stolon.sentinel.eligibility import sync_repl
from stolon.sentinel.events import (
    SyncChange,
    SyncStandbysChanged,
    SyncStandbysWaiting,
)
from stolon.sentinel.failover import FAKE_STANDBY_NAME
from stolon.sentinel.predicates import FAILED, db_state, is_lag_below_max


def _common(a: list[str] | None, b: list[str] | None) -> list[str]:
    """Elements of ``a`` also in ``b``, in ``a``'s order (Go's CommonElements, never nil)."""
    bs = set(b or [])
    return [x for x in a or [] if x in bs]


def _same_set(a: list[str] | None, b: list[str] | None) -> bool:
    return sorted(a or []) == sorted(b or [])


def _gone(cd: ClusterData, uid: str, cyc: Cycle) -> bool:
    """A pending synchronous standby that will not come: missing or failed.

    One still converging (a healthy keeper applying a new generation, e.g. a standby
    re-pointed at a new master after a failover) stays pending: dropping it would leave the
    defined set to the fake standby until it reports again. Go drops every standby that is
    not good. Keeping it never acknowledges more: commits wait for it.
    """
    db = dbs(cd).get(uid)
    return db is None or db_state(cd, db, cyc) == FAILED


def best_standbys(cd: ClusterData, master: DB, good: list[DB], cyc: Cycle) -> list[DB]:
    """Good standbys on the master's timeline (within maxStandbyLag when asynchronous), best
    first: highest reported xLogPos, then UID (Go sorts ascending; see docs/sentinel-decisions.md)."""
    out = [
        db
        for db in good
        if db.status.timeline_id == master.status.timeline_id
        and (sync_repl(cyc.spec) or is_lag_below_max(master, db, cyc))
    ]
    out.sort(key=lambda db: (-db.status.xlog_pos, db.uid))
    return out


class _Snapshot:
    def __init__(self, master: DB) -> None:
        s = spec(master)
        self.defined = tuple(s.synchronous_standbys or [])
        self.in_sync = tuple(master.status.synchronous_standbys or [])
        self.external = tuple(s.external_synchronous_standbys or [])

    def key(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        return self.defined, self.in_sync, self.external


def _emit_change(master: DB, before: _Snapshot, cause: SyncChange, cyc: Cycle) -> None:
    after = _Snapshot(master)
    if before.key() != after.key():
        cyc.emit(
            SyncStandbysChanged(
                master.uid,
                cause,
                before.defined,
                after.defined,
                before.in_sync,
                after.in_sync,
                before.external,
                after.external,
            )
        )


def disable(master: DB, cyc: Cycle) -> None:
    before = _Snapshot(master)
    s = spec(master)
    s.synchronous_replication = False
    s.synchronous_standbys = None
    s.external_synchronous_standbys = None
    master.status.synchronous_standbys = None
    _emit_change(master, before, SyncChange.DISABLED, cyc)


def manage(cd: ClusterData, master: DB, good: list[DB], cyc: Cycle) -> None:
    """Phases A and B for a healthy, converged master; ``good`` are the good standbys."""
    ms = spec(master)
    minimum = cyc.d.min_synchronous_standbys
    maximum = cyc.d.max_synchronous_standbys
    merge = True
    keeper = keepers(cd).get(ms.keeper_uid)
    if keeper is not None:
        v = keeper.status.postgres_binary_version
        if v.maj == 9 and v.min <= 5:
            # PostgreSQL ≤ 9.5 waits for one standby at a time: one defined, no merge.
            minimum, maximum, merge = 1, 1, False
    good_uids = {db.uid for db in good}

    # Phase A: reconcile the known-in-sync set with the defined one.
    if not _same_set(master.status.synchronous_standbys, ms.synchronous_standbys):
        before = _Snapshot(master)
        in_sync = _common(master.status.synchronous_standbys, ms.synchronous_standbys)
        reported = _common(cyc.cur_sync.get(master.uid, []), ms.synchronous_standbys)
        in_sync += [uid for uid in reported if uid not in in_sync]
        master.status.synchronous_standbys = in_sync
        pending = [uid for uid in ms.synchronous_standbys or [] if uid not in in_sync]
        if any(_gone(cd, uid, cyc) for uid in pending):
            ms.synchronous_standbys = sorted(in_sync)
        _emit_change(master, before, SyncChange.RECONCILE, cyc)
        if not _same_set(master.status.synchronous_standbys, ms.synchronous_standbys):
            cyc.emit(
                SyncStandbysWaiting(
                    master.uid,
                    tuple(master.status.synchronous_standbys or []),
                    tuple(ms.synchronous_standbys or []),
                )
            )
            return

    # Phase B: choose the new set.
    before = _Snapshot(master)
    known = set(master.status.synchronous_standbys or [])
    prev = list(ms.synchronous_standbys or [])

    def keep_order(uid: str) -> tuple[bool, int, str]:
        db = dbs(cd).get(uid)
        return (uid not in known, -(db.status.xlog_pos if db else 0), uid)

    chosen = [uid for uid in prev if uid in dbs(cd) and uid in good_uids]
    chosen = sorted(chosen, key=keep_order)[:maximum]
    for db in best_standbys(cd, master, good, cyc):
        if len(chosen) >= maximum:
            break
        if db.uid in chosen:
            continue
        k = keepers(cd).get(spec(db).keeper_uid)
        if k is not None and k.status.can_be_synchronous_replica is False:
            continue
        chosen.append(db.uid)
    # Keep previous members, even failed ones, to reach the minimum: should they come back
    # they are still known in sync and electable.
    for uid in sorted((u for u in prev if u in dbs(cd)), key=keep_order):
        if len(chosen) >= minimum:
            break
        if uid not in chosen:
            chosen.append(uid)
    if merge and any(uid not in prev for uid in chosen):
        chosen += [uid for uid in prev if uid in dbs(cd) and uid not in chosen]

    ms.synchronous_replication = True
    ms.synchronous_standbys = sorted(chosen)
    ms.external_synchronous_standbys = [FAKE_STANDBY_NAME] if len(chosen) < minimum else []
    master.status.synchronous_standbys = _common(master.status.synchronous_standbys, ms.synchronous_standbys)
    _emit_change(master, before, SyncChange.RESELECT, cyc)
