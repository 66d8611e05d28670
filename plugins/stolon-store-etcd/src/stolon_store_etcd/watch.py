"""Change notification through etcd's watch API (``POST /v3/watch`` on the JSON gateway: a
stream of JSON objects, one per line).

A thread keeps one watch stream open on ``<base>/`` and turns each event's key into a
:class:`~stolon.store.base.ChangeKind`; :meth:`EtcdWatch.wait` hands out what accumulated.

- **Resuming.** The stream starts at the revision after the last one seen, so a reconnect
  (another endpoint, a restarted etcd, a read timeout) loses nothing.
- **Compaction.** When the revision to resume from was compacted away, etcd cancels the
  watch with ``compact_revision``: the watch reports ``resync`` and starts again from the
  current revision.
- **A replaced etcd.** A different ``cluster_id``, or a current revision below the last one
  seen (a store restored from an older snapshot), also means ``resync``.
- **A silent etcd.** The gateway sends nothing while nothing changes, and a frozen or
  partitioned etcd sends nothing either; the stream is re-opened after :data:`READ_TIMEOUT`
  seconds without a byte (a cheap request), so a dead connection is noticed that soon.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any, cast

import requests

from stolon.store.base import ChangeKind, Changes, InfoKind, Watch
from stolon.store.layout import CLUSTER_DATA, SENTINEL_LEADER
from stolon_store_etcd.client import API_PATH, EtcdClient, b64, prefix_range_end, unb64

log = logging.getLogger(__name__)

#: Re-open a stream that has been silent this long (seconds).
READ_TIMEOUT = 15.0
#: Wait between reconnection attempts, growing to the maximum.
RETRY_MIN, RETRY_MAX = 0.2, 2.0


def kind_of(key: str, base: str) -> ChangeKind | None:
    """Which part of the cluster's keys ``key`` belongs to."""
    if not key.startswith(base + "/"):
        return None
    rest = key[len(base) + 1 :]
    if rest == CLUSTER_DATA:
        return ChangeKind.CLUSTER_DATA
    if rest.startswith(SENTINEL_LEADER + "/"):
        return ChangeKind.LEADER
    for info_kind, change in (
        (InfoKind.KEEPER, ChangeKind.KEEPERS),
        (InfoKind.SENTINEL, ChangeKind.SENTINELS),
        (InfoKind.PROXY, ChangeKind.PROXIES),
    ):
        if rest.startswith(f"{info_kind.value}/info/"):
            return change
    return None


def watched_range(base: str, kinds: frozenset[ChangeKind]) -> tuple[str, str | None]:
    """The key (and ``range_end``, base64; None for one key) a watch on ``kinds`` streams:
    the cluster data key alone when that is all it wants (keepers and proxies), else every
    key of the cluster. etcd sends each event with its value: a keeper's or proxy's watch
    on the whole prefix received and decoded every info each keeper, sentinel and proxy
    published, several a second at rest, to drop them."""
    if kinds == frozenset({ChangeKind.CLUSTER_DATA}):
        return f"{base}/{CLUSTER_DATA}", None
    return base + "/", prefix_range_end(base + "/")


class EtcdWatch(Watch):
    native = True

    def __init__(self, client: EtcdClient, base: str, kinds: frozenset[ChangeKind]) -> None:
        self.client = client
        self.base = base
        self.kinds = kinds
        self._cond = threading.Condition()
        self._pending: set[ChangeKind] = set()
        self._resync = False
        self._closed = False
        self._response: requests.Response | None = None
        self._cluster_id: str | None = None
        #: the last revision whose events were taken in (the stream resumes after it)
        self._revision = self._current_revision()
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
        self._thread.start()

    # -- the caller's side --------------------------------------------------------------------
    def wait(self, timeout: float) -> Changes:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._resync or bool(self._pending), timeout)
            changes = Changes(frozenset(self._pending), self._resync)
            self._pending.clear()
            self._resync = False
        return changes

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            response = self._response
        if response is not None:
            _abort(response)  # unblocks the reader
        self._thread.join(timeout=5)

    # -- the reader thread ----------------------------------------------------------------
    def _current_revision(self) -> int:
        """The store's current revision (0 when etcd can't be reached now)."""
        try:
            answer = self.client.call(
                "kv/range",
                {
                    "key": b64(self.base + "/"),
                    "range_end": prefix_range_end(self.base + "/"),
                    "count_only": True,
                },
                idempotent=True,
            )
        except Exception as e:
            log.debug("etcd watch: cannot read the current revision: %s", e)
            return 0
        self._note_header(answer.get("header") or {})
        return int((answer.get("header") or {}).get("revision", 0))

    def _note_header(self, header: dict[str, Any]) -> bool:
        """Record the cluster id; True when it changed (another etcd behind the endpoints)."""
        cid = header.get("cluster_id")
        if not cid:
            return False
        changed = self._cluster_id is not None and cid != self._cluster_id
        self._cluster_id = cid
        return changed

    def _signal(self, kinds: set[ChangeKind], resync: bool = False) -> None:
        wanted = {k for k in kinds if k in self.kinds}
        if not wanted and not resync:
            return
        with self._cond:
            self._pending |= wanted
            self._resync = self._resync or resync
            self._cond.notify_all()

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self._is_closed():
            try:
                self._stream()
                delay = RETRY_MIN
            except Exception as e:  # the connection, a malformed line: reconnect
                if self._is_closed():
                    return
                log.debug("etcd watch stream ended: %s", e)
                time.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    def _is_closed(self) -> bool:
        with self._cond:
            return self._closed

    def _stream(self) -> None:
        key, range_end = watched_range(self.base, self.kinds)
        create: dict[str, str] = {"key": b64(key), "start_revision": str(self._revision + 1)}
        if range_end is not None:
            create["range_end"] = range_end
        body = {"create_request": create}
        response = self._open(body)
        with self._cond:
            closed = self._closed
            if not closed:
                self._response = response
        if closed:
            response.close()
            return
        try:
            # chunk_size None: hand each line over as soon as it arrives (the stubs want an int)
            for line in response.iter_lines(chunk_size=cast(int, None)):
                if not line:
                    continue
                self._handle(json.loads(line))
        finally:
            with self._cond:
                self._response = None
            response.close()

    def _open(self, body: dict[str, Any]) -> requests.Response:
        errors = []
        for endpoint in self.client.endpoint_order():
            url = endpoint.url.rstrip("/") + API_PATH + "watch"
            try:
                resp = self.client.session.post(
                    url, json=body, stream=True, timeout=(self.client.timeout, READ_TIMEOUT)
                )
            except requests.RequestException as e:
                errors.append(f"{endpoint.url}: {e}")
                continue
            if resp.status_code != 200:
                errors.append(f"{endpoint.url}: HTTP {resp.status_code}")
                resp.close()
                continue
            return resp
        raise ConnectionError("; ".join(errors) or "no endpoint")

    def _handle(self, obj: dict[str, Any]) -> None:
        result = obj.get("result")
        if not isinstance(result, dict):
            raise ValueError(f"unexpected watch message: {obj}")
        header = result.get("header") or {}
        replaced = self._note_header(header)
        if result.get("canceled"):
            compacted = int(result.get("compact_revision") or 0)
            log.info("etcd watch canceled (compacted to revision %s): reading everything again", compacted)
            self._revision = max(self._current_revision(), compacted - 1)
            self._signal(set(), resync=True)
            raise ConnectionError("watch canceled")
        current = int(header.get("revision") or 0)
        if replaced or (result.get("created") and 0 < current < self._revision):
            log.info("etcd behind the endpoints changed (cluster id or revision): reading everything again")
            self._revision = current
            self._signal(set(), resync=True)
            return
        kinds: set[ChangeKind] = set()
        for event in result.get("events") or ():
            kv = event.get("kv") or {}
            key = unb64(kv.get("key", "")).decode(errors="replace")
            kind = kind_of(key, self.base)
            if kind is not None:
                kinds.add(kind)
            self._revision = max(self._revision, int(kv.get("mod_revision") or 0))
        if kinds:
            self._signal(kinds)
        if not result.get("events") and current > self._revision and not result.get("created"):
            self._revision = current  # a progress notification


def _abort(response: requests.Response) -> None:
    """Close a streaming response that another thread is blocked reading: shut the socket
    down first (closing it alone does not wake a thread blocked in recv on Linux)."""
    conn = getattr(response.raw, "connection", None) or getattr(response.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    response.close()
