"""The typed layer over a backend: model objects in, model objects out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from stolon.logonce import OncePerChange, digest
from stolon.model import ClusterData, ClusterDataError, KeeperInfo, ModelError, ProxyInfo, SentinelInfo
from stolon.model.codec import Document
from stolon.model.limits import MAX_INFO_BYTES
from stolon.store.base import (
    ALL_CHANGES,
    MIN_INFO_TTL,
    ChangeKind,
    ConflictError,
    Election,
    InfoKind,
    Leadership,
    MalformedDataError,
    Revision,
    Store,
    StoreConfig,
    StoreError,
    Watch,
)

log = logging.getLogger(__name__)

CAS_RETRIES = 3

D = TypeVar("D", bound=Document)


#: key of the cluster data in :attr:`ClusterStore.malformed`
CLUSTER_DATA_KEY = "clusterdata"


class ClusterStore:
    """A :class:`Store` seen through the model. Owns the backend and closes it.

    Whatever is in the store is untrusted: a document that can't be used (not JSON, too
    big, nested too deep, wrong types, an unknown format version, an unreadable row) is
    ignored on its own: an info is left out of the result, the cluster data raises
    :class:`ClusterDataError`. Each is logged once per change (:attr:`malformed`, whose
    ``current()`` lists them for ``stolonctl status``), never once per cycle.
    """

    def __init__(self, backend: Store) -> None:
        self.backend = backend
        self.malformed = OncePerChange(log, logging.ERROR)

    @property
    def config(self) -> StoreConfig:
        return self.backend.config

    # cluster data -------------------------------------------------------------------------
    def get_cluster_data(
        self, parse: Callable[[bytes], ClusterData] = ClusterData.parse
    ) -> tuple[ClusterData | None, Revision | None]:
        """The parsed cluster data and its revision; raises ClusterDataError if unusable.
        ``parse`` (ClusterData.parse or one that behaves as it does, e.g. the keeper's
        memo of the last document) turns the stored bytes into the document."""
        try:
            stored = self.backend.get_cluster_data()
        except MalformedDataError as e:
            self.malformed.report(CLUSTER_DATA_KEY, str(e), f"ignoring the stored cluster data: {e}")
            raise ClusterDataError("", str(e)) from None
        if stored is None:
            self.malformed.clear(CLUSTER_DATA_KEY)
            return None, None
        if stored.data.strip() in (b"", b"null"):
            # Go Stolon's tests "delete" the cluster data by writing a null document.
            self.malformed.clear(CLUSTER_DATA_KEY)
            return None, stored.revision
        try:
            cd = parse(stored.data)
        except ClusterDataError as e:
            self.malformed.report(
                CLUSTER_DATA_KEY, digest(stored.data), f"ignoring the stored cluster data: {e}"
            )
            raise
        self.malformed.clear(CLUSTER_DATA_KEY, "the stored cluster data is readable again")
        return cd, stored.revision

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

    def keepers_info(self, raw: dict[str, bytes] | None = None) -> dict[str, KeeperInfo]:
        """Every keeper info that parses; from ``raw`` (a :meth:`raw_infos` read) if given."""
        return self._parse_infos(InfoKind.KEEPER, KeeperInfo, raw)

    def sentinels_info(self) -> dict[str, SentinelInfo]:
        return self._parse_infos(InfoKind.SENTINEL, SentinelInfo)

    def proxies_info(self, raw: dict[str, bytes] | None = None) -> dict[str, ProxyInfo]:
        """Every proxy info that parses; from ``raw`` (a :meth:`raw_infos` read) if given."""
        return self._parse_infos(InfoKind.PROXY, ProxyInfo, raw)

    def raw_infos(self, kind: InfoKind) -> dict[str, bytes]:
        """The stored infos of ``kind`` as bytes (untrusted; parse them with the typed
        readers)."""
        return self.backend.get_infos(kind)

    def _parse_infos(self, kind: InfoKind, cls: type[D], raw: dict[str, bytes] | None = None) -> dict[str, D]:
        """Every info of ``kind`` that parses; each one that does not is left out (logged once
        per change), whatever is wrong with it."""
        out: dict[str, D] = {}
        bad: set[str] = set()
        prefix = f"{kind.value}/"
        for uid, data in (self.backend.get_infos(kind) if raw is None else raw).items():
            try:
                out[uid] = cls.loads(data, max_bytes=MAX_INFO_BYTES)
            except (ModelError, ValueError, TypeError, RecursionError, MemoryError) as e:
                key = prefix + uid
                bad.add(key)
                self.malformed.report(
                    key, digest(data), f"ignoring the malformed {kind.value} info {uid!r}: {e}"
                )
        self.malformed.clear_missing(prefix, bad)
        return out

    # election -----------------------------------------------------------------------------
    def election(self, candidate: str, ttl: float | None = None) -> Election:
        if ttl is None:
            return self.backend.election(candidate)
        return self.backend.election(candidate, ttl)

    def get_leader(self) -> str | None:
        return self.backend.get_leader()

    # change notification --------------------------------------------------------------------
    def watch(self, kinds: frozenset[ChangeKind] = ALL_CHANGES) -> Watch:
        return self.backend.watch(kinds)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> ClusterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
