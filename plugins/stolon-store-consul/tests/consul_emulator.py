"""An HTTP emulator of the part of Consul's HTTP API that stolon-store-consul uses.

It stands in for a Consul agent (a datacenter of one server and one node, ``dc1``) in the
tests, because no Consul can be installed on the test machines. It is written from Consul's
public HTTP API reference, and implements exactly the endpoints and semantics the plugin
relies on; every behaviour names the page it follows:

- [KV] KV Store endpoints, https://developer.hashicorp.com/consul/api-docs/kv
- [TXN] Transactions, https://developer.hashicorp.com/consul/api-docs/txn
- [SESSION] Session endpoints, https://developer.hashicorp.com/consul/api-docs/session
- [SESSIONS] Sessions (design: invalidation, behaviors, lock-delay, TTL contract),
  https://developer.hashicorp.com/consul/docs/dynamic-app-config/sessions
- [BLOCKING] Blocking queries, https://developer.hashicorp.com/consul/api-docs/features/blocking
- [AGENT-SERVICE] Agent service endpoints, https://developer.hashicorp.com/consul/api-docs/agent/service
- [CATALOG] Catalog, https://developer.hashicorp.com/consul/api-docs/catalog (List Nodes for Service)
- [API] HTTP API structure (``/v1/`` prefix, ``X-Consul-Token``),
  https://developer.hashicorp.com/consul/api-docs/api-structure
- [CONFIG] agent configuration ``session_ttl_min`` (default 10s), in the agent configuration
  file reference.

Where the reference is silent (the status code and text of an error, what an index is when
nothing matched), it follows Consul's source, named as [SRC file]: agent/kvs_endpoint.go,
agent/session_endpoint.go, agent/consul/state/kvs.go, agent/consul/state/txn.go.

What it does not do is listed in the plugin's README (limits of the emulator): one node and
no gossip or health checks (sessions have the node's ``serfHealth``, always passing), no
raft (one index counter, every write is applied at once), no ACL policies (one optional
token that allows everything), no ``?keys``/``?raw``/``?separator``, no consistency modes,
no Node/Service/Check transaction operations, service checks are stored but never run.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from stolon.model.duration import SECOND, DurationError, format_go_duration, parse_go_duration

NODE = "consul-emulator"
DATACENTER = "dc1"
#: [KV] "Values in the KV store cannot be larger than 512kb."
MAX_VALUE = 512 * 1024
#: [TXN] "Up to 128 operations may be present in a single transaction."
MAX_TXN_OPS = 128
#: [SESSION] TTL "between 10s and 86400s"; the lower bound is the agent's session_ttl_min [CONFIG].
SESSION_TTL_MAX = 86400.0
#: [SESSIONS] lock-delay "is a time duration, between 0 and 60 seconds".
MAX_LOCK_DELAY = 60.0
#: [BLOCKING] wait "is limited to 10 minutes. If not set, the wait time defaults to 5 minutes".
DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0


class HTTPError(Exception):
    """An error answer: status code and plain-text body."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class OpError(Exception):
    """A failed transaction operation ([TXN] ``Errors[].What``)."""


@dataclass
class Entry:
    key: str
    value: bytes
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0
    session: str = ""

    def json(self, with_value: bool = True) -> dict[str, Any]:
        # [KV] Read Key: the fields and their names; Value is base64. [TXN]: "the Value for
        # KV results will be null for any Verb other than get or get-tree".
        out: dict[str, Any] = {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": base64.b64encode(self.value).decode() if with_value and self.value else None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }
        if self.session:
            out["Session"] = self.session  # [KV] "If the lock is held, the Session key provides the session"
        return out

    def same_content(self, other: Entry) -> bool:
        """[SRC state/kvs.go kvsSetTxn]: a write that changes nothing keeps the ModifyIndex."""
        return (self.key, self.value, self.flags, self.session, self.lock_index) == (
            other.key,
            other.value,
            other.flags,
            other.session,
            other.lock_index,
        )


@dataclass
class Session:
    id: str
    name: str
    lock_delay: float
    behavior: str
    ttl: str
    ttl_seconds: float
    create_index: int
    modify_index: int
    expires_at: float | None = None

    def json(self) -> dict[str, Any]:
        # [SESSION] Read Session sample response (LockDelay in nanoseconds).
        return {
            "ID": self.id,
            "Name": self.name,
            "Node": NODE,
            "LockDelay": int(self.lock_delay * SECOND),
            "Behavior": self.behavior,
            "TTL": self.ttl,
            "NodeChecks": ["serfHealth"],
            "ServiceChecks": None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass(frozen=True)
class TxnOp:
    """One KV operation of a transaction ([TXN] "KV operations have the following fields")."""

    verb: str
    key: str
    value: bytes
    flags: int
    index: int
    session: str


@dataclass
class Service:
    id: str
    name: str
    tags: list[str]
    address: str
    port: int
    meta: dict[str, str]
    check: dict[str, Any] | None
    create_index: int
    modify_index: int


@dataclass
class Answer:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


def _field(body: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A JSON field, matched case-insensitively and in snake case too ([AGENT-SERVICE]:
    "supports camel case and snake case"; Go's JSON decoding ignores case)."""
    wanted = {name.lower(), re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()}
    for k, v in body.items():
        if k.lower() in wanted:
            return v
    return default


def _duration(text: str, what: str) -> float:
    try:
        return parse_go_duration(text) / SECOND
    except DurationError as e:
        raise HTTPError(400, f"Invalid {what}: {e}") from None


def _uint(params: Mapping[str, list[str]], name: str) -> int | None:
    if name not in params:
        return None
    raw = params[name][0]
    try:
        value = int(raw)
        if value < 0:
            raise ValueError
    except ValueError:
        raise HTTPError(400, f"Invalid {name}: {raw!r}") from None
    return value


class ConsulState:
    """The datacenter's data and the logic of each endpoint. Thread-safe (one lock)."""

    def __init__(self, *, session_ttl_min: float, ttl_multiplier: float) -> None:
        self.session_ttl_min = session_ttl_min
        self.ttl_multiplier = ttl_multiplier
        self.cond = threading.Condition()
        self.raft_index = 1
        self.kv: dict[str, Entry] = {}
        self.tombstones: dict[str, int] = {}
        self.kv_index = 1
        self.lock_delays: dict[str, float] = {}
        self.sessions: dict[str, Session] = {}
        self.sessions_index = 1
        self.services: dict[str, Service] = {}
        self.catalog_index = 1
        self.timers_running = True
        self.closed = False

    def _next(self) -> int:
        """Every write is one raft apply with a new index."""
        self.raft_index += 1
        return self.raft_index

    def _changed(self) -> None:
        self.cond.notify_all()

    # -- KV internals ([SRC state/kvs.go]) -----------------------------------------------------
    def _set(self, idx: int, entry: Entry) -> Entry:
        existing = self.kv.get(entry.key)
        entry.create_index = existing.create_index if existing else idx
        if existing is not None and existing.same_content(entry):
            return existing
        entry.modify_index = idx
        self.kv[entry.key] = entry
        self.kv_index = idx
        return entry

    def _plain_set(self, idx: int, key: str, value: bytes, flags: int) -> Entry:
        # [KV] "an update that does not include the acquire parameter will proceed normally
        # even if another session has locked the key": the lock (session, LockIndex) stays.
        existing = self.kv.get(key)
        session = existing.session if existing else ""
        lock_index = existing.lock_index if existing else 0
        return self._set(idx, Entry(key, value, flags, 0, 0, lock_index, session))

    def _cas(self, idx: int, key: str, value: bytes, flags: int, index: int) -> Entry | None:
        # [KV] cas: "If the index is 0, Consul will only put the key if it does not already
        # exist. If the index is non-zero, the key is only set if the index matches the
        # ModifyIndex of that key."
        existing = self.kv.get(key)
        if (index == 0 and existing is not None) or (
            index != 0 and (existing is None or existing.modify_index != index)
        ):
            return None
        return self._plain_set(idx, key, value, flags)

    def _lock(self, idx: int, key: str, value: bytes, flags: int, session: str) -> Entry | None:
        # [KV] acquire: "If the lock is not held and the session is valid, this increments the
        # LockIndex and sets the Session value of the key in addition to updating the key
        # contents. A key does not need to exist to be acquired. If the lock is already held
        # by the given session, then the LockIndex is not incremented but the key contents
        # are updated."
        if not session:
            raise OpError("missing session")
        if session not in self.sessions:
            raise OpError(f'invalid session "{session}"')  # [SRC state/kvs.go kvsLockTxn]
        existing = self.kv.get(key)
        if existing is not None and existing.session and existing.session != session:
            return None
        if existing is None:
            lock_index = 1
        elif existing.session == session:
            lock_index = existing.lock_index
        else:
            lock_index = existing.lock_index + 1
        return self._set(idx, Entry(key, value, flags, 0, 0, lock_index, session))

    def _unlock(self, idx: int, key: str, value: bytes, flags: int, session: str) -> Entry | None:
        # [KV] release: "This will leave the LockIndex unmodified but will clear the
        # associated Session of the key. The key must be held by this session to be unlocked."
        if not session:
            raise OpError("missing session")
        existing = self.kv.get(key)
        if existing is None or existing.session != session:
            return None
        return self._set(idx, Entry(key, value, flags, 0, 0, existing.lock_index, ""))

    def _delete(self, idx: int, key: str) -> None:
        # [SRC state/kvs.go kvsDeleteTxn]: a delete leaves a tombstone so a list's index does
        # not go backwards ([BLOCKING] "KV list operations where an item with the highest
        # index is removed").
        if self.kv.pop(key, None) is not None:
            self.tombstones[key] = idx
            self.kv_index = idx

    def _delete_tree(self, idx: int, prefix: str) -> None:
        for key in [k for k in self.kv if k.startswith(prefix)]:
            self._delete(idx, key)

    def _delete_cas(self, idx: int, key: str, index: int) -> bool:
        # [KV] Delete cas: "Unlike PUT, the index must be greater than 0 for Consul to take any
        # action: a 0 index will not delete the key."
        existing = self.kv.get(key)
        if existing is None or existing.modify_index != index:
            return existing is None  # [SRC state/kvs.go kvsDeleteCASTxn]
        self._delete(idx, key)
        return True

    def _list(self, prefix: str) -> tuple[int, list[Entry]]:
        # [KV] "if ?recurse is provided, the returned X-Consul-Index corresponds to the latest
        # ModifyIndex within the prefix"; deleted keys count through their tombstones, and with
        # nothing under the prefix it is the table's index [SRC state/kvs.go kvsListTxn].
        entries = sorted((e for k, e in self.kv.items() if k.startswith(prefix)), key=lambda e: e.key)
        if not prefix:
            return self.kv_index, entries
        index = max(
            [e.modify_index for e in entries]
            + [i for k, i in self.tombstones.items() if k.startswith(prefix)],
            default=0,
        )
        return (index or self.kv_index), entries

    def _get(self, key: str) -> tuple[int, list[Entry]]:
        # [KV] "ModifyIndex ... corresponds to the X-Consul-Index header value"; a missing key
        # answers with the table's index.
        entry = self.kv.get(key)
        return (entry.modify_index, [entry]) if entry is not None else (self.kv_index, [])

    # -- KV endpoints ----------------------------------------------------------------------
    def kv_get(self, key: str, params: Mapping[str, list[str]]) -> Answer:
        if "keys" in params or "raw" in params or "separator" in params:
            raise HTTPError(400, "consul emulator: ?keys, ?raw and ?separator are not implemented")
        recurse = "recurse" in params
        if not recurse and not key:
            raise HTTPError(400, "Missing key name")  # [SRC kvs_endpoint.go KVSGet]
        index, entries = self.blocking(params, lambda: self._list(key) if recurse else self._get(key))
        headers = {"X-Consul-Index": str(index)}
        if not entries:
            return Answer(404, b"", headers)  # [KV] "If no key exists at the given path, a 404 is returned"
        return Answer(200, [e.json() for e in entries], headers)

    def blocking(
        self, params: Mapping[str, list[str]], query: Callable[[], tuple[int, list[Entry]]]
    ) -> tuple[int, list[Entry]]:
        """[BLOCKING]: with ``?index``, hang until the result's index is past it or ``wait``
        (default 5 min, at most 10 min, plus up to wait/16 of jitter) runs out. The index is
        never below 1 ("It is always safe to use an index of 1")."""
        min_index = _uint(params, "index") or 0
        wait = _duration(params["wait"][0], "wait time") if "wait" in params else DEFAULT_WAIT
        wait = min(wait, MAX_WAIT)
        deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
        with self.cond:
            while True:
                index, entries = query()
                index = max(index, 1)
                remaining = deadline - time.monotonic()
                if min_index == 0 or index > min_index or remaining <= 0 or self.closed:
                    return index, [replace(e) for e in entries]
                self.cond.wait(remaining)

    def kv_put(self, key: str, params: Mapping[str, list[str]], body: bytes) -> Answer:
        if not key:
            raise HTTPError(400, "Missing key name")
        given = [p for p in ("cas", "acquire", "release") if p in params]
        if len(given) > 1:
            raise HTTPError(
                400, f"Conflicting flags: {'&'.join(given)}"
            )  # [SRC kvs_endpoint.go conflictingFlags]
        if len(body) > MAX_VALUE:
            raise HTTPError(413, f"Request body({len(body)} bytes) too large, max size: {MAX_VALUE} bytes.")
        flags = _uint(params, "flags") or 0  # [KV] flags: "an unsigned value between 0 and (2^64)-1"
        with self.cond:
            idx = self._next()
            try:
                if "cas" in params:
                    ok = self._cas(idx, key, body, flags, _uint(params, "cas") or 0) is not None
                elif "acquire" in params:
                    session = params["acquire"][0]
                    # [SESSIONS] "When a session invalidation takes place, Consul prevents any of
                    # the previously held locks from being re-acquired for the lock-delay interval"
                    if self.lock_delays.get(key, 0.0) > time.monotonic():
                        ok = False
                    else:
                        ok = self._lock(idx, key, body, flags, session) is not None
                elif "release" in params:
                    ok = self._unlock(idx, key, body, flags, params["release"][0]) is not None
                else:
                    self._plain_set(idx, key, body, flags)
                    ok = True
            except OpError as e:
                raise HTTPError(500, str(e)) from None  # [SRC kvs_endpoint.go]: RPC errors are 500
            self._changed()
        return Answer(200, ok)  # [KV] "the value is either true or false"

    def kv_delete(self, key: str, params: Mapping[str, list[str]]) -> Answer:
        if "recurse" in params and "cas" in params:
            raise HTTPError(400, "Conflicting flags: recurse&cas")
        with self.cond:
            idx = self._next()
            if "recurse" in params:
                self._delete_tree(idx, key)  # [KV] recurse: "delete all keys which have the specified prefix"
                ok = True
            elif not key:
                raise HTTPError(400, "Missing key name")
            elif "cas" in params:
                cas = _uint(params, "cas") or 0
                ok = cas > 0 and self._delete_cas(idx, key, cas)
            else:
                self._delete(idx, key)
                ok = True
            self._changed()
        return Answer(200, ok)

    # -- transactions ([TXN]) ----------------------------------------------------------------
    def txn(self, body: bytes) -> Answer:
        try:
            ops = json.loads(body or b"null")
        except ValueError as e:
            raise HTTPError(400, f"Failed to parse body: {e}") from None
        if not isinstance(ops, list):
            raise HTTPError(400, "Failed to parse body: the body must be a JSON array of operations")
        if len(ops) > MAX_TXN_OPS:
            raise HTTPError(413, f"Transaction contains too many operations ({len(ops)} > {MAX_TXN_OPS})")
        parsed = []
        for op in ops:
            if not isinstance(op, dict) or len(op) != 1:
                raise HTTPError(
                    400, "Failed to parse body: each operation has exactly one of KV, Node, Service, Check"
                )
            kind, spec = next(iter(op.items()))
            if kind != "KV" or not isinstance(spec, dict):
                raise HTTPError(400, f"consul emulator: {kind} transaction operations are not implemented")
            raw = spec.get("Value")
            try:
                value = base64.b64decode(raw, validate=True) if raw else b""
            except ValueError:
                raise HTTPError(400, "Failed to parse body: Value is not base64") from None
            parsed.append(TxnOp(str(spec.get("Verb", "")), str(spec.get("Key", "")), value,
                                int(spec.get("Flags") or 0), int(spec.get("Index") or 0),
                                str(spec.get("Session") or "")))  # fmt: skip
        with self.cond:
            saved = ({k: replace(e) for k, e in self.kv.items()}, dict(self.tombstones), self.kv_index)
            idx = self._next()
            results: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            for i, op in enumerate(parsed):
                try:
                    # [TXN] sample response: each result is {"KV": {...}}
                    results.extend({"KV": r} for r in self._txn_kv(idx, op))
                except OpError as e:
                    errors.append({"OpIndex": i, "What": str(e)})
            if errors:
                # [TXN] "If any operation fails, the transaction is rolled back and none of the
                # changes are applied" ... "a status code of 409 will be returned if it was
                # rolled back".
                self.kv, self.tombstones, self.kv_index = saved
                return Answer(409, {"Results": None, "Errors": errors})
            self._changed()
        return Answer(200, {"Results": results, "Errors": None})

    def _txn_kv(self, idx: int, op: TxnOp) -> list[dict[str, Any]]:
        """One KV operation of [TXN]'s table; the messages are [SRC state/txn.go, state/kvs.go]'s."""
        verb, key, value, flags, index, session = op.verb, op.key, op.value, op.flags, op.index, op.session
        if not key and verb not in ("get-tree", "delete-tree"):
            raise OpError("Missing key name")
        if verb == "set":
            return [self._plain_set(idx, key, value, flags).json(False)]
        if verb == "cas":
            entry = self._cas(idx, key, value, flags, index)
            if entry is None:
                raise OpError(f'failed to set key "{key}", index is stale')
            return [entry.json(False)]
        if verb == "lock":
            entry = self._lock(idx, key, value, flags, session)
            if entry is None:
                raise OpError(f'failed to lock key "{key}", lock is already held')
            return [entry.json(False)]
        if verb == "unlock":
            entry = self._unlock(idx, key, value, flags, session)
            if entry is None:
                raise OpError(
                    f'failed to unlock key "{key}", lock isn\'t held, or is held by another session'
                )
            return [entry.json(False)]
        if verb == "get":
            got = self.kv.get(key)
            if got is None:
                raise OpError(f'key "{key}" doesn\'t exist')
            return [got.json()]
        if verb == "get-or-empty":
            got = self.kv.get(key)
            return [got.json()] if got is not None else []
        if verb == "get-tree":
            return [e.json() for e in self._list(key)[1]]
        if verb == "check-index":
            got = self.kv.get(key)
            if got is None:
                raise OpError(f'failed to check index, key "{key}" doesn\'t exist')
            if got.modify_index != index:
                raise OpError(
                    f'failed index check for key "{key}", current modify index {got.modify_index} != {index}'
                )
            return [got.json(False)]
        if verb == "check-session":
            got = self.kv.get(key)
            if got is None:
                raise OpError(f'failed to check session, key "{key}" doesn\'t exist')
            if got.session != session:
                raise OpError(
                    f'failed session check for key "{key}", current session "{got.session}" != "{session}"'
                )
            return [got.json(False)]
        if verb == "check-not-exists":
            if key in self.kv:
                raise OpError(f'key "{key}" exists')
            return []
        if verb == "delete":
            self._delete(idx, key)  # [TXN] "no result entries will be added for verbs that delete keys"
            return []
        if verb == "delete-tree":
            self._delete_tree(idx, key)
            return []
        if verb == "delete-cas":
            if not self._delete_cas(idx, key, index):
                raise OpError(f'failed to delete key "{key}", index is stale')
            return []
        raise OpError(f'unknown KV verb "{verb}"')

    # -- sessions ([SESSION], [SESSIONS]) ------------------------------------------------------
    def session_create(self, body: bytes) -> Answer:
        try:
            spec = json.loads(body) if body.strip() else {}
        except ValueError as e:
            raise HTTPError(400, f"Request decode failed: {e}") from None
        if not isinstance(spec, dict):
            raise HTTPError(400, "Request decode failed: expected a JSON object")
        node = _field(spec, "Node") or NODE
        if node != NODE:
            raise HTTPError(500, "Missing node registration")
        for checks in (_field(spec, "Checks"), _field(spec, "NodeChecks")):
            for check in checks or []:
                if check != "serfHealth":
                    raise HTTPError(500, f"Missing check '{check}' registration")
        if _field(spec, "ServiceChecks"):
            raise HTTPError(500, "consul emulator: service checks are not implemented")
        behavior = _field(spec, "Behavior") or "release"  # [SESSION] Behavior (string: "release")
        if behavior not in ("release", "delete"):
            raise HTTPError(500, f"Invalid Behavior setting '{behavior}'")
        lock_delay = self._lock_delay(_field(spec, "LockDelay", "15s"))
        ttl = str(_field(spec, "TTL") or "")
        ttl_seconds = 0.0
        if ttl:
            try:
                ttl_seconds = parse_go_duration(ttl) / SECOND
            except DurationError as e:
                raise HTTPError(500, f"Session TTL '{ttl}' invalid: {e}") from None
            # [SESSION] TTL "between 10s and 86400s"; 10s is the default session_ttl_min [CONFIG]
            if ttl_seconds != 0 and not (self.session_ttl_min <= ttl_seconds <= SESSION_TTL_MAX):
                raise HTTPError(
                    500,
                    f"Invalid Session TTL '{int(ttl_seconds * SECOND)}', must be between"
                    f" [{format_go_duration(int(self.session_ttl_min * SECOND))}="
                    f"{format_go_duration(int(SESSION_TTL_MAX * SECOND))}]",
                )
        with self.cond:
            idx = self._next()
            session = Session(
                str(uuid.uuid4()),
                str(_field(spec, "Name") or ""),
                lock_delay,
                behavior,
                ttl,
                ttl_seconds,
                idx,
                idx,
            )
            self._reset_timer(session)
            self.sessions[session.id] = session
            self.sessions_index = idx
            self._changed()
        return Answer(200, {"ID": session.id})

    @staticmethod
    def _lock_delay(raw: Any) -> float:
        # [SESSION] LockDelay (string: "15s"); [SRC session_endpoint.go FixupLockDelay]: a
        # string is a Go duration, a number is nanoseconds, and values below 1000 ns are
        # taken as seconds. [SESSIONS]: between 0 and 60 seconds.
        if isinstance(raw, str):
            ns = int(_duration(raw, "lock delay") * SECOND)
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            ns = int(raw)
        else:
            raise HTTPError(400, "Request decode failed: LockDelay must be a duration")
        if ns < 1000:
            ns *= SECOND
        seconds = ns / SECOND
        if seconds > MAX_LOCK_DELAY or seconds < 0:
            raise HTTPError(
                500, f"Lock-delay cannot be more than {format_go_duration(int(MAX_LOCK_DELAY * SECOND))}"
            )
        return seconds

    def _reset_timer(self, session: Session) -> None:
        # [SESSION] TTL: "the session is invalidated if it is not renewed before the TTL
        # expires ... sessions may not be reaped for up to double this TTL". [SESSIONS]: "The
        # contract of a TTL is that it represents a lower bound for invalidation". Consul's
        # servers invalidate after ttl_multiplier (2) times the TTL.
        if session.ttl_seconds > 0:
            session.expires_at = time.monotonic() + session.ttl_seconds * self.ttl_multiplier

    def session_renew(self, sid: str) -> Answer:
        if not sid:
            raise HTTPError(400, "Missing session")
        with self.cond:
            session = self.sessions.get(sid)
            if session is None:
                # [SRC session_endpoint.go SessionRenew]
                raise HTTPError(404, f"Session id '{sid}' not found")
            self._reset_timer(session)  # [SESSIONS] "The TTL is renewed on ... session renew"
            return Answer(200, [session.json()])

    def session_destroy(self, sid: str) -> Answer:
        if not sid:
            raise HTTPError(400, "Missing session")
        with self.cond:
            # [SESSION] Delete Session: "If the session UUID does not exist or already expired,
            # a 200 is still returned (the operation is idempotent)."
            if sid in self.sessions:
                self._invalidate(sid)
        return Answer(200, True)

    def session_info(self, sid: str) -> Answer:
        with self.cond:
            session = self.sessions.get(sid)
            # [SESSION] "If the session does not exist, an empty JSON list [] is returned."
            payload = [session.json()] if session is not None else []
            return Answer(200, payload, {"X-Consul-Index": str(max(1, self.sessions_index))})

    def session_list(self) -> Answer:
        with self.cond:
            return Answer(
                200,
                [s.json() for s in self.sessions.values()],
                {"X-Consul-Index": str(max(1, self.sessions_index))},
            )

    def _invalidate(self, sid: str) -> None:
        """[SESSIONS]: "If the release behavior is being used, any of the locks held in
        association with the session are released, and the ModifyIndex of the key is
        incremented. Alternatively, if the delete behavior is used, the key corresponding to
        any of the held locks is simply deleted." Held locks then wait out the lock-delay."""
        session = self.sessions.pop(sid)
        idx = self._next()
        now = time.monotonic()
        for key, entry in list(self.kv.items()):
            if entry.session != sid:
                continue
            if session.lock_delay > 0:
                self.lock_delays[key] = now + session.lock_delay
            if session.behavior == "delete":
                self._delete(idx, key)
            else:
                self._set(idx, replace(entry, session=""))
        self.sessions_index = idx
        self._changed()

    def expire_due_sessions(self) -> float:
        """Invalidate the sessions whose TTL timer ran out; seconds until the next one."""
        with self.cond:
            if not self.timers_running:
                return 0.5
            now = time.monotonic()
            for sid, s in list(self.sessions.items()):
                if s.expires_at is not None and s.expires_at <= now:
                    self._invalidate(sid)
            upcoming = [s.expires_at for s in self.sessions.values() if s.expires_at is not None]
            return min([0.5] + [t - now for t in upcoming])

    def restart_timers(self) -> None:
        """[SESSIONS]: "The TTL is renewed on session creation, on session renew, and on
        leader failover" (what a restarted single server does)."""
        with self.cond:
            for s in self.sessions.values():
                self._reset_timer(s)
            self.timers_running = True
            self.cond.notify_all()

    # -- services ([AGENT-SERVICE], [CATALOG]) ---------------------------------------------------
    def service_register(self, body: bytes) -> Answer:
        try:
            spec = json.loads(body)
        except ValueError as e:
            raise HTTPError(400, f"Request decode failed: {e}") from None
        if not isinstance(spec, dict):
            raise HTTPError(400, "Request decode failed: expected a JSON object")
        name = _field(spec, "Name")
        if not name:
            raise HTTPError(400, "Missing service name")
        sid = _field(spec, "ID") or name  # [AGENT-SERVICE] ID "defaults to the Name parameter"
        check = _field(spec, "Check")
        with self.cond:
            idx = self._next()
            old = self.services.get(sid)
            self.services[sid] = Service(
                id=sid,
                name=name,
                tags=list(_field(spec, "Tags") or []),
                address=str(_field(spec, "Address") or ""),
                port=int(_field(spec, "Port") or 0),
                meta=dict(_field(spec, "Meta") or {}),
                check=dict(check) if isinstance(check, dict) else None,
                create_index=old.create_index if old else idx,
                modify_index=idx,
            )
            self.catalog_index = idx
            self._changed()
        return Answer(200, b"")

    def service_deregister(self, sid: str) -> Answer:
        with self.cond:
            # [AGENT-SERVICE] Deregister: "If the service does not exist, no action is taken."
            if self.services.pop(sid, None) is not None:
                self.catalog_index = self._next()
                self._changed()
        return Answer(200, b"")

    def agent_services(self) -> Answer:
        with self.cond:
            return Answer(200, {
                s.id: {"ID": s.id, "Service": s.name, "Tags": s.tags, "Meta": s.meta, "Port": s.port,
                       "Address": s.address, "EnableTagOverride": False, "Datacenter": DATACENTER}
                for s in self.services.values()
            })  # fmt: skip

    def catalog_service(self, name: str, params: Mapping[str, list[str]]) -> Answer:
        tag = params.get("tag", [None])[0]
        with self.cond:
            found = [s for s in self.services.values() if s.name == name and (tag is None or tag in s.tags)]
            payload = [
                {"ID": str(uuid.UUID(int=0)), "Node": NODE, "Address": "127.0.0.1", "Datacenter": DATACENTER,
                 "TaggedAddresses": None, "NodeMeta": {}, "ServiceID": s.id, "ServiceName": s.name,
                 "ServiceTags": s.tags, "ServiceAddress": s.address, "ServicePort": s.port,
                 "ServiceMeta": s.meta, "ServiceEnableTagOverride": False,
                 "CreateIndex": s.create_index, "ModifyIndex": s.modify_index}
                for s in sorted(found, key=lambda s: s.id)
            ]  # fmt: skip
            return Answer(200, payload, {"X-Consul-Index": str(max(1, self.catalog_index))})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: ConsulEmulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away mid-request
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self.connections_lock:
            conns, self.connections = list(self.connections), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not emulator.wait_thawed():
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        path = unquote(parts.path)
        try:
            answer = emulator.handle(method, path, params, body, self.headers.get("X-Consul-Token"))
        except HTTPError as e:
            answer = Answer(e.status, e.text.encode())
        except Exception as e:  # a bug in the emulator: say so loudly
            traceback.print_exc()
            answer = Answer(500, f"consul emulator bug: {e!r}".encode())
        payload = answer.payload
        if isinstance(payload, bytes):
            data, ctype = payload, "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(answer.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in answer.headers.items():
            self.send_header(k, v)
        if "X-Consul-Index" in answer.headers:
            self.send_header("X-Consul-KnownLeader", "true")
            self.send_header("X-Consul-LastContact", "0")
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client went away (timed out, or the emulator stopped)
            self.close_connection = True


class ConsulEmulator:
    """A Consul agent stand-in on a loopback port, for tests (see the module docstring).

    ``session_ttl_min`` is the agent option of that name (Consul's default is 10 s; tests
    lower it, as ``consul agent -dev -hcl 'session_ttl_min = "1s"'`` does). ``stop()`` and
    ``start()`` model a Consul restart (data kept, session timers reset), ``freeze()`` and
    ``thaw()`` a hung server that accepts connections and never answers.
    """

    def __init__(
        self,
        *,
        session_ttl_min: float = 10.0,
        ttl_multiplier: float = 2.0,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        acl_token: str | None = None,
    ) -> None:
        self.state = ConsulState(session_ttl_min=session_ttl_min, ttl_multiplier=ttl_multiplier)
        self.host = host
        self.port = port
        self.tls = tls
        self.acl_token = acl_token
        self.requests: Counter[str] = Counter()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._thawed = threading.Event()
        self._thawed.set()
        self._closed = threading.Event()
        self._timer_thread = threading.Thread(target=self._timers, name="consul-emulator-timers", daemon=True)
        self._timer_thread.start()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def endpoints(self) -> tuple[str, ...]:
        return (self.url,)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((self.host, self.port), self)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self.state.restart_timers()
        self._serve_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._serve_thread.start()

    def stop(self) -> None:
        """Stop answering and close every connection; the data and sessions are kept."""
        server, self._server = self._server, None
        if server is None:
            return
        with self.state.cond:
            self.state.timers_running = False
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=5)

    def freeze(self) -> None:
        """Accept connections but answer nothing until :meth:`thaw` (a SIGSTOPped agent)."""
        with self.state.cond:
            self.state.timers_running = False
        self._thawed.clear()

    def thaw(self) -> None:
        with self.state.cond:
            self.state.timers_running = True
        self._thawed.set()

    def wait_thawed(self) -> bool:
        while not self._thawed.wait(0.1):
            if self._closed.is_set() or self._server is None:
                return False
        return not self._closed.is_set()

    def ensure_running(self) -> None:
        self.thaw()
        self.start()

    def close(self) -> None:
        self._closed.set()
        self._thawed.set()
        with self.state.cond:
            self.state.closed = True
            self.state.cond.notify_all()
        self.stop()
        self._timer_thread.join(timeout=5)

    def __enter__(self) -> ConsulEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _timers(self) -> None:
        while not self._closed.is_set():
            delay = self.state.expire_due_sessions()
            self._closed.wait(max(0.01, min(delay, 0.5)))

    # -- test hooks --------------------------------------------------------------------------
    def entry(self, key: str) -> Entry | None:
        with self.state.cond:
            e = self.state.kv.get(key)
            return replace(e) if e is not None else None

    def keys(self, prefix: str = "") -> list[str]:
        with self.state.cond:
            return sorted(k for k in self.state.kv if k.startswith(prefix))

    def session(self, sid: str) -> Session | None:
        with self.state.cond:
            s = self.state.sessions.get(sid)
            return replace(s) if s is not None else None

    def service(self, sid: str) -> Service | None:
        with self.state.cond:
            s = self.state.services.get(sid)
            return replace(s) if s is not None else None

    def expire_session(self, sid: str) -> None:
        """Invalidate a session now, as its TTL running out would."""
        with self.state.cond:
            if sid in self.state.sessions:
                self.state._invalidate(sid)

    # -- routing ([API]: every route is under /v1/) --------------------------------------------
    def handle(
        self, method: str, path: str, params: Mapping[str, list[str]], body: bytes, token: str | None
    ) -> Answer:
        token = token or params.get("token", [None])[0]
        if self.acl_token is not None and token != self.acl_token:
            raise HTTPError(403, "Permission denied")
        st = self.state
        route: tuple[str, Callable[[str], Answer]] | None = None
        for prefix, handlers in (
            ("/v1/kv/", {"GET": lambda k: st.kv_get(k, params), "PUT": lambda k: st.kv_put(k, params, body),
                         "DELETE": lambda k: st.kv_delete(k, params)}),
            ("/v1/session/create", {"PUT": lambda _: st.session_create(body)}),
            ("/v1/session/renew/", {"PUT": st.session_renew}),
            ("/v1/session/destroy/", {"PUT": st.session_destroy}),
            ("/v1/session/info/", {"GET": st.session_info}),
            ("/v1/session/list", {"GET": lambda _: st.session_list()}),
            ("/v1/txn", {"PUT": lambda _: st.txn(body)}),
            ("/v1/agent/service/register", {"PUT": lambda _: st.service_register(body)}),
            ("/v1/agent/service/deregister/", {"PUT": st.service_deregister}),
            ("/v1/agent/services", {"GET": lambda _: st.agent_services()}),
            ("/v1/catalog/service/", {"GET": lambda n: st.catalog_service(n, params)}),
            ("/v1/status/leader", {"GET": lambda _: Answer(200, "127.0.0.1:8300")}),
        ):  # fmt: skip
            exact = not prefix.endswith("/")
            if (exact and path == prefix) or (not exact and path.startswith(prefix)):
                if method not in handlers:
                    raise HTTPError(405, f"method {method} not allowed")
                route = (prefix, handlers[method])
                break
        if route is None:
            raise HTTPError(404, f"consul emulator: no endpoint {method} {path}")
        prefix, handler = route
        self.requests[f"{method} {prefix}"] += 1
        return handler(path[len(prefix) :])


def main() -> None:
    """Run the emulator in the foreground (for trying the plugin by hand)."""
    parser = argparse.ArgumentParser(description="Consul HTTP API emulator for stolon's tests")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--session-ttl-min", type=float, default=10.0)
    args = parser.parse_args()
    emulator = ConsulEmulator(session_ttl_min=args.session_ttl_min, port=args.port)
    emulator.start()
    print(emulator.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.close()


if __name__ == "__main__":
    main()
