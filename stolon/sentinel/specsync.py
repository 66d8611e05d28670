"""Spec propagation into DB specs, generation bumps and change times (as Go's ``updateCluster``).

Deep equality is equality of the stored JSON form (``Document.to_obj()``): what the keeper
reads back (computed on the typed objects by :func:`stolon.model.structural.stored_equal`). Go compares in-memory values with ``reflect.DeepEqual``, where a nil and an
empty list or map differ although both are stored the same; that bumps generations for
nothing (and, for the proxy, every cycle). See docs/sentinel-decisions.md.
"""

from __future__ import annotations

from typing import Any

from stolon.model.cluster import FOLLOW_EXTERNAL, ClusterData, DBSpec, FollowConfig
from stolon.model.spec import DefaultedSpec
from stolon.model.structural import stored_equal
from stolon.sentinel.cycle import Cycle, dbs, keepers, proxy, spec
from stolon.sentinel.eligibility import MASTER_TYPE, db_type
from stolon.sentinel.events import (
    DBGenerationBumped,
    SpecPropagated,
)
from stolon.sentinel.observations import Now


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))


def _follow_obj(fc: FollowConfig | None) -> dict[str, Any] | None:
    """An external follow config in stored form: :func:`propagate_spec` changes it in place.
    Any other is left as it is (not replaced, not changed): None, to skip encoding it."""
    return fc.to_obj() if fc is not None and fc.type == FOLLOW_EXTERNAL else None


#: The JSON keys of the propagated fields, sorted (the order :func:`_propagated` gives them in).
_PROPAGATED_KEYS = (
    "additionalReplicationSlots",
    "additionalWalSenders",
    "followConfig",
    "maxStandbys",
    "pgHBA",
    "pgParameters",
    "requestTimeout",
    "usePgrewind",
)


def _propagated(ds: DBSpec) -> tuple[Any, ...]:
    """The propagated fields of a DB spec in comparable form, in the order of
    ``_PROPAGATED_KEYS``."""
    return (
        ds.additional_replication_slots,
        ds.additional_wal_senders,
        _follow_obj(ds.follow_config),
        ds.max_standbys,
        ds.pg_hba,
        ds.pg_parameters or None,  # omitempty: {} is stored as absent
        ds.request_timeout,
        ds.use_pgrewind,
    )


def propagate_spec(cd: ClusterData, existed: set[str], cyc: Cycle) -> None:
    """Copy the cluster-spec values every DB spec carries (Go's setDBSpecFromClusterSpec).

    Uses the cluster spec as it is now (init may just have merged pgParameters into it).
    """
    assert cd.cluster is not None
    s = (cd.cluster.spec or cyc.spec).with_defaults()
    d = DefaultedSpec(s)
    sc = s.standby_config
    request_timeout, max_standbys, use_pgrewind = d.request_timeout, d.max_standbys, d.use_pgrewind
    additional_wal_senders = d.additional_wal_senders
    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        ds = spec(db)
        before = _propagated(ds) if uid in existed else ()
        ds.request_timeout = request_timeout
        ds.max_standbys = max_standbys
        ds.use_pgrewind = use_pgrewind
        ds.pg_parameters = dict(s.pg_parameters) if s.pg_parameters is not None else None
        ds.pg_hba = list(s.pg_hba) if s.pg_hba is not None else None
        fc = ds.follow_config
        if fc is not None and fc.type == FOLLOW_EXTERNAL:
            fc.standby_settings = sc.standby_settings.copy() if sc and sc.standby_settings else None
            fc.archive_recovery_settings = (
                sc.archive_recovery_settings.copy() if sc and sc.archive_recovery_settings else None
            )
        ds.additional_wal_senders = additional_wal_senders
        if db_type(db) == MASTER_TYPE:
            slots = s.additional_master_replication_slots
            ds.additional_replication_slots = list(slots) if slots is not None else None
        else:
            ds.additional_replication_slots = None
        if uid in existed:
            after = _propagated(ds)
            fields = tuple(k for k, x, y in zip(_PROPAGATED_KEYS, before, after, strict=True) if x != y)
            if fields:
                cyc.emit(SpecPropagated(uid, fields))


def bump_generations(cd: ClusterData, prev_specs: dict[str, DBSpec], cyc: Cycle) -> None:
    """+1 on every pre-existing DB whose spec changed this cycle (``prev_specs``: snapshots
    of the specs as they were before the phase's update)."""
    for uid in sorted(dbs(cd)):
        before = prev_specs.get(uid)
        if before is None:
            continue
        db = dbs(cd)[uid]
        after = spec(db)
        if stored_equal(before, after):
            continue
        fields = changed_keys(before.to_obj(), after.to_obj())
        if fields:
            db.generation += 1
            cyc.emit(DBGenerationBumped(uid, db.generation - 1, db.generation, fields))


def update_change_times(prev: ClusterData, cd: ClusterData, now: Now) -> None:
    """``cd.changeTime`` always; every other object's when it is new or its stored form
    differs from the one in ``prev`` (the previous cluster data)."""
    cd.change_time = now.wall
    assert cd.cluster is not None
    if not stored_equal(prev.cluster, cd.cluster):
        cd.cluster.change_time = now.wall
    prev_dbs: dict[str, Any] = prev.dbs or {}
    prev_keepers: dict[str, Any] = prev.keepers or {}
    for uid, db in dbs(cd).items():
        if not stored_equal(prev_dbs.get(uid), db):
            db.change_time = now.wall
    for uid, keeper in keepers(cd).items():
        if not stored_equal(prev_keepers.get(uid), keeper):
            keeper.change_time = now.wall
    if not stored_equal(prev.proxy, cd.proxy):
        proxy(cd).change_time = now.wall
