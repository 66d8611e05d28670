"""What the daemons publish about themselves, with a TTL (Go Stolon's ``member.go``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stolon.model.cluster import PostgresBinaryVersion, TimelineHistory
from stolon.model.codec import I64, U64, Document, jf

#: ``Condition.type`` values (docs/security.md)
CONDITION_INVALID_PARAMETER = "InvalidParameter"
CONDITION_RELOAD_REJECTED = "ConfigReloadRejected"
CONDITION_PENDING_RESTART = "PendingRestart"


@dataclass(kw_only=True)
class PostgresCondition(Document):
    """Something about the instance's configuration an operator must know (ours).

    ``InvalidParameter``: a ``pgParameters`` entry left out of postgresql.conf (a name or
    value that can't be written, or a value the server rejects); ``parameter`` names it.
    ``ConfigReloadRejected``: the server refused the configuration files at the last reload
    (its running configuration is older than what the cluster data asks for).
    ``PendingRestart``: changed parameters that only apply after a restart.
    """

    type: str = jf("type", default="")
    parameter: str = jf("parameter", default="")
    message: str = jf("message", default="")


@dataclass(kw_only=True)
class ArchiverState(Document):
    """``pg_stat_archiver`` of the instance (ours): WAL archiving progress and failures."""

    archived_count: U64 = jf("archivedCount", default=0)
    last_archived_wal: str = jf("lastArchivedWal", default="")
    last_archived_time: datetime | None = jf("lastArchivedTime")
    failed_count: U64 = jf("failedCount", default=0)
    last_failed_wal: str = jf("lastFailedWal", default="")
    last_failed_time: datetime | None = jf("lastFailedTime")


@dataclass(kw_only=True)
class Activity(Document):
    """A long piece of work the keeper is doing (ours): a restore, a base backup, a
    pg_basebackup or pg_rewind, with its progress for logs and ``stolonctl status``."""

    kind: str = jf("kind", default="")
    since: datetime | None = jf("since")
    detail: str = jf("detail", default="")
    done_bytes: U64 = jf("doneBytes", default=0)
    total_bytes: U64 = jf("totalBytes", default=0)


@dataclass(kw_only=True)
class KeeperBackupState(Document):
    """What the keeper did with the cluster's last backup request (ours)."""

    request_id: str = jf("requestID", default="")
    phase: str = jf("phase", default="")
    backup_id: str = jf("backupID", default="")
    start_time: datetime | None = jf("startTime")
    end_time: datetime | None = jf("endTime")
    size: U64 = jf("size", default=0)
    message: str = jf("message", default="")


@dataclass(kw_only=True)
class PostgresState(Document):
    uid: str = jf("uid", default="")
    generation: I64 = jf("generation", default=0)
    listen_address: str = jf("listenAddress", default="")
    port: str = jf("port", default="")
    healthy: bool = jf("healthy", default=False)
    system_id: str = jf("systemID", default="")
    timeline_id: U64 = jf("timelineID", default=0)
    xlog_pos: U64 = jf("xLogPos", default=0)
    timelines_history: list[TimelineHistory] | None = jf("timelinesHistory")
    pg_parameters: dict[str, str] | None = jf("pgParameters")
    synchronous_standbys: list[str] | None = jf("synchronousStandbys", omitempty=False)
    older_wal_file: str = jf("olderWalFile", default="")
    #: ours: managed replication slots whose WAL was removed (max_slot_wal_keep_size);
    #: the standbys using them can't catch up and need a resync.
    lost_replication_slots: list[str] | None = jf("lostReplicationSlots")
    #: ours: PostgreSQL is cleanly shut down because the DB spec says ``stopped``, and this is
    #: the location of its shutdown checkpoint record. Every commit it ever acknowledged is
    #: before it (the shutdown checkpoint is written after the last session ended).
    stopped_xlog_pos: U64 = jf("stoppedXLogPos", default=0)
    #: ours: WAL archiving state (pg_stat_archiver), when archiving is on
    archiver: ArchiverState | None = jf("archiver")
    #: ours: configuration problems of the instance (:class:`PostgresCondition`)
    conditions: list[PostgresCondition] | None = jf("conditions")


@dataclass(kw_only=True)
class KeeperInfo(Document):
    info_uid: str = jf("infoUID", default="")
    uid: str = jf("uid", default="")
    cluster_uid: str = jf("clusterUID", default="")
    boot_uuid: str = jf("bootUUID", default="")
    postgres_binary_version: PostgresBinaryVersion = jf(
        "postgresBinaryVersion", default_factory=PostgresBinaryVersion
    )
    postgres_state: PostgresState | None = jf("postgresState")
    can_be_master: bool | None = jf("canBeMaster")
    can_be_synchronous_replica: bool | None = jf("canBeSynchronousReplica")
    #: ours: the long work in progress (restore, backup...), if any
    activity: Activity | None = jf("activity")
    #: ours: the last backup request this keeper handled
    backup: KeeperBackupState | None = jf("backup")
    #: ours: why the backup method can't be used here (bad settings, tool missing), if so
    backup_error: str = jf("backupError", default="")


@dataclass(kw_only=True)
class FencingState(Document):
    """The leader sentinel's fencing of an old master, while a promotion waits for it (ours;
    docs/fencing.md). ``failures`` counts the consecutive failed attempts; the next one is
    not before ``nextAttempt`` (exponential back-off, bounded by ``sleepInterval``)."""

    old_master_db: str = jf("oldMasterDB", default="")
    old_master_keeper: str = jf("oldMasterKeeper", default="")
    new_master_db: str = jf("newMasterDB", default="")
    fenced: bool = jf("fenced", default=False)
    failures: int = jf("failures", default=0)
    detail: str = jf("detail", default="")
    last_attempt: datetime | None = jf("lastAttempt")
    next_attempt: datetime | None = jf("nextAttempt")


@dataclass(kw_only=True)
class SentinelInfo(Document):
    uid: str = jf("UID", omitempty=False, default="")
    #: ours: the fencing in progress, published by the leader
    fencing: FencingState | None = jf("fencing")


@dataclass(kw_only=True)
class ProxyInfo(Document):
    info_uid: str = jf("infoUID", default="")
    uid: str = jf("UID", omitempty=False, default="")
    generation: I64 = jf("Generation", omitempty=False, default=0)
    #: nanoseconds, as Go encodes a bare time.Duration
    proxy_timeout_ns: I64 = jf("ProxyTimeout", omitempty=False, default=0)
