"""Change notification through Consul blocking queries (KV Store API, ``?index=&wait=``).

A thread per watch long-polls Consul: on the cluster's prefix (``<base>/?recurse``) when
several kinds are watched, or on the single key or prefix of the one kind watched (so a watch
of the cluster data alone is not woken, and does not download every info, on each keeper
heartbeat). Each answer is reduced to a fingerprint per kind — the keys and their
``ModifyIndex``, and for the leader key its holder session and value (a handover, not a
renewal, which does not touch the key) — and compared with the previous one; what differs
is handed to :meth:`ConsulWatch.wait`.

- **Nothing lost.** The first read is made when the watch is created; each blocking query
  starts from the index of the previous answer and returns at once if anything changed in
  between. Changes are compared by content, so an index that goes backwards (Consul's
  blocking-query rules: a restored snapshot, a reaped tombstone) only restarts the loop at
  index 1, as Consul prescribes.
- **Unreachable Consul.** Errors are retried with a growing pause (0.2 s to 2 s); the first
  answer afterwards is reported as ``resync``.
- **A hung agent.** A blocking query returns after ``wait`` (plus Consul's ``wait/16``
  jitter) even when nothing changed, and the request is bounded by that plus the store
  timeout, so a frozen agent is noticed within about ``wait`` + ``--store-timeout``.
- **Identical writes.** Consul does not bump the ``ModifyIndex`` of a write that changes
  nothing, so rewriting a key with the same bytes is not reported (an info republished with a
  new ``infoUID`` is different bytes, and is).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from stolon.store.base import ChangeKind, Changes, InfoKind, StoreError, Watch
from stolon.store.layout import CLUSTER_DATA, SENTINEL_LEADER

if TYPE_CHECKING:
    from stolon_store_consul.client import ConsulClient, KVEntry

log = logging.getLogger(__name__)

#: How long one blocking query waits for a change (seconds).
WAIT = 10.0
#: Pause between attempts while Consul cannot be reached, growing to the maximum.
RETRY_MIN, RETRY_MAX = 0.2, 2.0

_INFO_KINDS = {
    ChangeKind.KEEPERS: InfoKind.KEEPER,
    ChangeKind.SENTINELS: InfoKind.SENTINEL,
    ChangeKind.PROXIES: InfoKind.PROXY,
}


def kind_of(key: str, base: str) -> ChangeKind | None:
    """Which part of the cluster's keys ``key`` belongs to."""
    if not key.startswith(base + "/"):
        return None
    rest = key[len(base) + 1 :]
    if rest == CLUSTER_DATA:
        return ChangeKind.CLUSTER_DATA
    if rest == SENTINEL_LEADER:
        return ChangeKind.LEADER
    for change, info_kind in _INFO_KINDS.items():
        if rest.startswith(f"{info_kind.value}/info/"):
            return change
    return None


def target_of(base: str, kinds: frozenset[ChangeKind]) -> tuple[str, bool]:
    """The key (or prefix, with ``recurse``) one blocking query must watch for ``kinds``."""
    if len(kinds) == 1:
        (kind,) = kinds
        if kind is ChangeKind.CLUSTER_DATA:
            return f"{base}/{CLUSTER_DATA}", False
        if kind is ChangeKind.LEADER:
            return f"{base}/{SENTINEL_LEADER}", False
        return f"{base}/{_INFO_KINDS[kind].value}/info/", True
    return base + "/", True


class ConsulWatch(Watch):
    """A :class:`~stolon.store.base.Watch` on one cluster's keys through blocking queries."""

    native = True

    def __init__(
        self, client: ConsulClient, base: str, kinds: frozenset[ChangeKind], *, wait: float = WAIT
    ) -> None:
        self.client = client
        self.base = base
        self.kinds = kinds
        self.wait_time = wait
        self.target = target_of(base, kinds)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._pending: set[ChangeKind] = set()
        self._resync = False
        self._lost = False
        self._last: dict[ChangeKind, tuple[object, ...]] | None = None
        self._index = 0
        try:
            self._index, entries = self._read(None)
            self._last = self._fingerprint(entries)
        except StoreError as e:
            log.debug("consul watch: first read failed: %s", e)
            self._lost = True
        self._thread = threading.Thread(target=self._run, name="consul-watch", daemon=True)
        self._thread.start()

    # -- the caller's side --------------------------------------------------------------------
    def wait(self, timeout: float) -> Changes:
        with self._cond:
            self._cond.wait_for(lambda: self._stop.is_set() or self._resync or bool(self._pending), timeout)
            changes = Changes(frozenset(self._pending), self._resync)
            self._pending.clear()
            self._resync = False
        return changes

    def close(self) -> None:
        """Stop watching. A blocking query in flight is not aborted: the thread ends when it
        returns (within ``wait`` plus the store timeout) and issues no other."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    # -- the long-poll thread ----------------------------------------------------------------
    def _read(self, index: int | None) -> tuple[int, list[KVEntry]]:
        key, recurse = self.target
        return self.client.kv_get(key, recurse=recurse, index=index, wait=self.wait_time)

    def _fingerprint(self, entries: list[KVEntry]) -> dict[ChangeKind, tuple[object, ...]]:
        found: dict[ChangeKind, list[tuple[object, ...]]] = {k: [] for k in self.kinds}
        for e in entries:
            kind = kind_of(e.key, self.base)
            if kind not in found:
                continue
            if kind is ChangeKind.LEADER:
                found[kind].append((e.session, e.value))  # who holds it, not when it was renewed
            else:
                found[kind].append((e.key, e.modify_index))
        return {k: tuple(sorted(v, key=repr)) for k, v in found.items()}

    def _run(self) -> None:
        pause = RETRY_MIN
        while not self._stop.is_set():
            try:
                index, entries = self._read(max(1, self._index))
            except StoreError as e:
                if self._stop.is_set():
                    break
                if not self._lost:
                    log.info("consul watch on %s: %s; retrying", self.target[0], e)
                self._lost = True
                self._stop.wait(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            pause = RETRY_MIN
            # Consul's rules: an index that went backwards restarts the loop (at 1)
            self._index = index if index >= self._index else 1
            snap = self._fingerprint(entries)
            with self._cond:
                if self._lost or self._last is None:
                    self._resync = True
                    self._lost = False
                else:
                    self._pending |= {k for k in self.kinds if snap[k] != self._last[k]}
                self._last = snap
                if self._resync or self._pending:
                    self._cond.notify_all()
