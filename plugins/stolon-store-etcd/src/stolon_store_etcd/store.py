"""The etcd v3 store: Go Stolon's key layout, per-put info leases, concurrency.Election.

Keys (no leading slash, as Go Stolon's etcdv3 backend), under ``<prefix>/<cluster>``:

- ``clusterdata``: the cluster data; its ``mod_revision`` is the revision;
- ``{keepers,sentinels,proxies}/info/<uid>``: infos, each put with a fresh lease;
- ``sentinel-leader/<lease-id-hex>``: one key per candidate, as etcd's
  ``concurrency.Election``; the key with the lowest ``create_revision`` is the leader.

The election is compatible with Go Stolon's sentinels (and ``etcdctl elect``) on the same
prefix, so a mixed fleet still has one leader. See docs/store-etcd.md for the reasoning.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from stolon.store.base import (
    ALL_CHANGES,
    DEFAULT_ELECTION_TTL,
    ChangeKind,
    ConflictError,
    Election,
    InfoKind,
    Leadership,
    NotLeaderError,
    PollingElection,
    Revision,
    Store,
    StoreConfig,
    StoreError,
    Versioned,
    Watch,
)
from stolon.store.layout import KeyLayout
from stolon_store_etcd.client import (
    EtcdClient,
    EtcdRequestError,
    KeyValue,
    cmp_create_revision,
    cmp_mod_revision,
    op_put,
    op_range,
)
from stolon_store_etcd.watch import EtcdWatch

log = logging.getLogger(__name__)


def lease_ttl(ttl: float) -> int:
    """Whole seconds for an etcd lease, rounded up so a key never outlives less than asked."""
    return max(1, math.ceil(ttl))


class EtcdStore(Store):
    """One cluster's keys in etcd. Thread-safe; opening it does no I/O."""

    def __init__(self, config: StoreConfig) -> None:
        super().__init__(config)
        self.layout = KeyLayout.of(config)
        self.client = EtcdClient(config)
        #: ``<base>/sentinel-leader/``: Go's concurrency.NewElection appends the slash.
        self.election_prefix = self.layout.sentinel_leader + "/"

    # -- cluster data -------------------------------------------------------------------------
    def get_cluster_data(self) -> Versioned | None:
        kvs = self.client.range(self.layout.cluster_data)
        if not kvs:
            return None
        return Versioned(kvs[0].value, kvs[0].mod_revision)

    def put_cluster_data(self, data: bytes) -> Revision:
        return self.client.put(self.layout.cluster_data, data)

    def create_cluster_data(self, data: bytes) -> Revision:
        key = self.layout.cluster_data
        result = self.client.txn([cmp_create_revision(key, 0)], [op_put(key, data)], [])
        if not result.succeeded:
            raise ConflictError(f"cluster data already exists at {key!r}")
        return result.revision

    def cas_cluster_data(
        self, data: bytes, revision: Revision, *, leadership: Leadership | None = None
    ) -> Revision:
        key = self.layout.cluster_data
        expected = _as_revision(revision)
        if leadership is None:
            result = self.client.txn([cmp_mod_revision(key, expected)], [op_put(key, data)], [op_range(key)])
            if not result.succeeded:
                raise ConflictError(_changed(key, expected, result.ranges[0]))
            return result.revision
        election_key, created = self._token(leadership)
        # One transaction: our election key still exists with the create revision it had
        # when it was the oldest (so it still is the oldest), and the data is unchanged.
        result = self.client.txn(
            [cmp_create_revision(election_key, created), cmp_mod_revision(key, expected)],
            [op_put(key, data)],
            [op_range(election_key), op_range(key)],
        )
        if result.succeeded:
            return result.revision
        held = result.ranges[0] or []
        if not held or held[0].create_revision != created:
            raise NotLeaderError(
                f"{leadership.candidate} no longer holds the sentinel leadership: election key"
                f" {election_key!r} is gone"
            )
        raise ConflictError(_changed(key, expected, result.ranges[1]))

    def _token(self, leadership: Leadership) -> tuple[str, int]:
        token = leadership.token
        if (
            not isinstance(token, tuple)
            or len(token) != 2
            or not isinstance(token[0], str)
            or not isinstance(token[1], int)
            or not token[0].startswith(self.election_prefix)
        ):
            raise NotLeaderError(
                f"the leadership of {leadership.candidate} was not won in this etcd election"
                f" ({self.election_prefix!r})"
            )
        return token[0], token[1]

    def delete_cluster_data(self) -> None:
        self.client.delete(self.layout.cluster_data)

    # -- infos ----------------------------------------------------------------------------------
    def put_info(self, kind: InfoKind, uid: str, data: bytes, ttl: float) -> None:
        """Put with a lease of its own, granted for this put (as Go Stolon does).

        The previous put's lease is left to expire: detached from the key, it deletes
        nothing. A key therefore lives ``ttl`` after its last put, whatever came before.
        """
        key = self.layout.info(kind, uid)
        for attempt in range(2):
            lease = self.client.grant(lease_ttl(ttl))
            try:
                self.client.put(key, data, lease)
                return
            except EtcdRequestError as e:
                # the lease can only vanish between grant and put if etcd lost it (e.g.
                # a restore from backup); grant a new one once
                if not e.lease_not_found or attempt:
                    raise

    def get_infos(self, kind: InfoKind) -> dict[str, bytes]:
        prefix = self.layout.info_prefix(kind)
        return {kv.key[len(prefix) :]: kv.value for kv in self.client.range(prefix, prefix=True)}

    # -- election -------------------------------------------------------------------------------
    def election(self, candidate: str, ttl: float = DEFAULT_ELECTION_TTL) -> Election:
        return EtcdElection(self, candidate, ttl)

    def get_leader(self) -> str | None:
        kvs = self.client.range(self.election_prefix, prefix=True, first_created=True)
        return kvs[0].value.decode(errors="replace") if kvs else None

    def watch(self, kinds: frozenset[ChangeKind] = ALL_CHANGES) -> Watch:
        """etcd's watch API on the cluster's keys (:mod:`stolon_store_etcd.watch`)."""
        return EtcdWatch(self.client, self.layout.base, kinds)

    def close(self) -> None:
        self.client.close()


class EtcdElection(PollingElection):
    """etcd's ``concurrency.Election`` driven by polling.

    The candidate's session is a lease of ``ttl`` seconds, kept alive every ``ttl/4``; its
    key is ``<prefix>/<lease-id-hex>`` with the candidate id as value, attached to the
    lease. The oldest key (lowest ``create_revision``) leads. The token is
    ``(key, create_revision)``: a conditioned write checks that exact key version.
    """

    def __init__(self, store: EtcdStore, candidate: str, ttl: float) -> None:
        super().__init__(candidate, ttl)
        self._store = store
        self._client = store.client
        self._lease_ttl = lease_ttl(ttl)
        self._session_lock = threading.Lock()
        self._lease: int | None = None
        self._resigned = threading.Event()

    @property
    def key(self) -> str | None:
        """Our election key, while we have a session."""
        lease = self._lease
        return None if lease is None else f"{self._store.election_prefix}{lease:x}"

    def _acquire_or_renew(self, current: Any | None) -> Any | None:
        with self._session_lock:
            if self._resigned.is_set():
                return None
            lease = self._keep_session()
            key = f"{self._store.election_prefix}{lease:x}"
            prefix = self._store.election_prefix
            # Create our key if it is missing, then read it back with the oldest key, in one
            # transaction (etcd's ranges see the writes made earlier in the same txn).
            result = self._client.txn(
                [cmp_create_revision(key, 0)],
                [
                    op_put(key, self.candidate.encode(), lease),
                    op_range(prefix, prefix=True, first_created=True),
                ],
                [op_range(key), op_range(prefix, prefix=True, first_created=True)],
                idempotent=True,
            )
            if result.succeeded:
                created = result.revision
            else:
                mine = result.ranges[0] or []
                if not mine:  # cannot happen: the compare said the key exists
                    return None
                created = mine[0].create_revision
            oldest = result.ranges[1] or []
            if self._resigned.is_set():
                self._drop_session()
                return None
        if not oldest or oldest[0].key != key:
            return None
        token = (key, created)
        if current is not None and current != token:
            # Our key vanished and was created again since the last round: someone else may
            # have led in between. Report the loss now; the next round starts a new term.
            log.warning("sentinel leadership of %s was lost and re-acquired", self.candidate)
            return None
        return token

    def _keep_session(self) -> int:
        """Keep our lease alive, or grant a new one when it is gone (expired, revoked)."""
        if self._lease is not None:
            if self._client.keepalive(self._lease) > 0:
                return self._lease
            log.info("election session lease %x of %s expired", self._lease, self.candidate)
        self._lease = self._client.grant(self._lease_ttl)
        return self._lease

    def _drop_session(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            self._client.revoke(lease)  # deletes our key too

    def _release(self, token: Any) -> None:
        with self._session_lock:
            self._drop_session()

    def resign(self) -> None:
        """Stop campaigning and end the session, leader or not.

        A waiting candidate's key would otherwise stay in the queue until its lease expired
        and, once the older keys are gone, hold up the election for up to ``ttl``.
        """
        self._resigned.set()
        super().resign()
        with self._session_lock:
            try:
                self._drop_session()
            except StoreError as e:  # etcd down: the lease expires on its own
                log.warning("ending the election session of %s failed: %s", self.candidate, e)


def _as_revision(revision: Revision) -> int:
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise ConflictError(f"{revision!r} is not an etcd revision")
    return revision


def _changed(key: str, expected: int, current: list[KeyValue] | None) -> str:
    if not current:
        return f"cluster data {key!r} was deleted (expected revision {expected})"
    return f"cluster data {key!r} changed: revision {current[0].mod_revision}, expected {expected}"


__all__ = ["EtcdElection", "EtcdStore", "lease_ttl"]
