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

# compiled from_obj and to_obj for every document class (the generic codec's results, faster)
from stolon.model import fastcodec  # noqa: F401  isort: skip

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
