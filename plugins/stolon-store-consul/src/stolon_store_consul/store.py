"""The Consul store: Go Stolon's consul key layout, TTLs through sessions, a session lock election.

Keys, under ``<prefix>/<cluster>`` and without a leading slash (libkv's Consul backend, which
Go Stolon uses, strips it: ``normalize`` trims the ``/`` its ``store.Normalize`` adds):

- ``clusterdata``: the cluster data; its ``ModifyIndex`` is the revision;
- ``{keepers,sentinels,proxies}/info/<uid>``: infos, each locked by a session with
  ``Behavior: delete`` and a TTL, so Consul deletes the key when the session is not renewed;
- ``sentinel-leader``: the sentinel election lock, acquired with ``?acquire=<session>``,
  value = the holder's uid.

Change notification is a blocking query per watch (:mod:`stolon_store_consul.watch`).

Every write sets the flags to Consul's ``LockFlagValue`` as libkv does, so Go Stolon
components (whose Consul lock refuses keys with other flags) can share the tree. See
docs/store-consul.md for the reasoning.
"""

from __future__ import annotations

import logging
import threading
import weakref
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
from stolon_store_consul.client import (
    ConsulClient,
    ConsulRequestError,
    TLSFiles,
    TxnRolledBack,
    acl_token,
    format_duration,
    op_cas,
    op_check_session,
    op_set,
)

log = logging.getLogger(__name__)

#: libkv's lock delay for its sessions ("virtually disable lock delay"): a key a dead session
#: held can be taken again at once. Our safety does not rest on it (docs/store-consul.md).
LOCK_DELAY = 0.001


def session_ttl(ttl: float) -> float:
    """The Consul session TTL for a key that must live ``ttl`` seconds: half of it.

    Consul invalidates a session up to twice its TTL after the last renewal (Session API,
    "TTL"); libkv therefore halves the TTL it is given, and Go Stolon's 20 s minimum is
    Consul's default 10 s minimum session TTL doubled. We do the same, so keys live as
    long as Go Stolon's. Consul only promises the lower bound, so every local decision that
    must be safe (the election's leadership validity) uses the halved value.
    """
    return ttl / 2


class ConsulStore(Store):
    """One cluster's keys in Consul. Thread-safe; opening it does no I/O."""

    def __init__(self, config: StoreConfig) -> None:
        super().__init__(config)
        self.layout = KeyLayout.of(config)
        self.client = ConsulClient(
            config.endpoints,
            timeout=config.timeout,
            tls=TLSFiles(config.cert_file, config.key_file, config.ca_file, config.skip_tls_verify),
            token=acl_token(),
        )
        self._sessions_lock = threading.Lock()
        #: info key -> (session id, session TTL) of the session that holds it for us
        self._info_sessions: dict[str, tuple[str, float]] = {}
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()

    @property
    def leader_key(self) -> str:
        return self.layout.sentinel_leader

    # -- cluster data -------------------------------------------------------------------------
    def get_cluster_data(self) -> Versioned | None:
        _, entries = self.client.kv_get(self.layout.cluster_data)
        if not entries:
            return None
        return Versioned(entries[0].value, entries[0].modify_index)

    def put_cluster_data(self, data: bytes) -> Revision:
        results = self.client.txn([op_set(self.layout.cluster_data, data)], idempotent=True)
        return _index_of(results, self.layout.cluster_data)

    def create_cluster_data(self, data: bytes) -> Revision:
        key = self.layout.cluster_data
        try:
            results = self.client.txn([op_cas(key, data, 0)])
        except TxnRolledBack:
            raise ConflictError(f"cluster data already exists at {key!r}") from None
        return _index_of(results, key)

    def cas_cluster_data(
        self, data: bytes, revision: Revision, *, leadership: Leadership | None = None
    ) -> Revision:
        key = self.layout.cluster_data
        expected = _as_revision(revision)
        ops = []
        if leadership is not None:
            # One transaction: the leader key is still locked by the session that won the
            # election, and the data is unchanged (check-session, then cas).
            ops.append(op_check_session(self.leader_key, self._token(leadership)[0]))
        ops.append(op_cas(key, data, expected))
        try:
            results = self.client.txn(ops)
        except TxnRolledBack as e:
            if leadership is not None and e.failed(0):
                raise NotLeaderError(
                    f"{leadership.candidate} no longer holds the sentinel leadership:"
                    f" {self.leader_key!r} is not locked by its session ({e})"
                ) from None
            raise ConflictError(
                f"cluster data {key!r} changed or was deleted (expected revision {expected}): {e}"
            ) from None
        return _index_of(results, key)

    def _token(self, leadership: Leadership) -> tuple[str, int]:
        token = leadership.token
        if (
            not isinstance(token, tuple)
            or len(token) != 3
            or token[0] != self.leader_key
            or not isinstance(token[1], str)
            or not isinstance(token[2], int)
        ):
            raise NotLeaderError(
                f"the leadership of {leadership.candidate} was not won on the Consul lock {self.leader_key!r}"
            )
        return token[1], token[2]

    def delete_cluster_data(self) -> None:
        self.client.kv_delete(self.layout.cluster_data)

    # -- infos ----------------------------------------------------------------------------------
    def put_info(self, kind: InfoKind, uid: str, data: bytes, ttl: float) -> None:
        """Write the info in a key locked by a ``Behavior: delete`` session, and renew it.

        The session lives half of ``ttl`` (see :func:`session_ttl`) and is created once per
        key and reused: each put renews it and writes with ``?acquire=`` (the holder may
        write again). When the key is locked by a session we did not create (a Go Stolon
        daemon with the same uid, or this daemon before a restart), we renew that session
        and write in place, keeping its lock, as libkv does.
        """
        key = self.layout.info(kind, uid)
        wanted = session_ttl(ttl)
        with self._sessions_lock:
            known = self._info_sessions.pop(key, None)
        session: str | None = None
        if known is not None:
            if not self.client.session_renew(known[0]):
                known = None  # expired (its key with it): start over
            elif known[1] == wanted:
                session, known = known[0], None
        for _ in range(2):
            created = session is None
            if session is None:
                session = self.client.session_create(
                    ttl=wanted, behavior="delete", lock_delay=LOCK_DELAY, name=f"stolon {kind.value} {uid}"
                )
            if known is not None:
                # the TTL changed: move the key to the new session without deleting it
                self._rebind(key, known[0], data)
                known = None
            try:
                acquired = self.client.kv_put(key, data, acquire=session)
            except ConsulRequestError as e:
                if not e.invalid_session:
                    raise
                session = None  # expired between renew and put: start over with a new one
                continue
            if acquired:
                with self._sessions_lock:
                    self._info_sessions[key] = (session, wanted)
                return
            if created:
                self.client.session_destroy(session)
            holder = self._write_under_holder(key, data)
            if holder:
                with self._sessions_lock:
                    self._info_sessions[key] = (holder, wanted)
                return
            session = None
        raise StoreError(f"cannot publish {key!r}: the key stays locked by another Consul session")

    def _rebind(self, key: str, old: str, data: bytes) -> None:
        """Release ``key`` from our old session (the key stays) and end that session; the
        caller then acquires it with the new one. A release is not an invalidation, so no
        lock-delay applies."""
        try:
            self.client.kv_put(key, data, release=old)
        finally:
            self.client.session_destroy(old)

    def _write_under_holder(self, key: str, data: bytes) -> str:
        """libkv's way: renew the session that holds ``key`` and write without ``acquire``.

        Returns that session (adopted: later puts renew it and acquire with it, which its
        holder may do), or "" when the key is no longer held (the caller acquires again).
        """
        _, entries = self.client.kv_get(key)
        holder = entries[0].session if entries else ""
        if not holder or not self.client.session_renew(holder):
            return ""
        self.client.kv_put(key, data)
        log.info(
            "info key %s is held by Consul session %s (not ours): renewed it and wrote in place", key, holder
        )
        return holder

    def get_infos(self, kind: InfoKind) -> dict[str, bytes]:
        prefix = self.layout.info_prefix(kind)
        _, entries = self.client.kv_get(prefix, recurse=True)
        return {
            e.key[len(prefix) :]: e.value for e in entries if e.key.startswith(prefix) and e.key != prefix
        }

    # -- election -------------------------------------------------------------------------------
    def election(self, candidate: str, ttl: float = DEFAULT_ELECTION_TTL) -> Election:
        return ConsulElection(self, candidate, ttl)

    def get_leader(self) -> str | None:
        """The uid in the leader key while a session holds it (a released lock keeps the
        last holder's uid as its value: that sentinel no longer leads)."""
        _, entries = self.client.kv_get(self.leader_key)
        if not entries or not entries[0].session:
            return None
        return entries[0].value.decode(errors="replace")

    # -- change notification ------------------------------------------------------------------
    def watch(self, kinds: frozenset[ChangeKind] = ALL_CHANGES) -> Watch:
        """A watch through Consul blocking queries (:mod:`stolon_store_consul.watch`)."""
        from stolon_store_consul.watch import ConsulWatch

        w = ConsulWatch(self.client, self.layout.base, kinds)
        self._watches.add(w)
        return w

    def close(self) -> None:
        for w in list(self._watches):
            w.close()
        self.client.close()


class ConsulElection(PollingElection):
    """A Consul session lock on ``<base>/sentinel-leader``, driven by polling.

    The candidate's session has ``Behavior: release`` and half the election TTL (as
    libkv's lock, which Go Stolon's sentinels use); it is renewed every quarter of that.
    The leader is the session holding the lock, and the key's value is its uid. The token
    is ``(leader key, session, LockIndex)``: a leadership-conditioned write checks, in the
    same transaction, that this session still holds the lock. A leadership is trusted
    locally for 0.9 of the *session* TTL after the renewal started: Consul never invalidates
    a session before its TTL, so nobody else can hold the lock by then.
    """

    def __init__(self, store: ConsulStore, candidate: str, ttl: float) -> None:
        super().__init__(candidate, session_ttl(ttl))
        self.election_ttl = ttl
        self._store = store
        self._client = store.client
        self._key = store.leader_key
        self._session_lock = threading.Lock()
        self._session: str | None = None
        self._resigned = threading.Event()

    @property
    def session(self) -> str | None:
        return self._session

    def _acquire_or_renew(self, current: Any | None) -> Any | None:
        with self._session_lock:
            if self._resigned.is_set():
                return None
            session = self._keep_session()
            _, entries = self._client.kv_get(self._key)
            entry = entries[0] if entries else None
            if entry is None or not entry.session:
                if not self._client.kv_put(self._key, self.candidate.encode(), acquire=session):
                    return None  # someone else won the race, or a lock-delay is running
                _, entries = self._client.kv_get(self._key)
                entry = entries[0] if entries else None
            if entry is None or entry.session != session:
                return None
            if self._resigned.is_set():
                self._drop_session()
                return None
        token = (self._key, session, entry.lock_index)
        if current is not None and current != token:
            # The lock was lost and taken again since the last round: someone else may have
            # led in between. Report the loss now; the next round starts a new term.
            log.warning("sentinel leadership of %s was lost and re-acquired", self.candidate)
            return None
        return token

    def _keep_session(self) -> str:
        if self._session is not None:
            if self._client.session_renew(self._session):
                return self._session
            log.info("election session %s of %s expired", self._session, self.candidate)
            self._session = None
        try:
            self._session = self._client.session_create(
                ttl=self.ttl,
                behavior="release",
                lock_delay=LOCK_DELAY,
                name=f"stolon sentinel {self.candidate}",
            )
        except ConsulRequestError as e:
            if "ttl" in e.body.lower():
                raise StoreError(
                    f"Consul refused an election session TTL of {format_duration(self.ttl)} (half of the"
                    f" election TTL {self.election_ttl:g}s): {e.body}. Use an election TTL of at least twice"
                    " the agent's session_ttl_min (20s with Consul's default 10s)"
                ) from None
            raise
        return self._session

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            # release first: a destroyed session's lock is blocked for its lock-delay
            self._client.kv_put(self._key, self.candidate.encode(), release=session)
        finally:
            self._client.session_destroy(session)

    def _release(self, token: Any) -> None:
        with self._session_lock:
            self._drop_session()

    def resign(self) -> None:
        """Stop campaigning, release the lock if held and end the session."""
        self._resigned.set()
        super().resign()
        with self._session_lock:
            try:
                self._drop_session()
            except StoreError as e:  # Consul down: the session expires on its own
                log.warning("ending the election session of %s failed: %s", self.candidate, e)


def _as_revision(revision: Revision) -> int:
    # 0 would turn a compare-and-swap into a create-only write (Consul's cas=0)
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise ConflictError(f"{revision!r} is not a Consul modify index")
    return revision


def _index_of(results: list[Any], key: str) -> int:
    for entry in results:
        if entry.key == key:
            return int(entry.modify_index)
    raise StoreError(f"Consul's transaction answer has no result for {key!r}")


__all__ = ["ConsulElection", "ConsulStore", "session_ttl"]
