"""Go Stolon's key layout for key-value stores (docs/store-etcd.md)."""

from __future__ import annotations

from dataclasses import dataclass

from stolon.store.base import InfoKind, StoreConfig

CLUSTER_DATA = "clusterdata"
SENTINEL_LEADER = "sentinel-leader"


@dataclass(frozen=True)
class KeyLayout:
    """Keys under ``<prefix>/<cluster>`` (no leading slash, as Go Stolon's etcd v3 backend)."""

    base: str

    @classmethod
    def of(cls, config: StoreConfig) -> KeyLayout:
        return cls(config.base_path())

    @property
    def cluster_data(self) -> str:
        return f"{self.base}/{CLUSTER_DATA}"

    def info_prefix(self, kind: InfoKind) -> str:
        return f"{self.base}/{kind.value}/info/"

    def info(self, kind: InfoKind, uid: str) -> str:
        return self.info_prefix(kind) + uid

    @property
    def sentinel_leader(self) -> str:
        return f"{self.base}/{SENTINEL_LEADER}"
