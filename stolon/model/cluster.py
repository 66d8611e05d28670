"""Cluster data: the one document that holds the desired and observed cluster state.

Field names, ``omitempty`` behaviour and ``null``-versus-empty distinctions are those of
Go Stolon's ``internal/cluster/cluster.go`` so that a cluster data key written by either
implementation loads in the other. Keys this version does not know are preserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stolon.model.codec import I64, U16, U64, Document, jf
from stolon.model.duration import SECOND, Duration
from stolon.model.errors import ModelError
from stolon.model.gotime import now_utc
from stolon.model.limits import parse_json
from stolon.model.spec import (
    ArchiveRecoverySettings,
    ClusterSpec,
    NewConfig,
    PITRConfig,
    StandbySettings,
)
from stolon.model.uid import new_uid

CURRENT_FORMAT_VERSION = 1

PHASE_INITIALIZING = "initializing"
PHASE_NORMAL = "normal"

DB_INIT_NONE = "none"
DB_INIT_NEW = "new"
DB_INIT_EXISTING = "existing"
DB_INIT_PITR = "pitr"
DB_INIT_RESYNC = "resync"

ROLE_UNDEFINED = "undefined"
ROLE_MASTER = "master"
ROLE_STANDBY = "standby"

FOLLOW_INTERNAL = "internal"
FOLLOW_EXTERNAL = "external"

NO_GENERATION = 0
INITIAL_GENERATION = 1

# Switchover phases (ours; see docs/switchover.md), in order.
SWITCHOVER_REQUESTED = "requested"  # written by stolonctl
SWITCHOVER_STOPPING = "stopping_master"  # proxies fenced, the old master told to shut down cleanly
SWITCHOVER_CATCHING_UP = "catching_up"  # old master stopped at masterXLogPos; waiting for the target
SWITCHOVER_PROMOTING = "promoting"  # the target is the master in the cluster data; waiting for it
SWITCHOVER_COMPLETED = "completed"
SWITCHOVER_CANCELLED = "cancelled"
SWITCHOVER_ACTIVE_PHASES = (
    SWITCHOVER_REQUESTED,
    SWITCHOVER_STOPPING,
    SWITCHOVER_CATCHING_UP,
    SWITCHOVER_PROMOTING,
)
#: How long a switchover may take before the sentinel cancels it (when the request has none).
DEFAULT_SWITCHOVER_TIMEOUT = Duration(60 * SECOND)


# Backup request phases (ours; docs/backup.md).
BACKUP_REQUESTED = "requested"  # written by stolonctl or the sentinel's schedule
BACKUP_RUNNING = "running"  # the master's keeper reported it started
BACKUP_COMPLETED = "completed"
BACKUP_FAILED = "failed"
BACKUP_ACTIVE_PHASES = (BACKUP_REQUESTED, BACKUP_RUNNING)
BACKUP_BY_STOLONCTL = "stolonctl"
BACKUP_BY_SCHEDULE = "schedule"


class ClusterDataError(ModelError):
    """Stored cluster data this version can't act on (format version, bad document)."""


@dataclass(kw_only=True)
class Switchover(Document):
    """A planned master change (``stolonctl switchover``; ours, Go Stolon has none).

    stolonctl writes it with phase ``requested``; the leader sentinel moves it through the
    ``SWITCHOVER_*`` phases and leaves the last one, ``completed`` or ``cancelled`` (with
    ``message``), in place until the next request replaces it. Go Stolon does not know the
    key and drops it when it rewrites the cluster data (the switchover is then abandoned).
    """

    id: str = jf("id", default="")
    phase: str = jf("phase", default="")
    #: requested target keeper; "" lets the sentinel pick the best eligible standby
    target_keeper: str = jf("targetKeeper", default="")
    #: cancel when not promoted within this time (0: DEFAULT_SWITCHOVER_TIMEOUT)
    timeout: Duration = jf("timeout", default=Duration(0))
    request_time: datetime | None = jf("requestTime")
    #: the master DB when the request was made (a different master cancels the request)
    master_db: str = jf("masterDB", default="")
    #: the standby DB being promoted (chosen by the sentinel when the phase leaves requested)
    target_db: str = jf("targetDB", default="")
    #: where the old master's clean shutdown ended its WAL (its shutdown checkpoint)
    master_xlog_pos: U64 = jf("masterXLogPos", default=0)
    #: why it was cancelled, or what it waits for
    message: str = jf("message", default="")

    @property
    def active(self) -> bool:
        return self.phase in SWITCHOVER_ACTIVE_PHASES

    def timeout_seconds(self) -> float:
        return (self.timeout if self.timeout.ns > 0 else DEFAULT_SWITCHOVER_TIMEOUT).seconds


@dataclass(kw_only=True)
class BackupRequest(Document):
    """A base backup asked of the master's keeper (ours; docs/backup.md).

    stolonctl (``backup create``) or the leader sentinel (``backup.schedule``) writes it with
    phase ``requested`` for the current master DB; that DB's keeper runs it and reports in
    its info; the leader sentinel copies the outcome here (``running``, then ``completed``
    with ``backupID`` or ``failed`` with ``message``). It stays until the next request.
    """

    id: str = jf("id", default="")
    phase: str = jf("phase", default="")
    requested_by: str = jf("requestedBy", default="")
    request_time: datetime | None = jf("requestTime")
    #: the master DB asked to take it (a different master fails the request)
    db_uid: str = jf("dbUID", default="")
    keeper_uid: str = jf("keeperUID", default="")
    start_time: datetime | None = jf("startTime")
    end_time: datetime | None = jf("endTime")
    backup_id: str = jf("backupID", default="")
    size: U64 = jf("size", default=0)
    message: str = jf("message", default="")

    @property
    def active(self) -> bool:
        return self.phase in BACKUP_ACTIVE_PHASES


@dataclass(kw_only=True)
class BackupStatus(Document):
    """``cluster.status.backup`` (ours): the current or last backup request and the last
    ``backup.schedule`` slot acted on (so each slot gets one request)."""

    request: BackupRequest | None = jf("request")
    last_scheduled_slot: datetime | None = jf("lastScheduledSlot")


@dataclass(kw_only=True)
class ClusterStatus(Document):
    current_generation: I64 = jf("currentGeneration", default=0)
    phase: str = jf("phase", default="")
    master: str = jf("master", default="")
    #: the current or last planned switchover (ours)
    switchover: Switchover | None = jf("switchover")
    #: backups requested of the master's keeper (ours)
    backup: BackupStatus | None = jf("backup")


@dataclass(kw_only=True)
class Cluster(Document):
    uid: str = jf("uid", default="")
    generation: I64 = jf("generation", default=0)
    change_time: datetime | None = jf("changeTime")
    spec: ClusterSpec | None = jf("spec")
    status: ClusterStatus = jf("status", default_factory=ClusterStatus)

    @classmethod
    def new(cls, spec: ClusterSpec, uid: str | None = None) -> Cluster:
        return cls(
            uid=uid or new_uid(),
            generation=INITIAL_GENERATION,
            change_time=now_utc(),
            spec=spec,
            status=ClusterStatus(phase=PHASE_INITIALIZING),
        )

    def def_spec(self) -> ClusterSpec:
        return (self.spec or ClusterSpec()).with_defaults()


@dataclass(kw_only=True)
class PostgresBinaryVersion(Document):
    maj: int = jf("Maj", omitempty=False, default=0)
    min: int = jf("Min", omitempty=False, default=0)


@dataclass(kw_only=True)
class KeeperSpec(Document):
    pass


@dataclass(kw_only=True)
class KeeperStatus(Document):
    healthy: bool = jf("healthy", default=False)
    last_healthy_time: datetime | None = jf("lastHealthyTime")
    boot_uuid: str = jf("bootUUID", default="")
    postgres_binary_version: PostgresBinaryVersion = jf(
        "postgresBinaryVersion", default_factory=PostgresBinaryVersion
    )
    force_fail: bool = jf("forceFail", default=False)
    can_be_master: bool | None = jf("canBeMaster")
    can_be_synchronous_replica: bool | None = jf("canBeSynchronousReplica")


@dataclass(kw_only=True)
class Keeper(Document):
    uid: str = jf("uid", default="")
    generation: I64 = jf("generation", default=0)
    change_time: datetime | None = jf("changeTime")
    spec: KeeperSpec | None = jf("spec")
    status: KeeperStatus = jf("status", default_factory=KeeperStatus)


@dataclass(kw_only=True)
class FollowConfig(Document):
    type: str = jf("type", default="")
    dbuid: str = jf("dbuid", default="")
    standby_settings: StandbySettings | None = jf("standbySettings")
    archive_recovery_settings: ArchiveRecoverySettings | None = jf("archiveRecoverySettings")


@dataclass(kw_only=True)
class TimelineHistory(Document):
    timeline_id: U64 = jf("timelineID", default=0)
    switch_point: U64 = jf("switchPoint", default=0)
    reason: str = jf("reason", default="")


@dataclass(kw_only=True)
class DBSpec(Document):
    keeper_uid: str = jf("keeperUID", default="")
    request_timeout: Duration = jf("requestTimeout", default=Duration(0))
    max_standbys: U16 = jf("maxStandbys", default=0)
    synchronous_replication: bool = jf("synchronousReplication", default=False)
    use_pgrewind: bool = jf("usePgrewind", default=False)
    additional_wal_senders: U16 = jf("additionalWalSenders", omitempty=False, default=0)
    additional_replication_slots: list[str] | None = jf("additionalReplicationSlots", omitempty=False)
    init_mode: str = jf("initMode", default="")
    new_config: NewConfig | None = jf("newConfig")
    pitr_config: PITRConfig | None = jf("pitrConfig")
    pg_parameters: dict[str, str] | None = jf("pgParameters")
    pg_hba: list[str] | None = jf("pgHBA", omitempty=False)
    role: str = jf("role", default="")
    follow_config: FollowConfig | None = jf("followConfig")
    followers: list[str] | None = jf("followers", omitempty=False)
    include_previous_config: bool = jf("includePreviousConfig", default=False)
    synchronous_standbys: list[str] | None = jf("synchronousStandbys", omitempty=False)
    external_synchronous_standbys: list[str] | None = jf("externalSynchronousStandbys", omitempty=False)
    #: ours: keep PostgreSQL cleanly shut down. A switchover sets it on the old master so that
    #: it stops accepting writes and its last WAL reaches the standbys (docs/switchover.md).
    stopped: bool = jf("stopped", default=False)


@dataclass(kw_only=True)
class DBStatus(Document):
    healthy: bool = jf("healthy", default=False)
    current_generation: I64 = jf("currentGeneration", default=0)
    listen_address: str = jf("listenAddress", default="")
    port: str = jf("port", default="")
    # "systemdID" is Go Stolon's spelling (sic); kept for compatibility.
    system_id: str = jf("systemdID", default="")
    timeline_id: U64 = jf("timelineID", default=0)
    xlog_pos: U64 = jf("xLogPos", default=0)
    timelines_history: list[TimelineHistory] | None = jf("timelinesHistory")
    pg_parameters: dict[str, str] | None = jf("pgParameters")
    synchronous_standbys: list[str] | None = jf("synchronousStandbys", omitempty=False)
    older_wal_file: str = jf("olderWalFile", default="")


@dataclass(kw_only=True)
class DB(Document):
    uid: str = jf("uid", default="")
    generation: I64 = jf("generation", default=0)
    change_time: datetime | None = jf("changeTime")
    spec: DBSpec | None = jf("spec")
    status: DBStatus = jf("status", default_factory=DBStatus)
    #: W3C trace context of the sentinel decision that last bumped ``generation`` (ours;
    #: Go Stolon ignores it). The keeper's spans for applying that generation join it.
    trace_context: dict[str, str] | None = jf("traceContext")


@dataclass(kw_only=True)
class ProxySpec(Document):
    master_db_uid: str = jf("masterDbUid", default="")
    enabled_proxies: list[str] | None = jf("enabledProxies")


@dataclass(kw_only=True)
class ProxyStatus(Document):
    pass


@dataclass(kw_only=True)
class Proxy(Document):
    uid: str = jf("uid", default="")
    generation: I64 = jf("generation", default=0)
    change_time: datetime | None = jf("changeTime")
    spec: ProxySpec = jf("spec", default_factory=ProxySpec)
    status: ProxyStatus = jf("status", default_factory=ProxyStatus)
    #: W3C trace context of the decision that last bumped ``generation`` (ours).
    trace_context: dict[str, str] | None = jf("traceContext")


@dataclass(kw_only=True)
class ClusterData(Document):
    format_version: U64 = jf("formatVersion", omitempty=False, default=CURRENT_FORMAT_VERSION)
    change_time: datetime | None = jf("changeTime", omitempty=False)
    cluster: Cluster | None = jf("cluster", omitempty=False)
    keepers: dict[str, Keeper] | None = jf("keepers", omitempty=False, default_factory=dict)
    dbs: dict[str, DB] | None = jf("dbs", omitempty=False, default_factory=dict)
    proxy: Proxy | None = jf("proxy", omitempty=False, default_factory=Proxy)

    @classmethod
    def new(cls, cluster: Cluster) -> ClusterData:
        return cls(cluster=cluster, change_time=now_utc(), keepers={}, dbs={}, proxy=Proxy())

    @classmethod
    def parse(cls, data: bytes | str) -> ClusterData:
        """Load stored cluster data: lenient on unknown fields, strict on format version."""
        try:
            obj = parse_json(data, "the cluster data")
        except ModelError as e:
            raise ClusterDataError("", e.message) from None
        if not isinstance(obj, dict):
            raise ClusterDataError("", "stored cluster data is not a JSON object")
        version = obj.get("formatVersion")
        if version != CURRENT_FORMAT_VERSION:
            raise ClusterDataError(
                "formatVersion",
                f"unsupported clusterdata format version {version!r}"
                f" (this version reads {CURRENT_FORMAT_VERSION})",
            )
        try:
            return cls.from_obj(obj)
        except ModelError as e:
            raise ClusterDataError(e.path, f"stored cluster data: {e.message}") from None

    # -- lookups -------------------------------------------------------------------------------
    def db_of_keeper(self, keeper_uid: str) -> DB | None:
        for db in (self.dbs or {}).values():
            if db.spec is not None and db.spec.keeper_uid == keeper_uid:
                return db
        return None

    def master_db(self) -> DB | None:
        if self.cluster is None or not self.cluster.status.master:
            return None
        return (self.dbs or {}).get(self.cluster.status.master)
