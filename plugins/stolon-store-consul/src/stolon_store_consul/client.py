"""Consul's HTTP API, spoken with ``requests``: endpoints, TLS, ACL token, failover, deadlines.

Only the endpoints the store and ``stolonctl register`` use are wrapped: KV get/put/delete
(with ``?cas=``, ``?acquire=``, ``?release=``, ``?recurse``, and blocking ``?index=``), the
``/v1/txn`` transaction endpoint, sessions (create, renew, destroy, info), and the agent
service and catalog endpoints. Each wrapper says which page of Consul's HTTP API reference
it follows.

Failover: a call goes to the endpoint that last answered and moves to the next one when an
endpoint cannot be reached. A request is retried on another endpoint only when that is safe:
it certainly never left this machine (connection refused, connect timeout, TLS handshake
failure) or the operation is idempotent. A non-idempotent write (a create-only or
compare-and-swap transaction) whose outcome is unknown is reported as
:class:`UnreachableError`, so a retry never turns our own successful write into a false
conflict. Every call, failover included, is bounded by the store timeout; a blocking query
gets its ``wait`` (plus Consul's ``wait/16`` jitter) on top.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3

from stolon.model.duration import format_go_duration
from stolon.store.base import StoreConfigError, StoreError, UnreachableError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8500

#: Consul's ``api.LockFlagValue``: the flags of a key used as a lock. Consul's Go client
#: refuses to lock a key with other flags, and libkv (Go Stolon) sets it on every write.
LOCK_FLAG = 0x2DDCCBC058A50C18

#: Go Stolon's test for "this endpoint has a scheme" (internal/store/kvbacked.go).
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+\-.]*)://")

#: Texts of HTTP 500 answers that mean "the servers cannot answer now" rather than "this
#: request is wrong" (Consul reports both as 500 with the error text as the body).
_UNAVAILABLE_MARKERS = (
    "no cluster leader",
    "no path to datacenter",
    "rpc error",
    "timeout",
    "connection refused",
    "eof",
    "leadership lost",
)

ENV_TOKEN = "CONSUL_HTTP_TOKEN"
ENV_TOKEN_FILE = "CONSUL_HTTP_TOKEN_FILE"


class ConsulRequestError(StoreError):
    """Consul answered and refused the request (not a reachability problem)."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def invalid_session(self) -> bool:
        """The session named by the request does not exist (expired or destroyed)."""
        return self.status == 500 and "invalid session" in self.body.lower()


@dataclass(frozen=True)
class TxnError:
    """One failed operation of a rolled back transaction (``Errors`` of ``/v1/txn``)."""

    op_index: int
    what: str


class TxnRolledBack(StoreError):
    """``/v1/txn`` answered 409: an operation failed and nothing was applied."""

    def __init__(self, errors: list[TxnError]) -> None:
        super().__init__("; ".join(f"operation {e.op_index}: {e.what}" for e in errors) or "rolled back")
        self.errors = errors

    def failed(self, op_index: int) -> bool:
        return any(e.op_index == op_index for e in self.errors)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint, normalised."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_endpoints(endpoints: Sequence[str], flag: str = "--store-endpoints") -> list[Endpoint]:
    """Parse endpoints as Go Stolon does: one shared scheme, schemeless means http.

    A missing port is Consul's HTTP port 8500. Anything that is not a bare
    ``scheme://host[:port][/]`` is refused rather than silently trimmed.
    """
    if not endpoints:
        raise StoreConfigError(f"{flag}: no Consul endpoint given")
    parsed: list[Endpoint] = []
    for raw in endpoints:
        text = raw.strip()
        if not text:
            raise StoreConfigError(f"{flag}: empty endpoint in {','.join(endpoints)!r}")
        url = text if _SCHEME_RE.match(text) else f"http://{text}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise StoreConfigError(f"{flag}: cannot parse endpoint {text!r}: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise StoreConfigError(f"{flag}: endpoint {text!r}: the scheme must be http or https")
        if not parts.hostname:
            raise StoreConfigError(f"{flag}: endpoint {text!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise StoreConfigError(
                f"{flag}: endpoint {text!r}: credentials in the URL are not supported"
                f" (give an ACL token with {ENV_TOKEN} or {ENV_TOKEN_FILE})"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise StoreConfigError(f"{flag}: endpoint {text!r}: give scheme://host:port only, no path")
        parsed.append(Endpoint(scheme, parts.hostname, port or DEFAULT_PORT))
    schemes = sorted({e.scheme for e in parsed})
    if len(schemes) > 1:
        raise StoreConfigError(
            f"{flag}: all the endpoints must have the same scheme, got " + " and ".join(schemes)
        )
    return parsed


@dataclass(frozen=True)
class TLSFiles:
    """TLS client settings and the names of the flags that gave them (for error messages)."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    skip_verify: bool = False
    #: ``store`` or ``register``: the flags are ``--<prefix>-cert-file``, ``--<prefix>-key``...
    flag_prefix: str = "store"

    def settings(self, scheme: str) -> tuple[bool | str, tuple[str, str] | None]:
        """``(verify, cert)`` for requests, after checking the files load (as Go does at start)."""
        p = self.flag_prefix
        if scheme != "https":
            if self.cert_file or self.key_file or self.ca_file or self.skip_verify:
                log.warning("--%s TLS options are ignored: the Consul endpoints use http (use https URLs)", p)
            return True, None
        if bool(self.cert_file) != bool(self.key_file):
            raise StoreConfigError(
                f"cannot create {p} tls config: --{p}-cert-file and --{p}-key must be given together"
            )
        for flag, path in (
            (f"--{p}-cert-file", self.cert_file),
            (f"--{p}-key", self.key_file),
            (f"--{p}-ca-file", self.ca_file),
        ):
            if path and not os.access(path, os.R_OK):
                raise StoreConfigError(
                    f"cannot create {p} tls config: {flag} {path!r} does not exist or is not readable"
                )
        ctx = ssl.create_default_context()
        try:
            if self.ca_file:
                ctx.load_verify_locations(cafile=self.ca_file)
            if self.cert_file:
                ctx.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError, ValueError) as e:
            raise StoreConfigError(f"cannot create {p} tls config: {e}") from None
        verify: bool | str = True
        if self.skip_verify:
            verify = False
        elif self.ca_file:
            verify = self.ca_file
        cert = (self.cert_file, self.key_file) if self.cert_file else None
        return verify, cert


def acl_token(env: Mapping[str, str] | None = None) -> str | None:
    """The ACL token from ``CONSUL_HTTP_TOKEN`` or the file ``CONSUL_HTTP_TOKEN_FILE``.

    Go Stolon's Consul client reads ``CONSUL_HTTP_TOKEN`` from the environment the same way.
    The token is sent in the ``X-Consul-Token`` header, never logged.
    """
    env = os.environ if env is None else env
    token = env.get(ENV_TOKEN, "").strip()
    if token:
        return token
    path = env.get(ENV_TOKEN_FILE, "").strip()
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise StoreConfigError(f"{ENV_TOKEN_FILE}: cannot read {path!r}: {e.strerror}") from None
    if not token:
        raise StoreConfigError(f"{ENV_TOKEN_FILE}: {path!r} is empty")
    return token


def format_duration(seconds: float) -> str:
    """A Go duration string, as Consul parses it (``time.ParseDuration``) and libkv writes it
    (``time.Duration.String()``): 10 -> "10s", 2.5 -> "2.5s". At least 1 ms."""
    return format_go_duration(max(1_000_000, round(seconds * 1e9)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class KVEntry:
    """One KV entry as Consul returns it (KV Store API, "Read Key")."""

    key: str
    value: bytes
    flags: int
    create_index: int
    modify_index: int
    lock_index: int
    session: str

    @classmethod
    def from_json(cls, kv: Mapping[str, Any]) -> KVEntry:
        raw = kv.get("Value")
        return cls(
            key=str(kv.get("Key", "")),
            value=base64.b64decode(raw) if raw else b"",
            flags=int(kv.get("Flags") or 0),
            create_index=int(kv.get("CreateIndex") or 0),
            modify_index=int(kv.get("ModifyIndex") or 0),
            lock_index=int(kv.get("LockIndex") or 0),
            session=str(kv.get("Session") or ""),
        )


# -- transaction operations (Transactions API, "KV Operations") ----------------------------


def op_set(key: str, value: bytes, flags: int = LOCK_FLAG) -> dict[str, Any]:
    return {"KV": {"Verb": "set", "Key": key, "Value": b64(value), "Flags": flags}}


def op_cas(key: str, value: bytes, index: int, flags: int = LOCK_FLAG) -> dict[str, Any]:
    """Set if the key's ModifyIndex is ``index``; index 0 means "only if it does not exist"."""
    return {"KV": {"Verb": "cas", "Key": key, "Value": b64(value), "Flags": flags, "Index": index}}


def op_check_session(key: str, session: str) -> dict[str, Any]:
    """Fail unless ``key`` is locked by ``session``."""
    return {"KV": {"Verb": "check-session", "Key": key, "Session": session}}


# -- the client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None

    @property
    def index(self) -> int:
        """``X-Consul-Index`` (0 when absent or unparsable)."""
        try:
            return int(self.headers.get("X-Consul-Index", "0"))
        except ValueError:
            return 0


class _Failure(Exception):
    """One endpoint's failure, with whether the request may have been processed."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


def _maybe_sent(exc: requests.RequestException) -> bool:
    """Whether a failed request may have reached Consul (False only when it certainly didn't)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return True


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer before the timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {exc}"
    reason: Any = exc.args[0] if exc.args else exc
    if isinstance(reason, urllib3.exceptions.MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return "connection refused" if "refused" in str(reason) else f"cannot connect: {reason}"
    return str(reason)


def _text(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


class ConsulClient:
    """A thread-safe client of one Consul datacenter, through one or more agents."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float,
        tls: TLSFiles | None = None,
        token: str | None = None,
        endpoints_flag: str = "--store-endpoints",
        timeout_flag: str = "--store-timeout",
    ) -> None:
        if timeout <= 0:
            raise StoreConfigError(f"{timeout_flag} must be positive")
        self.timeout = timeout
        self.timeout_flag = timeout_flag
        self.endpoints = parse_endpoints(endpoints, endpoints_flag)
        verify, cert = (tls or TLSFiles()).settings(self.endpoints[0].scheme)
        self._session = requests.Session()
        # Only the configuration decides where and how we connect: no HTTP(S)_PROXY, netrc
        # or REQUESTS_CA_BUNDLE from the environment.
        self._session.trust_env = False
        self._session.verify = verify
        self._session.cert = cert
        self._headers = {"X-Consul-Token": token} if token else {}
        self._lock = threading.Lock()
        self._current = 0

    @property
    def current_endpoint(self) -> str:
        """The endpoint the next call goes to first (the one that last answered)."""
        with self._lock:
            return self.endpoints[self._current].url

    def describe(self) -> str:
        return ", ".join(e.url for e in self.endpoints)

    def close(self) -> None:
        self._session.close()

    # -- transport -------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        data: bytes | None = None,
        idempotent: bool,
        accept: tuple[int, ...] = (200,),
        extra_time: float = 0.0,
    ) -> Answer:
        """``method`` ``/v1/<path>`` with failover, within the timeout (+ ``extra_time``)."""
        budget = self.timeout + extra_time
        deadline = time.monotonic() + budget
        with self._lock:
            first = self._current
        count = len(self.endpoints)
        errors: list[str] = []
        for attempt in range(count):
            index = (first + attempt) % count
            endpoint = self.endpoints[index]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append(f"{endpoint.url}: not tried, the timeout ran out")
                continue
            try:
                answer = self._send(
                    index, method, path, params=params, data=data, remaining=remaining, left=count - attempt,
                    accept=accept,
                )  # fmt: skip
            except _Failure as failure:
                errors.append(f"{endpoint.url}: {failure}")
                self._move_past(index)
                if failure.maybe_sent and not idempotent:
                    raise UnreachableError(
                        f"Consul write to {endpoint.url} failed and may or may not have been applied: {failure}"
                    ) from None
                continue
            self._settle_on(index)
            return answer
        raise UnreachableError(
            f"Consul is unreachable at {self.describe()} ({self.timeout_flag} {self.timeout:g}s): "
            + "; ".join(errors)
        )

    def _send(
        self,
        index: int,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]],
        data: bytes | None,
        remaining: float,
        left: int,
        accept: tuple[int, ...],
    ) -> Answer:
        endpoint = self.endpoints[index]
        url = f"{endpoint.url}/v1/{quote(path, safe='/')}"
        # Each endpoint still to try gets an equal share of the time to *connect*; the one
        # that connects gets all the remaining time to answer.
        connect = max(0.05, remaining / left)
        try:
            resp = self._session.request(
                method,
                url,
                params=list(params),
                data=data,
                headers=self._headers,
                timeout=(min(connect, remaining), remaining),
            )
        except requests.RequestException as e:
            raise _Failure(_describe(e), maybe_sent=_maybe_sent(e)) from None
        body = resp.content
        if resp.status_code in accept:
            return Answer(resp.status_code, resp.headers, body)
        text = _text(body)
        if resp.status_code in (429, 502, 503, 504) or (
            resp.status_code == 500 and any(m in text.lower() for m in _UNAVAILABLE_MARKERS)
        ):
            raise _Failure(f"HTTP {resp.status_code}: {text}", maybe_sent=True)
        hint = ""
        if resp.status_code in (401, 403):
            hint = f" (an ACL token with the needed rights goes in {ENV_TOKEN} or {ENV_TOKEN_FILE})"
        raise ConsulRequestError(
            f"Consul refused {method} /v1/{path} (HTTP {resp.status_code}): {text}{hint}",
            resp.status_code,
            text,
        )

    def _move_past(self, index: int) -> None:
        with self._lock:
            if self._current == index and len(self.endpoints) > 1:
                self._current = (index + 1) % len(self.endpoints)
                log.warning(
                    "Consul endpoint %s failed; trying %s next",
                    self.endpoints[index].url,
                    self.endpoints[self._current].url,
                )

    def _settle_on(self, index: int) -> None:
        with self._lock:
            self._current = index

    # -- KV (KV Store API) -------------------------------------------------------------------
    def kv_get(
        self, key: str, *, recurse: bool = False, index: int | None = None, wait: float | None = None
    ) -> tuple[int, list[KVEntry]]:
        """Entries at ``key`` (or under it with ``recurse``) and ``X-Consul-Index``.

        A missing key is an empty list (Consul answers 404). With ``index``, this is a
        blocking query that returns once the index is past ``index`` or ``wait`` ran out.
        """
        params: list[tuple[str, str]] = []
        if recurse:
            params.append(("recurse", ""))
        extra = 0.0
        if index is not None:
            w = 300.0 if wait is None else wait
            params += [("index", str(index)), ("wait", format_duration(w))]
            extra = w + w / 16
        answer = self.call(
            "GET", f"kv/{key}", params=params, idempotent=True, accept=(200, 404), extra_time=extra
        )
        if answer.status == 404:
            return answer.index, []
        return answer.index, [KVEntry.from_json(kv) for kv in answer.json() or []]

    def kv_put(
        self,
        key: str,
        value: bytes,
        *,
        flags: int = LOCK_FLAG,
        acquire: str | None = None,
        release: str | None = None,
    ) -> bool:
        """PUT a key: plain, ``?acquire=<session>`` or ``?release=<session>``; Consul's answer.

        Acquiring a lock the same session holds again is allowed (it updates the value), so
        every form is safe to retry.
        """
        params = [("flags", str(flags))]
        if acquire is not None:
            params.append(("acquire", acquire))
        if release is not None:
            params.append(("release", release))
        answer = self.call("PUT", f"kv/{key}", params=params, data=value, idempotent=True)
        return answer.json() is True

    def kv_delete(self, key: str, *, recurse: bool = False) -> None:
        self.call("DELETE", f"kv/{key}", params=[("recurse", "")] if recurse else [], idempotent=True)

    def txn(self, ops: list[dict[str, Any]], *, idempotent: bool = False) -> list[KVEntry]:
        """Apply ``ops`` atomically (Transactions API); the KV results, or TxnRolledBack."""
        answer = self.call(
            "PUT", "txn", data=json.dumps(ops).encode(), idempotent=idempotent, accept=(200, 409)
        )
        body = answer.json() or {}
        if answer.status == 409:
            raise TxnRolledBack(
                [
                    TxnError(int(e.get("OpIndex", -1)), str(e.get("What", "")))
                    for e in body.get("Errors") or []
                ]
            )
        return [KVEntry.from_json(r["KV"]) for r in body.get("Results") or [] if r.get("KV")]

    # -- sessions (Session API) --------------------------------------------------------------
    def session_create(self, *, ttl: float, behavior: str, lock_delay: float, name: str) -> str:
        """A new session of the agent's node (default checks: the node's ``serfHealth``).

        A retried create may leave an unused session behind; its TTL ends it.
        """
        body = {
            "Name": name,
            "Behavior": behavior,
            "TTL": format_duration(ttl),
            "LockDelay": format_duration(lock_delay),
        }
        answer = self.call("PUT", "session/create", data=json.dumps(body).encode(), idempotent=True)
        return str(answer.json()["ID"])

    def session_renew(self, session: str) -> bool:
        """Renew a TTL session; False when it no longer exists (Consul answers 404)."""
        answer = self.call("PUT", f"session/renew/{session}", idempotent=True, accept=(200, 404))
        return answer.status == 200

    def session_destroy(self, session: str) -> None:
        """Invalidate a session (its locks are released or deleted); a gone one is no error."""
        self.call("PUT", f"session/destroy/{session}", idempotent=True)

    def session_info(self, session: str) -> dict[str, Any] | None:
        answer = self.call("GET", f"session/info/{session}", idempotent=True)
        found = answer.json() or []
        return dict(found[0]) if found else None

    # -- services (Agent Service API, Catalog API) -------------------------------------------
    def agent_service_register(self, service: dict[str, Any]) -> None:
        self.call("PUT", "agent/service/register", data=json.dumps(service).encode(), idempotent=True)

    def agent_service_deregister(self, service_id: str) -> None:
        self.call("PUT", f"agent/service/deregister/{service_id}", idempotent=True)

    def catalog_service(self, name: str) -> list[dict[str, Any]]:
        """Every instance of service ``name`` in the catalog (``/v1/catalog/service/:name``)."""
        answer = self.call("GET", f"catalog/service/{name}", idempotent=True)
        return [dict(s) for s in answer.json() or []]
