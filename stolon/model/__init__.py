"""The data model: cluster data, cluster spec and the infos daemons publish."""

from stolon.model.cluster import (
    DB,
    Cluster,
    ClusterData,
    ClusterDataError,
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
    ProxyStatus,
    Switchover,
    TimelineHistory,
)
from stolon.model.codec import Document
from stolon.model.duration import Duration
from stolon.model.errors import ModelError
from stolon.model.infos import (
    FencingState,
    KeeperInfo,
    PostgresCondition,
    PostgresState,
    ProxyInfo,
    SentinelInfo,
)
from stolon.model.spec import ClusterSpec, FencingMethod, FencingSpec, SpecError

__all__ = [
    "DB",
    "Cluster",
    "ClusterData",
    "ClusterDataError",
    "ClusterSpec",
    "ClusterStatus",
    "DBSpec",
    "DBStatus",
    "Document",
    "Duration",
    "FencingMethod",
    "FencingSpec",
    "FencingState",
    "FollowConfig",
    "Keeper",
    "KeeperInfo",
    "KeeperSpec",
    "KeeperStatus",
    "ModelError",
    "PostgresBinaryVersion",
    "PostgresCondition",
    "PostgresState",
    "Proxy",
    "ProxyInfo",
    "ProxySpec",
    "ProxyStatus",
    "SentinelInfo",
    "SpecError",
    "Switchover",
    "TimelineHistory",
]
