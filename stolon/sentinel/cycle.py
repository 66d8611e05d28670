"""The working state of one sentinel cycle, and typed access to the cluster data.

A :class:`Cycle` holds mutable copies of the memory, this cycle's clock and spec, the
per-cycle facts the health step learns (which DBs reported a healthy state, what they report
as synchronous right now), the active proxies and the events emitted so far. It lives only
inside one :func:`stolon.sentinel.decide.decide` call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from stolon.fencing.base import FencingOutcome
from stolon.model.cluster import DB, ClusterData, ClusterStatus, DBSpec, Keeper, Proxy
from stolon.model.duration import Duration
from stolon.model.infos import ProxyInfo
from stolon.model.spec import ClusterSpec, DefaultedSpec
from stolon.sentinel.events import DBError, Event
from stolon.sentinel.memory import (
    ConvergenceTimer,
    DBReport,
    KeeperInfoSeen,
    Memory,
    ProxyInfoSeen,
    SwitchoverClock,
)
from stolon.sentinel.observations import Now

log = logging.getLogger("stolon.sentinel")


class UpdateFailed(Exception):
    """The cycle cannot compute new cluster data (nothing is written; retried next cycle)."""


@dataclass
class Cycle:
    now: Now
    #: the stored cluster spec with defaults applied (``cd.cluster.DefSpec()``)
    spec: ClusterSpec
    new_uid: Callable[[], str]
    pick_index: Callable[[int], int]
    keeper_errors: dict[str, float] = field(default_factory=dict)
    db_errors: dict[str, float] = field(default_factory=dict)
    xlog_stalls: dict[str, int] = field(default_factory=dict)
    keeper_infos: dict[str, KeeperInfoSeen] = field(default_factory=dict)
    convergence: dict[str, ConvergenceTimer] = field(default_factory=dict)
    proxy_infos: dict[str, ProxyInfoSeen] = field(default_factory=dict)
    db_reports: dict[str, DBReport] = field(default_factory=dict)
    switchover: SwitchoverClock | None = None
    #: old master DB UID → fencing outcome observed by the daemon since the last cycle
    fencing: dict[str, FencingOutcome] = field(default_factory=dict)
    #: keeper UID → since when the daemon has seen no change of its info (monotonic)
    silence_since: dict[str, float] = field(default_factory=dict)
    #: DB UID → where its WAL ends: cleanly shut down as its spec asks (``stopped``), this cycle
    stopped: dict[str, int] = field(default_factory=dict)
    #: keepers force-failed (``stolonctl failkeeper``) in this cycle
    force_failed: set[str] = field(default_factory=set)
    #: DBs whose status was refreshed from a fresh, healthy state of the same DB this cycle
    refreshed: set[str] = field(default_factory=set)
    #: DB UID → standbys it reports as ``sync`` right now (Go's CurSynchronousStandbys)
    cur_sync: dict[str, list[str]] = field(default_factory=dict)
    #: DB UID → managed replication slots it reports lost (their WAL is gone)
    lost_slots: dict[str, list[str]] = field(default_factory=dict)
    #: this cycle's DB error causes, for the events
    db_error_causes: dict[str, DBError] = field(default_factory=dict)
    active_proxies: dict[str, ProxyInfo] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        memory: Memory,
        now: Now,
        spec: ClusterSpec,
        new_uid: Callable[[], str],
        pick_index: Callable[[int], int],
    ) -> Cycle:
        return cls(
            now=now,
            spec=spec.with_defaults(),
            new_uid=new_uid,
            pick_index=pick_index,
            keeper_errors=dict(memory.keeper_errors),
            db_errors=dict(memory.db_errors),
            xlog_stalls=dict(memory.xlog_stalls),
            keeper_infos=dict(memory.keeper_infos),
            convergence=dict(memory.convergence),
            proxy_infos=dict(memory.proxy_infos),
            db_reports=dict(memory.db_reports),
            switchover=memory.switchover,
        )

    @property
    def d(self) -> DefaultedSpec:
        return DefaultedSpec(self.spec)

    def emit(self, event: Event) -> None:
        log.debug("sentinel event: %s", event)
        self.events.append(event)

    def since(self, mono: float) -> float:
        return self.now.mono - mono

    def silent_since(self, keeper_uid: str) -> float:
        """When the keeper's info last changed as the daemon saw it (never after ``now``);
        ``now`` when the daemon did not say."""
        return min(self.now.mono, self.silence_since.get(keeper_uid, self.now.mono))


def fresh_db_uid(cd: ClusterData, cyc: Cycle) -> str:
    """A new DB UID from the injected generator, never one already in the cluster data."""
    for _ in range(1000):
        uid = cyc.new_uid()
        if uid not in dbs(cd):
            return uid
    raise UpdateFailed("cannot generate a DB UID that is not already in use")


def seconds(d: Duration) -> float:
    return d.ns / 1e9


# -- typed access (decide normalizes the working copy so these hold) -------------------------


def dbs(cd: ClusterData) -> dict[str, DB]:
    assert cd.dbs is not None
    return cd.dbs


def keepers(cd: ClusterData) -> dict[str, Keeper]:
    assert cd.keepers is not None
    return cd.keepers


def proxy(cd: ClusterData) -> Proxy:
    assert cd.proxy is not None
    return cd.proxy


def status(cd: ClusterData) -> ClusterStatus:
    assert cd.cluster is not None
    return cd.cluster.status


def spec(db: DB) -> DBSpec:
    assert db.spec is not None
    return db.spec


def normalize(cd: ClusterData) -> None:
    """Give a working copy the shape the algorithm reads (no null maps or specs)."""
    assert cd.cluster is not None
    if cd.keepers is None:
        cd.keepers = {}
    if cd.dbs is None:
        cd.dbs = {}
    if cd.proxy is None:
        cd.proxy = Proxy()
    for db in cd.dbs.values():
        if db.spec is None:
            db.spec = DBSpec()
