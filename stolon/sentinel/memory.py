"""What the leader sentinel remembers between cycles (never persisted).

Go Stolon keeps these as fields of the Sentinel object and mutates them in place; here they
are an immutable value that :func:`stolon.sentinel.decide.decide` takes and returns anew.
All times are seconds on the monotonic clock of :class:`stolon.sentinel.observations.Now`.
The daemon must carry the returned memory into the next cycle whether or not its cluster
data write succeeded (as Go does), and drop it when leadership is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KeeperInfoSeen:
    """Keeper info history: the last InfoUID seen, when it changed, and whether it was seen
    outside a first run (``seen=False`` infos recorded at a first run are never fresh)."""

    info_uid: str
    seen: bool
    changed_at: float


@dataclass(frozen=True)
class ProxyInfoSeen:
    """Proxy info history: the last InfoUID seen and when it changed."""

    info_uid: str
    changed_at: float


@dataclass(frozen=True)
class ConvergenceTimer:
    """When the sentinel first saw a DB at ``generation`` without the keeper reporting it;
    ``reported``: its convergence failure was already reported (one event per generation)."""

    generation: int
    since: float
    reported: bool = False


@dataclass(frozen=True)
class DBReport:
    """The replication evidence the election needs (quirk 2 in docs/sentinel-decisions.md).

    ``observed_since``: first cycle this sentinel saw a healthy report of the DB.
    ``healthy_at``: last cycle the DB's status was refreshed from a fresh, healthy postgres
    state of this very DB. ``progress_at``: last such cycle in which it showed replication
    progress (its xLogPos increased since its previous healthy report, or reached the master's
    reported xLogPos). ``xlog_pos``: the xLogPos of the last healthy report.
    """

    observed_since: float
    healthy_at: float
    progress_at: float | None
    xlog_pos: int


@dataclass(frozen=True)
class SwitchoverClock:
    """When this sentinel first saw the switchover request ``switchover_id`` (its timeout
    counts from there; a new leader starts counting again)."""

    switchover_id: str
    since: float


@dataclass(frozen=True)
class Memory:
    """The sentinel's timers and histories.

    - ``keeper_errors``: keeper UID → since when it has had no fresh info (error timer).
    - ``db_errors``: DB UID → since when its state has been missing or unhealthy.
    - ``xlog_stalls``: DB UID → consecutive cycles with an unchanged reported xLogPos.
    - ``keeper_infos``: keeper UID → info history (InfoUID freshness).
    - ``convergence``: DB UID → convergence timer of its current generation.
    - ``proxy_infos``: proxy UID → info history (active proxies).
    - ``db_reports``: DB UID → replication evidence for the election (ours, not Go's).
    - ``switchover``: the clock of the running switchover (ours).

    The mappings are never mutated by ``decide``; treat them as read-only.
    """

    keeper_errors: Mapping[str, float] = field(default_factory=dict)
    db_errors: Mapping[str, float] = field(default_factory=dict)
    xlog_stalls: Mapping[str, int] = field(default_factory=dict)
    keeper_infos: Mapping[str, KeeperInfoSeen] = field(default_factory=dict)
    convergence: Mapping[str, ConvergenceTimer] = field(default_factory=dict)
    proxy_infos: Mapping[str, ProxyInfoSeen] = field(default_factory=dict)
    db_reports: Mapping[str, DBReport] = field(default_factory=dict)
    switchover: SwitchoverClock | None = None

    @classmethod
    def empty(cls) -> Memory:
        return cls()
