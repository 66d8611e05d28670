"""The store contract every backend implements.

A store holds one cluster's coordination state (Go Stolon's layout, docs/store-etcd.md):

- the **cluster data** document, read with an opaque revision and written with a
  compare-and-swap on that revision (optionally also conditioned, in the same store
  transaction, on still holding the sentinel leadership);
- **infos** that daemons publish about themselves with a TTL (keepers, sentinels, proxies);
- the **sentinel leader election**.

The API works on bytes (the JSON documents); :class:`stolon.store.client.ClusterStore`
adds the typed layer. It is synchronous: the daemons call it from worker threads, and
every call is bounded by the configured store timeout.

Shape notes: on Kubernetes (plugin ``stolon-store-kubernetes``) the cluster data lives in
a ConfigMap annotation whose ``resourceVersion`` is the revision and the leader in a Lease,
so a leadership-conditioned write checks and renews the Lease right before the conditional
update (no transaction spans two objects); infos are pod annotations and ``ttl`` is
enforced by the reader through the info's own change detection. On Consul, a revision is the ModifyIndex, TTLs are session TTLs and the
leadership condition is a ``check-session`` operation in a KV transaction.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: An opaque token identifying one stored version of the cluster data.
Revision = Any

DEFAULT_STORE_PREFIX = "stolon/cluster"
DEFAULT_STORE_TIMEOUT = 5.0
#: Go Stolon's sentinel election TTL (etcd session TTL, libkv lock TTL).
DEFAULT_ELECTION_TTL = 20.0
#: KV stores raise info TTLs to at least this many seconds (Go Stolon's MinTTL).
MIN_INFO_TTL = 20.0


class StoreError(Exception):
    """Base class of every store failure."""


class ConflictError(StoreError):
    """A compare-and-swap or create-only write lost: the stored value changed or exists."""


class NotLeaderError(ConflictError):
    """A write conditioned on leadership was refused: the caller no longer holds it."""


class NotFoundError(StoreError):
    """The key the operation needs does not exist."""


class UnreachableError(StoreError):
    """The store could not be reached or did not answer within the store timeout."""


class StoreConfigError(StoreError):
    """The store configuration (backend, endpoints, TLS files) is unusable."""


class MalformedDataError(StoreError):
    """A stored value the backend cannot hand out as a document (e.g. a row of the embedded
    store whose column holds an SQL value of the wrong type). Callers treat it like a
    document that does not parse: ignored, and logged once per change."""


class InfoKind(enum.StrEnum):
    """The three kinds of published info; the value is the store path segment."""

    KEEPER = "keepers"
    SENTINEL = "sentinels"
    PROXY = "proxies"


class ChangeKind(enum.StrEnum):
    """What a :class:`Watch` reports as changed."""

    CLUSTER_DATA = "clusterdata"
    KEEPERS = "keepers"
    SENTINELS = "sentinels"
    PROXIES = "proxies"
    #: the sentinel leadership changed hands (not its renewals)
    LEADER = "leader"


ALL_CHANGES: frozenset[ChangeKind] = frozenset(ChangeKind)
INFO_CHANGES: dict[InfoKind, ChangeKind] = {
    InfoKind.KEEPER: ChangeKind.KEEPERS,
    InfoKind.SENTINEL: ChangeKind.SENTINELS,
    InfoKind.PROXY: ChangeKind.PROXIES,
}


@dataclass(frozen=True)
class Changes:
    """What changed since the previous :meth:`Watch.wait` (or since the watch was made).

    ``resync``: the watch lost continuity (a reconnect, a compacted history, a restarted
    store): anything may have changed, read everything again.
    """

    kinds: frozenset[ChangeKind] = frozenset()
    resync: bool = False

    def __bool__(self) -> bool:
        return bool(self.kinds) or self.resync

    def touches(self, kind: ChangeKind) -> bool:
        return self.resync or kind in self.kinds


class Watch(ABC):
    """A change notification on one cluster's keys (not a data feed: after :meth:`wait`
    says what changed, read it).

    Changes between two calls are never lost, they are coalesced: one :meth:`wait` returns
    every kind that changed since the previous one. A write of the same value counts as a
    change (an info republished with a new ``infoUID`` is news to the sentinel). An info
    disappearing at the end of its TTL may or may not be reported: deadlines on silence are
    the reader's own timers. Without a change :meth:`wait` returns an empty
    :class:`Changes` when ``timeout`` expires; while the store is unreachable it keeps
    trying and reports ``resync`` once it is back.
    """

    #: True when the backend pushes changes (etcd watch, SQLite change counter, Consul
    #: blocking query); False for :class:`PollingWatch`.
    native: bool = False

    @abstractmethod
    def wait(self, timeout: float) -> Changes:
        """Block until something changed since the previous call, or ``timeout`` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Stop watching; a :meth:`wait` in progress returns."""

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class StoreConfig:
    """Everything needed to open a store: Go Stolon's common store flags."""

    backend: str
    cluster_name: str
    endpoints: tuple[str, ...] = ()
    prefix: str = DEFAULT_STORE_PREFIX
    timeout: float = DEFAULT_STORE_TIMEOUT
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    skip_tls_verify: bool = False
    #: Backend-specific options (e.g. the Kubernetes namespace).
    options: dict[str, str] = field(default_factory=dict)

    def base_path(self) -> str:
        """``<prefix>/<cluster>`` cleaned like Go's ``filepath.Join``, no leading slash."""
        parts = [p for p in f"{self.prefix}/{self.cluster_name}".split("/") if p not in ("", ".")]
        return "/".join(parts)


@dataclass(frozen=True)
class Versioned:
    """A stored value with the revision to use for a compare-and-swap."""

    data: bytes
    revision: Revision


@dataclass(frozen=True)
class Leadership:
    """Proof of holding the sentinel leadership, valid until ``valid_until``.

    ``valid_until`` is on this process's monotonic clock and is conservative: it is
    computed from when the last successful renewal *started*, so a caller that checks it
    never believes it leads after the store may have handed leadership to someone else.
    ``token`` is backend data that a leadership-conditioned write checks in the store.
    """

    candidate: str
    term: int
    token: Any
    valid_until: float

    def is_valid(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.valid_until


class Store(ABC):
    """A backend's connection to one cluster's keys."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config

    # cluster data -------------------------------------------------------------------------
    @abstractmethod
    def get_cluster_data(self) -> Versioned | None:
        """The stored cluster data and its revision, or ``None`` if there is none."""

    @abstractmethod
    def put_cluster_data(self, data: bytes) -> Revision:
        """Unconditional overwrite (``stolonctl init`` and ``clusterdata write`` only)."""

    @abstractmethod
    def create_cluster_data(self, data: bytes) -> Revision:
        """Write only if no cluster data exists; else :class:`ConflictError`."""

    @abstractmethod
    def cas_cluster_data(
        self, data: bytes, revision: Revision, *, leadership: Leadership | None = None
    ) -> Revision:
        """Write only if the stored revision is still ``revision``.

        With ``leadership``, the write also requires, in the same store transaction, that
        the caller still holds it; otherwise :class:`NotLeaderError`. A changed revision
        raises :class:`ConflictError`.
        """

    @abstractmethod
    def delete_cluster_data(self) -> None:
        """Remove the cluster data key (no error if absent)."""

    # infos --------------------------------------------------------------------------------
    @abstractmethod
    def put_info(self, kind: InfoKind, uid: str, data: bytes, ttl: float) -> None:
        """Publish ``data`` for daemon ``uid``; it disappears ``ttl`` seconds after the last put."""

    @abstractmethod
    def get_infos(self, kind: InfoKind) -> dict[str, bytes]:
        """Every unexpired info of ``kind``, by uid."""

    # election -----------------------------------------------------------------------------
    @abstractmethod
    def election(self, candidate: str, ttl: float = DEFAULT_ELECTION_TTL) -> Election:
        """A (not yet started) candidacy for the sentinel leadership."""

    @abstractmethod
    def get_leader(self) -> str | None:
        """The current leader's candidate id, or ``None``."""

    # change notification ------------------------------------------------------------------
    def watch(self, kinds: frozenset[ChangeKind] = ALL_CHANGES) -> Watch:
        """A :class:`Watch` on ``kinds``. Backends with a native change feed override this;
        the default polls (reads everything every :data:`POLL_INTERVAL` seconds)."""
        return PollingWatch(self, kinds)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default does nothing."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: How often :class:`PollingWatch` reads the store.
POLL_INTERVAL = 1.0


class PollingWatch(Watch):
    """The fallback watch of a backend without change notification: it reads the watched
    keys every ``interval`` and compares them with the previous read."""

    native = False

    def __init__(
        self, store: Store, kinds: frozenset[ChangeKind] = ALL_CHANGES, interval: float = POLL_INTERVAL
    ):
        self.store = store
        self.kinds = kinds
        self.interval = interval
        self._closed = threading.Event()
        self._last: dict[ChangeKind, object] | None = None
        self._unreachable = False
        try:
            self._last = self._snapshot()
        except StoreError:
            self._unreachable = True

    def _snapshot(self) -> dict[ChangeKind, object]:
        snap: dict[ChangeKind, object] = {}
        if ChangeKind.CLUSTER_DATA in self.kinds:
            cd = self.store.get_cluster_data()
            snap[ChangeKind.CLUSTER_DATA] = None if cd is None else (cd.revision, cd.data)
        for info_kind, change in INFO_CHANGES.items():
            if change in self.kinds:
                snap[change] = sorted(self.store.get_infos(info_kind).items())
        if ChangeKind.LEADER in self.kinds:
            snap[ChangeKind.LEADER] = self.store.get_leader()
        return snap

    def wait(self, timeout: float) -> Changes:
        deadline = time.monotonic() + timeout
        while not self._closed.is_set():
            try:
                snap = self._snapshot()
            except StoreError:
                self._unreachable = True
                snap = None
            if snap is not None:
                if self._unreachable or self._last is None:
                    self._unreachable = False
                    self._last = snap
                    return Changes(resync=True)
                changed = frozenset(k for k in snap if snap[k] != self._last.get(k))
                self._last = snap
                if changed:
                    return Changes(changed)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._closed.wait(min(self.interval, left))
        return Changes()

    def close(self) -> None:
        self._closed.set()


class Election(ABC):
    """A candidacy for the sentinel leadership.

    :meth:`start` runs the campaign in a background thread: it acquires the leadership
    when it is free and keeps renewing it. :meth:`leadership` returns the current proof or
    ``None``, with no I/O. :meth:`resign` stops the campaign and releases the leadership.
    """

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def leadership(self) -> Leadership | None: ...

    @abstractmethod
    def resign(self) -> None: ...

    @abstractmethod
    def step(self) -> Leadership | None:
        """One acquire-or-renew round, in the caller's thread.

        The campaign thread calls it; tests call it without :meth:`start` to model a
        candidate that froze after winning (a paused ex-leader).
        """

    @property
    @abstractmethod
    def times_elected(self) -> int:
        """How many times this candidate gained the leadership (Go's leader count)."""

    def wait_leadership(self, timeout: float) -> Leadership | None:
        """Block up to ``timeout`` seconds for the leadership (for tests and tools)."""
        deadline = time.monotonic() + timeout
        while True:
            lead = self.leadership()
            if lead is not None or time.monotonic() >= deadline:
                return lead
            time.sleep(0.05)


class PollingElection(Election):
    """An election driven by a thread that tries to acquire or renew every ``ttl/4``.

    Backends implement :meth:`_acquire_or_renew` (one store round trip that returns a
    backend token when this candidate holds the leadership, else ``None``) and
    :meth:`_release`. Errors count as "not leader": the campaign drops the leadership and
    tries again, so an old session never blocks a new election (Go Stolon PR #659).
    """

    def __init__(
        self,
        candidate: str,
        ttl: float,
        *,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("election ttl must be positive")
        self.candidate = candidate
        self.ttl = ttl
        self.interval = ttl / 4
        self._on_change = on_change
        self._lock = threading.Lock()
        self._lead: Leadership | None = None
        self._elected = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _acquire_or_renew(self, current: Any | None) -> Any | None:
        """Try to take or keep the leadership; return the backend token if held."""

    @abstractmethod
    def _release(self, token: Any) -> None:
        """Give the leadership up (best effort)."""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"election-{self.candidate}", daemon=True)
        self._thread.start()

    def step(self) -> Leadership | None:
        """One acquire-or-renew round trip (the thread calls this; tests may too)."""
        started = time.monotonic()
        with self._lock:
            current = self._lead.token if self._lead is not None else None
        try:
            token = self._acquire_or_renew(current)
        except Exception as e:
            log.warning("election round failed for %s: %s", self.candidate, e)
            token = None
        if token is not None and self._stop.is_set():
            # resign() ran while this round was in flight: give back what it just won.
            try:
                self._release(token)
            except Exception as e:
                log.warning("releasing the leadership of %s failed: %s", self.candidate, e)
            token = None
        with self._lock:
            previous = self._lead
            was_leader = previous is not None and previous.is_valid()
            if token is None:
                self._lead = None
            else:
                # A different token means the leadership was lost and won again: a new term.
                same_term = was_leader and previous is not None and previous.token == token
                if not same_term:
                    self._elected += 1
                self._lead = Leadership(self.candidate, self._elected, token, started + self.ttl * 0.9)
            is_leader = self._lead is not None
        if is_leader != was_leader and self._on_change is not None:
            self._on_change(is_leader)
        return self._lead

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.interval)

    def leadership(self) -> Leadership | None:
        with self._lock:
            lead = self._lead
        if lead is not None and not lead.is_valid():
            return None
        return lead

    @property
    def times_elected(self) -> int:
        return self._elected

    def resign(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.ttl)
        with self._lock:
            lead, self._lead = self._lead, None
        if lead is not None:
            try:
                self._release(lead.token)
            except Exception as e:
                log.warning("releasing the leadership of %s failed: %s", self.candidate, e)
            if self._on_change is not None:
                self._on_change(False)
