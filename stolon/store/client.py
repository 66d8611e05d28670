"""The typed layer over a backend: model objects in, model objects out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from stolon.model import ClusterData, KeeperInfo, ModelError, ProxyInfo, SentinelInfo
from stolon.model.codec import Document
from stolon.store.base import (
    MIN_INFO_TTL,
    ConflictError,
    Election,
    InfoKind,
    Leadership,
    Revision,
    Store,
    StoreConfig,
    StoreError,
)

log = logging.getLogger(__name__)

CAS_RETRIES = 3

D = TypeVar("D", bound=Document)


class ClusterStore:
    """A :class:`Store` seen through the model. Owns the backend and closes it."""

    def __init__(self, backend: Store) -> None:
        self.backend = backend

    @property
    def config(self) -> StoreConfig:
        return self.backend.config

    # cluster data -------------------------------------------------------------------------
    def get_cluster_data(self) -> tuple[ClusterData | None, Revision | None]:
        """The parsed cluster data and its revision; raises ClusterDataError if unusable."""
        stored = self.backend.get_cluster_data()
        if stored is None:
            return None, None
        if stored.data.strip() in (b"", b"null"):
            # Go Stolon's tests "delete" the cluster data by writing a null document.
            return None, stored.revision
        return ClusterData.parse(stored.data), stored.revision

    def put_cluster_data(self, cd: ClusterData) -> Revision:
        return self.backend.put_cluster_data(cd.to_bytes())

    def create_cluster_data(self, cd: ClusterData) -> Revision:
        return self.backend.create_cluster_data(cd.to_bytes())

    def cas_cluster_data(
        self, cd: ClusterData, revision: Revision, *, leadership: Leadership | None = None
    ) -> Revision:
        return self.backend.cas_cluster_data(cd.to_bytes(), revision, leadership=leadership)

    def update_cluster_data(
        self,
        change: Callable[[ClusterData], ClusterData | None],
        *,
        retries: int = CAS_RETRIES,
    ) -> ClusterData:
        """Read, apply ``change``, and compare-and-swap; retry on conflicts.

        ``change`` gets a private copy and returns the new document (or mutates it and
        returns ``None``). It may raise to abort, leaving the store untouched.
        """
        last: StoreError | None = None
        for _ in range(retries):
            cd, rev = self.get_cluster_data()
            if cd is None:
                raise StoreError("no cluster data available: run stolonctl init first")
            work = cd.copy()
            new = change(work)
            new = work if new is None else new
            try:
                self.cas_cluster_data(new, rev)
                return new
            except ConflictError as e:
                last = e
                continue
        raise ConflictError(f"failed to update cluster data after {retries} retries: {last}")

    # infos --------------------------------------------------------------------------------
    def put_keeper_info(self, info: KeeperInfo, ttl: float) -> None:
        self.backend.put_info(InfoKind.KEEPER, info.uid, info.to_bytes(), max(ttl, MIN_INFO_TTL))

    def put_sentinel_info(self, info: SentinelInfo, ttl: float) -> None:
        self.backend.put_info(InfoKind.SENTINEL, info.uid, info.to_bytes(), max(ttl, MIN_INFO_TTL))

    def put_proxy_info(self, info: ProxyInfo, ttl: float) -> None:
        self.backend.put_info(InfoKind.PROXY, info.uid, info.to_bytes(), max(ttl, MIN_INFO_TTL))

    def keepers_info(self) -> dict[str, KeeperInfo]:
        return _parse_infos(self.backend.get_infos(InfoKind.KEEPER), KeeperInfo)

    def sentinels_info(self) -> dict[str, SentinelInfo]:
        return _parse_infos(self.backend.get_infos(InfoKind.SENTINEL), SentinelInfo)

    def proxies_info(self) -> dict[str, ProxyInfo]:
        return _parse_infos(self.backend.get_infos(InfoKind.PROXY), ProxyInfo)

    # election -----------------------------------------------------------------------------
    def election(self, candidate: str, ttl: float | None = None) -> Election:
        if ttl is None:
            return self.backend.election(candidate)
        return self.backend.election(candidate, ttl)

    def get_leader(self) -> str | None:
        return self.backend.get_leader()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> ClusterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_infos(raw: dict[str, bytes], cls: type[D]) -> dict[str, D]:
    out: dict[str, D] = {}
    for uid, data in raw.items():
        try:
            out[uid] = cls.loads(data)
        except ModelError as e:
            log.warning("ignoring unparsable %s %s: %s", cls.__name__, uid, e)
    return out
