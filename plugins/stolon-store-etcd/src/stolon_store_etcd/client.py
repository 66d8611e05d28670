"""The etcd v3 API over its JSON gateway: endpoints, TLS, failover and deadlines.

The requests are built here (transactions with several compares and reads in the failure
branch, byte-exact UTF-8 keys, a deadline per call, and knowing whether a failed request
may have reached the server) and sent on one urllib3 connection pool per endpoint; the
watches (:mod:`stolon_store_etcd.watch`) stream through a requests session with the same
TLS settings.

Failover: the client sends each call to the endpoint that last answered, and moves to the
next one when an endpoint can't be reached. A request is retried on another endpoint only
when that is safe: either it never left this machine (connection refused, connect
timeout, TLS handshake failure) or the operation is idempotent. A non-idempotent write
(create-only or compare-and-swap) whose outcome is unknown is reported as
:class:`UnreachableError` instead, so a retry can never turn our own successful write into
a false conflict.

Every call, failover included, is bounded by ``StoreConfig.timeout``.
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from stolon.store.base import StoreConfig, StoreConfigError, StoreError, UnreachableError

log = logging.getLogger(__name__)

DEFAULT_PORT = 2379
#: The gateway path of etcd >= 3.4 (3.3 served /v3beta/ and is end of life).
API_PATH = "/v3/"

#: Go Stolon's test for "this endpoint has a scheme" (internal/store/kvbacked.go).
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+\-.]*)://")

_JSON_HEADERS = {"Content-Type": "application/json"}

#: gRPC status codes the gateway reports in error bodies.
GRPC_NOT_FOUND = 5


class EtcdRequestError(StoreError):
    """etcd answered and refused the request (an error that is not about reachability)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def lease_not_found(self) -> bool:
        return self.code == GRPC_NOT_FOUND and "lease not found" in str(self)


@dataclass(frozen=True)
class Endpoint:
    """One ``--store-endpoints`` entry, normalised."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_endpoints(endpoints: Sequence[str]) -> list[Endpoint]:
    """Parse endpoints as Go Stolon does: one shared scheme, schemeless means http.

    Go Stolon passes ``host:port`` to the etcd client; a missing port is taken here as
    etcd's client port 2379. Anything that is not a bare ``scheme://host[:port][/]`` is
    refused rather than silently trimmed.
    """
    if not endpoints:
        raise StoreConfigError("--store-endpoints: no etcd endpoint given")
    parsed: list[Endpoint] = []
    for raw in endpoints:
        text = raw.strip()
        if not text:
            raise StoreConfigError(f"--store-endpoints: empty endpoint in {','.join(endpoints)!r}")
        url = text if _SCHEME_RE.match(text) else f"http://{text}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise StoreConfigError(f"--store-endpoints: cannot parse endpoint {text!r}: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise StoreConfigError(f"--store-endpoints: endpoint {text!r}: the scheme must be http or https")
        if not parts.hostname:
            raise StoreConfigError(f"--store-endpoints: endpoint {text!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise StoreConfigError(
                f"--store-endpoints: endpoint {text!r}: credentials in the URL are not supported"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise StoreConfigError(
                f"--store-endpoints: endpoint {text!r}: give scheme://host:port only, no path"
            )
        parsed.append(Endpoint(scheme, parts.hostname, port or DEFAULT_PORT))
    schemes = sorted({e.scheme for e in parsed})
    if len(schemes) > 1:
        raise StoreConfigError(
            "--store-endpoints: all the endpoints must have the same scheme, got " + " and ".join(schemes)
        )
    return parsed


def _tls_settings(
    config: StoreConfig, scheme: str
) -> tuple[bool | str, tuple[str, str] | None, ssl.SSLContext | None]:
    """``(verify, cert)`` for requests (the watches' session) and the same settings as an
    SSL context (the calls' connection pools), after checking the files load (as Go does
    at start)."""
    tls_files = (config.cert_file, config.key_file, config.ca_file)
    if scheme != "https":
        if any(tls_files) or config.skip_tls_verify:
            log.warning("store TLS options are ignored: the etcd endpoints use http (use https URLs)")
        return True, None, None
    if bool(config.cert_file) != bool(config.key_file):
        raise StoreConfigError(
            "cannot create store tls config: --store-cert-file and --store-key must be given together"
        )
    for flag, path in (
        ("--store-cert-file", config.cert_file),
        ("--store-key", config.key_file),
        ("--store-ca-file", config.ca_file),
    ):
        if path and not os.access(path, os.R_OK):
            raise StoreConfigError(
                f"cannot create store tls config: {flag} {path!r} does not exist or is not readable"
            )
    ctx = ssl.create_default_context()
    try:
        if config.ca_file:
            ctx.load_verify_locations(cafile=config.ca_file)
        if config.cert_file:
            ctx.load_cert_chain(config.cert_file, config.key_file)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise StoreConfigError(f"cannot create store tls config: {e}") from None
    verify: bool | str = True
    if config.skip_tls_verify:
        verify = False
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif config.ca_file:
        verify = config.ca_file
    cert = (config.cert_file, config.key_file) if config.cert_file else None
    return verify, cert, ctx


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def unb64(data: str) -> bytes:
    return base64.b64decode(data)


def prefix_range_end(prefix: str) -> str:
    """The ``range_end`` covering every key starting with ``prefix`` (base64), as etcd's
    ``clientv3.GetPrefixRangeEnd``: increment the last byte below 0xff, drop the rest."""
    raw = bytearray(prefix.encode())
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            raw[i] += 1
            return b64(bytes(raw[: i + 1]))
    return b64(b"\0")  # every byte is 0xff: to the end of the keyspace


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        # proto3 JSON omits zero values; int64 fields come as strings
        return cls(
            key=unb64(kv["key"]).decode(errors="replace"),
            value=unb64(kv.get("value", "")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    #: The ``kvs`` of each range operation of the branch that ran, in order (``None`` for
    #: operations that are not ranges).
    ranges: list[list[KeyValue] | None]


# -- request bodies ------------------------------------------------------------------------


def cmp_create_revision(key: str, revision: int) -> dict[str, Any]:
    return {
        "key": b64(key),
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": str(revision),
    }


def cmp_mod_revision(key: str, revision: int) -> dict[str, Any]:
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def op_put(key: str, value: bytes, lease: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def range_body(key: str, *, prefix: bool = False, first_created: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(key)}
    if prefix:
        body["range_end"] = prefix_range_end(key)
    if first_created:  # clientv3.WithFirstCreate()
        body.update(sort_target="CREATE", sort_order="ASCEND", limit="1")
    return body


def op_range(key: str, *, prefix: bool = False, first_created: bool = False) -> dict[str, Any]:
    return {"request_range": range_body(key, prefix=prefix, first_created=first_created)}


# -- the client ----------------------------------------------------------------------------


class _Failure(Exception):
    """One endpoint's failure, with whether the request may have been processed."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


def _pool_failure(exc: urllib3.exceptions.HTTPError) -> _Failure:
    """A failed call on a connection pool (no retries: the error as it happened), with
    whether the request may have reached etcd (False only when it certainly didn't)."""
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        text = str(exc)
        what = "connection refused" if "refused" in text else f"cannot connect: {text}"
        return _Failure(what, maybe_sent=False)
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return _Failure("connect timeout", maybe_sent=False)
    if isinstance(exc, urllib3.exceptions.SSLError):
        return _Failure(f"TLS error: {exc}", maybe_sent=False)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return _Failure("no answer before the store timeout", maybe_sent=True)
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    return _Failure(str(reason), maybe_sent=True)


class EtcdClient:
    """A thread-safe etcd v3 client over several endpoints of one etcd cluster."""

    def __init__(self, config: StoreConfig) -> None:
        self.timeout = config.timeout
        if self.timeout <= 0:
            raise StoreConfigError("--store-timeout must be positive")
        self.endpoints = parse_endpoints(config.endpoints)
        verify, cert, ctx = _tls_settings(config, self.endpoints[0].scheme)
        # The calls go through urllib3 connection pools directly: through requests they
        # cost about twice the CPU (request preparation, settings merging, hooks), which
        # was most of an idle sentinel's on etcd. The watches keep the requests session.
        self._pools: list[urllib3.HTTPConnectionPool] = [
            urllib3.HTTPSConnectionPool(e.host, e.port, maxsize=4, ssl_context=ctx)
            if e.scheme == "https"
            else urllib3.HTTPConnectionPool(e.host, e.port, maxsize=4)
            for e in self.endpoints
        ]
        self._session = requests.Session()
        # Only StoreConfig decides where and how we connect: no HTTP(S)_PROXY, netrc or
        # REQUESTS_CA_BUNDLE from the environment (grpc-go honours none of them either).
        self._session.trust_env = False
        self._session.verify = verify
        self._session.cert = cert
        self._lock = threading.Lock()
        self._current = 0

    @property
    def current_endpoint(self) -> str:
        """The endpoint the next call goes to first (the one that last answered)."""
        with self._lock:
            return self.endpoints[self._current].url

    def describe(self) -> str:
        return ", ".join(e.url for e in self.endpoints)

    @property
    def session(self) -> requests.Session:
        """The HTTP session (TLS settings) shared by every request, watches included."""
        return self._session

    def endpoint_order(self) -> list[Endpoint]:
        """The endpoints to try, the one that last answered first."""
        with self._lock:
            first = self._current
        return [self.endpoints[(first + i) % len(self.endpoints)] for i in range(len(self.endpoints))]

    def close(self) -> None:
        for pool in self._pools:
            pool.close()
        self._session.close()

    # -- transport -------------------------------------------------------------------------
    def call(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<path>`` with failover, within the store timeout."""
        deadline = time.monotonic() + self.timeout
        with self._lock:
            first = self._current
        count = len(self._pools)
        errors: list[str] = []
        for attempt in range(count):
            index = (first + attempt) % count
            endpoint = self.endpoints[index]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append(f"{endpoint.url}: not tried, the store timeout ran out")
                continue
            try:
                answer = self._post(index, path, body, remaining, count - attempt)
            except _Failure as failure:
                errors.append(f"{endpoint.url}: {failure}")
                self._move_past(index)
                if failure.maybe_sent and not idempotent:
                    raise UnreachableError(
                        f"etcd write to {endpoint.url} failed and may or may not have been applied: {failure}"
                    ) from None
                continue
            self._settle_on(index)
            return answer
        raise UnreachableError(
            f"etcd is unreachable at {self.describe()} (--store-timeout"
            f" {self.timeout:g}s): {'; '.join(errors)}"
        )

    def _post(
        self, index: int, path: str, body: dict[str, Any], remaining: float, left: int
    ) -> dict[str, Any]:
        # Connecting to a live member takes milliseconds: give each endpoint still to try
        # an equal share of the time for that, and the whole remaining time to answer.
        connect_timeout = max(remaining / left, 0.001)
        try:
            resp = self._pools[index].urlopen(
                "POST",
                API_PATH + path,
                body=json.dumps(body).encode(),
                headers=_JSON_HEADERS,
                timeout=urllib3.Timeout(connect=connect_timeout, read=remaining),
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise _pool_failure(e) from None
        try:
            answer = json.loads(resp.data)
        except ValueError:
            answer = None
        status = resp.status
        if status == 200 and isinstance(answer, dict):
            error = answer.get("error")
            if isinstance(error, dict):  # a streaming endpoint reports errors in the body
                raise self._refusal(error, status)
            return answer
        if status >= 500 or status == 429:
            detail = answer.get("message") if isinstance(answer, dict) else resp.reason
            raise _Failure(f"HTTP {status}: {detail}", maybe_sent=True)
        if not isinstance(answer, dict):
            raise _Failure(
                f"HTTP {status} {resp.reason}: not the etcd v3 JSON API at"
                f" {API_PATH} (etcd >= 3.4 is required)",
                maybe_sent=True,
            )
        raise self._refusal(answer, status)

    @staticmethod
    def _refusal(error: dict[str, Any], status: int) -> EtcdRequestError:
        message = error.get("message") or error.get("error") or f"HTTP {status}"
        code = error.get("code")
        return EtcdRequestError(f"etcd refused the request: {message}", int(code) if code else None)

    def _move_past(self, index: int) -> None:
        with self._lock:
            if self._current == index and len(self.endpoints) > 1:
                self._current = (index + 1) % len(self.endpoints)
                log.warning(
                    "etcd endpoint %s failed; trying %s next",
                    self.endpoints[index].url,
                    self.endpoints[self._current].url,
                )

    def _settle_on(self, index: int) -> None:
        with self._lock:
            self._current = index

    # -- KV ----------------------------------------------------------------------------------
    def range(self, key: str, *, prefix: bool = False, first_created: bool = False) -> list[KeyValue]:
        answer = self.call(
            "kv/range", range_body(key, prefix=prefix, first_created=first_created), idempotent=True
        )
        return [KeyValue.from_json(kv) for kv in answer.get("kvs", [])]

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Unconditional put; returns the new revision (the key's mod revision)."""
        answer = self.call("kv/put", op_put(key, value, lease)["request_put"], idempotent=True)
        return int(answer["header"]["revision"])

    def delete(self, key: str) -> None:
        self.call("kv/deleterange", {"key": b64(key)}, idempotent=True)

    def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]],
        *,
        idempotent: bool = False,
    ) -> TxnResult:
        answer = self.call(
            "kv/txn",
            {"compare": compare, "success": success, "failure": failure},
            idempotent=idempotent,
        )
        ranges: list[list[KeyValue] | None] = []
        for response in answer.get("responses", []):
            got = response.get("response_range")
            if got is None:
                ranges.append(None)
            else:
                ranges.append([KeyValue.from_json(kv) for kv in got.get("kvs", [])])
        return TxnResult(
            succeeded=bool(answer.get("succeeded", False)),
            revision=int(answer["header"]["revision"]),
            ranges=ranges,
        )

    # -- leases ------------------------------------------------------------------------------
    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds (etcd raises it to its minimum TTL if lower).

        A retried grant may leave an unused lease behind; it expires on its own.
        """
        answer = self.call("lease/grant", {"TTL": str(ttl), "ID": "0"}, idempotent=True)
        return int(answer["ID"])

    def keepalive(self, lease: int) -> int:
        """Refresh ``lease``; returns its TTL, or 0 when the lease no longer exists."""
        answer = self.call("lease/keepalive", {"ID": str(lease)}, idempotent=True)
        return int(answer.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        """Revoke ``lease`` and delete its keys; a lease already gone is not an error."""
        try:
            self.call("lease/revoke", {"ID": str(lease)}, idempotent=True)
        except EtcdRequestError as e:
            if not e.lease_not_found:
                raise
