"""Builders for sentinel stories (tests/sentinel, benchmarks/cost.py): a cluster as the stored
cluster data, plus the observations and memory that make the health step agree with the
flags written in it.

``cd().keeper("k1").db("db1", "k1", role=MASTER).master("db1")`` describes a cluster; the same
builder yields:

- ``build()``: the stored ClusterData;
- ``observations()``: a fresh KeeperInfo for every healthy keeper, whose postgresState
  reports its DB exactly as the DB status says (healthy or not);
- ``memory()``: error timers older than failInterval for unhealthy keepers and DBs,
  convergence timers 1000h old for DBs not at their generation (as Go's TestUpdateCluster
  does: a non-converged DB is a convergence failure unless the timeout is 0), info histories
  that make the new infos fresh, and replication reports of a standby that streams.

So ``decide`` recomputes the same health flags and the stories exercise the whole cycle.
``db(uid, ...)`` and ``keeper(uid, ...)`` create or update: on update only the given
fields change. ``clone()`` copies the builder to describe the expected outcome.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from stolon.model.cluster import (
    DB,
    DB_INIT_NONE,
    FOLLOW_EXTERNAL,
    FOLLOW_INTERNAL,
    PHASE_NORMAL,
    ROLE_MASTER,
    ROLE_STANDBY,
    Cluster,
    ClusterData,
    ClusterStatus,
    DBSpec,
    DBStatus,
    FollowConfig,
    Keeper,
    KeeperSpec,
    KeeperStatus,
    PostgresBinaryVersion,
    Proxy,
    ProxySpec,
    Switchover,
    TimelineHistory,
)
from stolon.model.infos import KeeperInfo, PostgresState, ProxyInfo
from stolon.model.spec import ClusterSpec, DefaultedSpec
from stolon.sentinel import (
    ConvergenceTimer,
    DBReport,
    Decision,
    KeeperInfoSeen,
    Memory,
    Now,
    Observations,
    decide,
)

MASTER = ROLE_MASTER
STANDBY = ROLE_STANDBY
EXTERNAL = "<external>"  # follows= value for a standby-cluster master
FAKE = "stolonfakestandby"

WALL0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW = Now(mono=1_000_000.0, wall=WALL0)
LONG_AGO = 1000 * 3600.0  # Go's test convergence timers: 1000h in the past
CLUSTER_UID = "cluster1"


@dataclass
class KeeperB:
    uid: str
    healthy: bool = True
    last_healthy: datetime | None = WALL0
    can_be_master: bool | None = None
    can_be_sync: bool | None = None
    pg_version: tuple[int, int] = (0, 0)
    force_fail: bool = False
    #: publish a fresh info this cycle (default: iff healthy)
    reports: bool | None = None
    #: postgresState override for the fresh info: "none" = no state, or a DB uid to report
    reports_db: str | None = None


@dataclass
class DBB:
    uid: str
    keeper: str
    role: str = STANDBY
    follows: str | None = None
    generation: int = 1
    current: int = 1
    healthy: bool = True
    xlog: int = 0
    timeline: int = 0
    system_id: str = ""
    history: list[tuple[int, int]] | None = None
    init_mode: str = DB_INIT_NONE
    followers: list[str] | None = field(default_factory=list)
    sync: bool = False
    sync_standbys: list[str] | None = None
    ext_sync: list[str] | None = None
    in_sync: list[str] | None = None
    #: what the master reports as sync right now (not stored)
    cur_sync: list[str] | None = None
    older_wal: str = ""
    #: replication slots the keeper reports lost (not stored)
    lost_slots: list[str] | None = None
    pg_parameters: dict[str, str] | None = None
    include_previous_config: bool = False
    new_config: Any = None
    pitr_config: Any = None
    #: DBSpec attributes to force after spec propagation (e.g. stale values)
    spec_overrides: dict[str, Any] = field(default_factory=dict)
    #: spec ``stopped`` (switchover), and the position its keeper reports once cleanly stopped
    stopped: bool = False
    stopped_at: int = 0
    #: postgresState.healthy in the fresh info (default: same as ``healthy``)
    pg_healthy: bool | None = None
    # memory knobs
    converging_for: float = LONG_AGO
    error_for: float = 1000.0
    last_report_ago: float | None = None  # None: 5s if healthy, else 30s (when it was last fine)
    progress_ago: float | None = None  # None: same as the last report
    observed_for: float = 3600.0
    reported: bool = True  # False: this sentinel never saw a healthy report of it
    stalls: int = 0  # cycles its xLogPos has not moved


class CD:
    def __init__(self, phase: str = PHASE_NORMAL, **spec: Any) -> None:
        self.phase = phase
        self.spec_kw: dict[str, Any] = spec
        self.master_uid = ""
        self.keepers: dict[str, KeeperB] = {}
        self.dbs: dict[str, DBB] = {}
        self.proxy_generation = 0
        self.proxy_master = ""
        self.proxy_enabled: list[str] | None = None
        self.proxies: dict[str, tuple[str, int, float]] = {}  # uid -> (infoUID, generation, timeout s)
        self.switchover_obj: Switchover | None = None

    # -- description -----------------------------------------------------------------------
    def clone(self) -> CD:
        return copy.deepcopy(self)

    def spec(self, **kw: Any) -> CD:
        self.spec_kw.update(kw)
        return self

    def keeper(self, uid: str, **kw: Any) -> CD:
        self.keepers[uid] = replace(self.keepers.get(uid) or KeeperB(uid), **kw)
        return self

    def db(self, uid: str, keeper: str | None = None, **kw: Any) -> CD:
        if uid in self.dbs:
            if keeper is not None:
                kw["keeper"] = keeper
            self.dbs[uid] = replace(self.dbs[uid], **kw)
        else:
            assert keeper is not None, f"new db {uid} needs a keeper"
            if "role" not in kw:
                kw["role"] = STANDBY if kw.get("follows") else MASTER
            self.dbs[uid] = DBB(uid, keeper, **kw)
        return self

    def drop_db(self, uid: str) -> CD:
        del self.dbs[uid]
        return self

    def drop_keeper(self, uid: str) -> CD:
        del self.keepers[uid]
        return self

    def master(self, uid: str) -> CD:
        self.master_uid = uid
        return self

    def proxy(self, generation: int = 1, master: str = "", enabled: list[str] | None = None) -> CD:
        self.proxy_generation, self.proxy_master, self.proxy_enabled = generation, master, enabled
        return self

    def switchover(self, **kw: Any) -> CD:
        """``cluster.status.switchover`` (fields of :class:`Switchover`); updates on re-call."""
        base = self.switchover_obj.to_obj() if self.switchover_obj is not None else {}
        sw = Switchover.from_obj(base)
        for k, v in kw.items():
            setattr(sw, k, v)
        self.switchover_obj = sw
        return self

    def proxy_info(self, uid: str, generation: int, info_uid: str | None = None, timeout: float = 15.0) -> CD:
        self.proxies[uid] = (info_uid or f"{uid}-info", generation, timeout)
        return self

    # -- products --------------------------------------------------------------------------
    def cluster_spec(self) -> ClusterSpec:
        return ClusterSpec(**self.spec_kw)

    def build(self) -> ClusterData:
        cs = self.cluster_spec()
        d = DefaultedSpec(cs.with_defaults())
        keepers = {
            k.uid: Keeper(
                uid=k.uid,
                generation=1,
                spec=KeeperSpec(),
                status=KeeperStatus(
                    healthy=k.healthy,
                    last_healthy_time=k.last_healthy,
                    force_fail=k.force_fail,
                    can_be_master=k.can_be_master,
                    can_be_synchronous_replica=k.can_be_sync,
                    postgres_binary_version=PostgresBinaryVersion(maj=k.pg_version[0], min=k.pg_version[1]),
                ),
            )
            for k in self.keepers.values()
        }
        dbs = {b.uid: self._db(b, cs, d) for b in self.dbs.values()}
        return ClusterData(
            change_time=None,
            cluster=Cluster(
                uid=CLUSTER_UID,
                generation=1,
                spec=cs,
                status=ClusterStatus(
                    current_generation=1,
                    phase=self.phase,
                    master=self.master_uid,
                    switchover=self.switchover_obj.copy() if self.switchover_obj is not None else None,
                ),
            ),
            keepers=keepers,
            dbs=dbs,
            proxy=Proxy(
                generation=self.proxy_generation,
                spec=ProxySpec(master_db_uid=self.proxy_master, enabled_proxies=self.proxy_enabled),
            ),
        )

    def _db(self, b: DBB, cs: ClusterSpec, d: DefaultedSpec) -> DB:
        follow: FollowConfig | None = None
        sc = cs.standby_config
        if b.follows == EXTERNAL:
            follow = FollowConfig(
                type=FOLLOW_EXTERNAL,
                standby_settings=sc.standby_settings if sc else None,
                archive_recovery_settings=sc.archive_recovery_settings if sc else None,
            )
        elif b.follows:
            follow = FollowConfig(type=FOLLOW_INTERNAL, dbuid=b.follows)
        master_type = b.role == MASTER or b.follows == EXTERNAL
        slots = cs.additional_master_replication_slots
        s = DBSpec(
            keeper_uid=b.keeper,
            request_timeout=d.request_timeout,
            max_standbys=d.max_standbys,
            synchronous_replication=b.sync,
            use_pgrewind=d.use_pgrewind,
            additional_wal_senders=d.additional_wal_senders,
            additional_replication_slots=list(slots) if master_type and slots is not None else None,
            init_mode=b.init_mode,
            new_config=b.new_config,
            pitr_config=b.pitr_config,
            pg_parameters=dict(cs.pg_parameters) if cs.pg_parameters is not None else None,
            pg_hba=list(cs.pg_hba) if cs.pg_hba is not None else None,
            role=b.role,
            follow_config=follow,
            followers=list(b.followers) if b.followers is not None else None,
            include_previous_config=b.include_previous_config,
            synchronous_standbys=list(b.sync_standbys) if b.sync_standbys is not None else None,
            external_synchronous_standbys=list(b.ext_sync) if b.ext_sync is not None else None,
            stopped=b.stopped,
        )
        for name, value in b.spec_overrides.items():
            setattr(s, name, value)
        return DB(
            uid=b.uid,
            generation=b.generation,
            spec=s,
            status=DBStatus(
                healthy=b.healthy,
                current_generation=b.current,
                system_id=b.system_id,
                timeline_id=b.timeline,
                xlog_pos=b.xlog,
                timelines_history=_history(b.history),
                pg_parameters=b.pg_parameters,
                synchronous_standbys=list(b.in_sync) if b.in_sync is not None else None,
                older_wal_file=b.older_wal,
            ),
        )

    def _reports(self, k: KeeperB) -> bool:
        return k.healthy if k.reports is None else k.reports

    def observations(self, first_run: bool = False) -> Observations:
        infos: dict[str, KeeperInfo] = {}
        for k in self.keepers.values():
            if not self._reports(k):
                continue
            infos[k.uid] = KeeperInfo(
                info_uid=f"{k.uid}-info-new",
                uid=k.uid,
                cluster_uid=CLUSTER_UID,
                postgres_binary_version=PostgresBinaryVersion(maj=k.pg_version[0], min=k.pg_version[1]),
                postgres_state=self._pg_state(k),
                can_be_master=k.can_be_master,
                can_be_synchronous_replica=k.can_be_sync,
            )
        proxies = {
            uid: ProxyInfo(info_uid=info, uid=uid, generation=gen, proxy_timeout_ns=int(t * 1e9))
            for uid, (info, gen, t) in self.proxies.items()
        }
        return Observations(keepers_info=infos, proxies_info=proxies, first_run=first_run)

    def _pg_state(self, k: KeeperB) -> PostgresState | None:
        if k.reports_db == "none":
            return None
        b = next((b for b in self.dbs.values() if b.keeper == k.uid), None)
        if k.reports_db is not None and (b is None or b.uid != k.reports_db):
            return PostgresState(uid=k.reports_db, healthy=True)
        if b is None:
            return None
        if b.stopped_at:
            return PostgresState(
                uid=b.uid, generation=b.current, healthy=False, stopped_xlog_pos=b.stopped_at
            )
        return PostgresState(
            uid=b.uid,
            generation=b.current,
            healthy=b.healthy if b.pg_healthy is None else b.pg_healthy,
            system_id=b.system_id,
            timeline_id=b.timeline,
            xlog_pos=b.xlog,
            timelines_history=_history(b.history),
            pg_parameters=b.pg_parameters,
            synchronous_standbys=list(b.cur_sync or []),
            older_wal_file=b.older_wal,
            lost_replication_slots=b.lost_slots,
        )

    def memory(self, now: Now = NOW) -> Memory:
        t = now.mono
        keeper_infos = {
            k.uid: KeeperInfoSeen(f"{k.uid}-info-old", True, t - 5) for k in self.keepers.values()
        }
        keeper_errors = {k.uid: t - 1000.0 for k in self.keepers.values() if not k.healthy}
        db_errors = {
            b.uid: t - b.error_for for b in self.dbs.values() if not b.healthy or b.pg_healthy is False
        }
        convergence = {
            b.uid: ConvergenceTimer(b.generation, t - b.converging_for)
            for b in self.dbs.values()
            if b.current != b.generation
        }
        reports = {}
        for b in self.dbs.values():
            if b.current == 0 or not b.reported:
                continue
            last = b.last_report_ago if b.last_report_ago is not None else (5.0 if b.healthy else 30.0)
            progress = b.progress_ago if b.progress_ago is not None else last
            reports[b.uid] = DBReport(
                observed_since=t - b.observed_for,
                healthy_at=t - last,
                progress_at=t - progress,
                xlog_pos=b.xlog,
            )
        return Memory(
            xlog_stalls={b.uid: b.stalls for b in self.dbs.values() if b.stalls},
            keeper_errors=keeper_errors,
            db_errors=db_errors,
            keeper_infos=keeper_infos,
            convergence=convergence,
            db_reports=reports,
        )

    # -- running -----------------------------------------------------------------------------
    def uid_source(self) -> Any:
        n = max((int(u[2:]) for u in self.dbs if u.startswith("db") and u[2:].isdigit()), default=0)
        counter = [n]

        def new_uid() -> str:
            counter[0] += 1
            return f"db{counter[0]}"

        return new_uid

    def decide(self, now: Now = NOW, first_run: bool = False, memory: Memory | None = None) -> Decision:
        return decide(
            self.build(),
            self.observations(first_run),
            self.memory(now) if memory is None else memory,
            now,
            new_uid=self.uid_source(),
            pick_index=pick_first,
        )


def uids(prefix: str = "new") -> Any:
    """A deterministic DB UID source for ``decide(new_uid=...)``: new1, new2, ..."""
    counter = [0]

    def new_uid() -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    return new_uid


def pick_first(n: int) -> int:
    """``decide(pick_index=...)`` that always picks the first of the sorted keepers."""
    return 0


def _history(h: list[tuple[int, int]] | None) -> list[TimelineHistory] | None:
    if h is None:
        return None
    return [TimelineHistory(timeline_id=tl, switch_point=sp) for tl, sp in h]


def comparable(cd: ClusterData | None) -> dict[str, Any] | None:
    """The stored form without change times and lastHealthyTime (they follow the clock)."""
    if cd is None:
        return None
    obj = cd.to_obj()
    obj.pop("changeTime", None)
    obj["cluster"].pop("changeTime", None)
    obj["proxy"].pop("changeTime", None)
    for k in obj.get("keepers") or {}:
        obj["keepers"][k].pop("changeTime", None)
        obj["keepers"][k]["status"].pop("lastHealthyTime", None)
    for d in obj.get("dbs") or {}:
        obj["dbs"][d].pop("changeTime", None)
    return obj


def diff(got: ClusterData | None, want: ClusterData | None) -> str:
    import difflib
    import json

    a = json.dumps(comparable(want), indent=1, sort_keys=True).splitlines()
    b = json.dumps(comparable(got), indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "want", "got", lineterm=""))


def at(seconds: float) -> Now:
    return NOW.after(seconds)


__all__ = [
    "CD",
    "EXTERNAL",
    "FAKE",
    "LONG_AGO",
    "MASTER",
    "NOW",
    "STANDBY",
    "WALL0",
    "at",
    "comparable",
    "diff",
    "pick_first",
    "uids",
]
