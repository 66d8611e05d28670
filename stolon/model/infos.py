"""What the daemons publish about themselves, with a TTL (Go Stolon's ``member.go``)."""

from __future__ import annotations

from dataclasses import dataclass

from stolon.model.cluster import PostgresBinaryVersion, TimelineHistory
from stolon.model.codec import I64, U64, Document, jf


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


@dataclass(kw_only=True)
class SentinelInfo(Document):
    uid: str = jf("UID", omitempty=False, default="")


@dataclass(kw_only=True)
class ProxyInfo(Document):
    info_uid: str = jf("infoUID", default="")
    uid: str = jf("UID", omitempty=False, default="")
    generation: I64 = jf("Generation", omitempty=False, default=0)
    #: nanoseconds, as Go encodes a bare time.Duration
    proxy_timeout_ns: I64 = jf("ProxyTimeout", omitempty=False, default=0)
