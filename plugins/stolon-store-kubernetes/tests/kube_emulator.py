"""An HTTP emulator that stands in for a Kubernetes API server in the tests.

No Kubernetes API server can run on the test machines, and the one third-party mock server
evaluated (PyPI ``kmock`` 0.8) tracks no ``resourceVersion`` (so no 409 on a stale write),
filters no label selectors and merges on PUT; those are the semantics this store rests on.
So this module implements, from the public API reference, exactly what the store uses:

- ConfigMaps, Pods (``/api/v1``) and Leases (``/apis/coordination.k8s.io/v1``) in
  namespaces: get, list, create, update (PUT), patch, delete, watch;
- ``resourceVersion`` from one counter, bumped by every write that changes an object;
  a write carrying a different one fails with 409 Conflict (API concepts, "Resource
  versions" and "Concurrency control and consistency");
- JSON merge patch (RFC 7386), where a ``metadata.resourceVersion`` in the patch is a
  precondition (kubernetes/kubernetes#63104, PR #63146);
- label selectors, equality- and set-based (Concepts, "Labels and Selectors"), and the
  ``metadata.name`` / ``metadata.namespace`` field selectors ("Field Selectors");
- watches: ``?watch=1`` with ``resourceVersion`` (events after it; none given: the
  current objects as ADDED first), ``timeoutSeconds``, selectors (an object leaving a
  selector is DELETED for that watch, one entering it ADDED), 410 Gone as an ERROR event
  when the version is older than the retained history (API concepts, "Efficient detection
  of changes");
- errors as ``Status`` objects with Kubernetes' reasons (Common definitions, "Status");
- validation the store can meet: names are DNS subdomains, label values, and 256 KiB
  for all annotations of one object together ("Annotations"; apimachinery's
  ``TotalAnnotationSizeLimitB``);
- optional RBAC: with ``rules`` (a Role's rules), any other request is 403 Forbidden
  (Reference, "Using RBAC Authorization").

Not implemented (the plugin's README lists them): strategic-merge, JSON and apply patches
(415), pagination (``limit``/``continue`` are ignored), bookmarks, other resources,
cluster-scoped paths, authentication, admission, defaulting of fields, graceful deletion.

Runs in a thread of the test process (``start``/``stop`` keep the objects and the port, so
a test can take the API server away and bring it back).
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = dict[str, Any]

#: (group, version, plural) -> Kind, for the resources served.
RESOURCES: dict[tuple[str, str, str], str] = {
    ("", "v1", "configmaps"): "ConfigMap",
    ("", "v1", "pods"): "Pod",
    ("coordination.k8s.io", "v1", "leases"): "Lease",
}
ANNOTATIONS_LIMIT = 256 * 1024
HISTORY = 5000

_PATH = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<group>[^/]+)/(?P<gv>[^/]+))/namespaces/(?P<ns>[^/]+)/(?P<res>[^/]+)(?:/(?P<name>[^/]+))?/?$"
)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


# -- selectors --------------------------------------------------------------------------------
def parse_label_selector(text: str) -> list[tuple[str, str, set[str]]]:
    """Requirements ``(key, op, values)``; op is ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``.

    Grammar from "Labels and Selectors": comma-separated requirements; ``a=b``, ``a==b``,
    ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``.
    """
    reqs: list[tuple[str, str, set[str]]] = []
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for raw in (p.strip() for p in parts):
        if not raw:
            continue
        m = re.match(r"^([^\s!=]+)\s+(in|notin)\s*\((.*)\)$", raw)
        if m:
            reqs.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}))
        elif "!=" in raw:
            k, v = raw.split("!=", 1)
            reqs.append((k.strip(), "!=", {v.strip()}))
        elif "==" in raw or "=" in raw:
            k, v = raw.split("==", 1) if "==" in raw else raw.split("=", 1)
            reqs.append((k.strip(), "=", {v.strip()}))
        elif raw.startswith("!"):
            reqs.append((raw[1:].strip(), "!", set()))
        elif re.match(r"^[A-Za-z0-9_./-]+$", raw):
            reqs.append((raw, "exists", set()))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {raw!r}")
    return reqs


def label_match(reqs: list[tuple[str, str, set[str]]], labels: dict[str, str]) -> bool:
    for key, op, values in reqs:
        present, value = key in labels, labels.get(key)
        ok = {
            "=": present and value in values,
            "!=": not present or value not in values,
            "in": present and value in values,
            "notin": not present or value not in values,
            "exists": present,
            "!": not present,
        }[op]
        if not ok:
            return False
    return True


def parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    """``metadata.name`` and ``metadata.namespace`` with ``=``, ``==``, ``!=`` ("Field Selectors")."""
    out = []
    for raw in (p.strip() for p in text.split(",")):
        if not raw:
            continue
        neg = "!=" in raw
        k, v = raw.split("!=" if neg else ("==" if "==" in raw else "="), 1)
        if k.strip() not in ("metadata.name", "metadata.namespace"):
            raise ApiError(400, "BadRequest", f'field label not supported: "{k.strip()}"')
        out.append((k.strip(), neg, v.strip()))
    return out


def field_match(reqs: list[tuple[str, bool, str]], obj: JSON) -> bool:
    meta = obj.get("metadata") or {}
    for key, neg, value in reqs:
        actual = meta.get(key.split(".", 1)[1], "")
        if (actual == value) == neg:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- the server -----------------------------------------------------------------------------------
class KubeEmulator:
    """In-memory objects served over HTTP on 127.0.0.1 (see the module docstring)."""

    def __init__(self, rules: list[JSON] | None = None, port: int = 0, history: int = HISTORY) -> None:
        self.rules = rules
        self._cond = threading.Condition()
        self._rv = 100
        self._objects: dict[tuple[str, str, str], JSON] = {}  # (plural, ns, name) -> object
        #: (rv, plural, type, object, previous object or None)
        self._events: deque[tuple[int, str, str, JSON, JSON | None]] = deque(maxlen=history)
        #: every request as (verb, apiGroup, resource, namespace, name); for RBAC checks
        self.requests: list[tuple[str, str, str, str, str]] = []
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._generation = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        if self._server is not None:
            return
        emulator = self

        class Handler(_Handler):
            owner = emulator

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (objects and port are kept): listening socket and open connections close."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._cond:
            self._generation += 1
            conns = list(self._conns)
            self._cond.notify_all()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(10)

    close = stop

    @property
    def running(self) -> bool:
        return self._server is not None

    def kubeconfig(self, namespace: str = "default") -> str:
        """A kubeconfig (YAML is a superset of JSON) pointing at this server."""
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                "users": [{"name": "stolon", "user": {"token": "emulator-token"}}],
                "contexts": [
                    {
                        "name": "emulator",
                        "context": {"cluster": "emulator", "user": "stolon", "namespace": namespace},
                    }
                ],
                "current-context": "emulator",
            }
        )

    # -- direct access for tests ----------------------------------------------------------------
    def put_object(self, plural: str, namespace: str, obj: JSON) -> JSON:
        """Create or replace an object directly (as a controller or ``kubectl apply`` would)."""
        with self._cond:
            name = obj["metadata"]["name"]
            existing = self._objects.get((plural, namespace, name))
            body = copy.deepcopy(obj)
            body.setdefault("metadata", {}).pop("resourceVersion", None)
            if existing is None:
                return self._create(plural, namespace, body)
            return self._store(plural, namespace, body, existing, "MODIFIED")

    def get_object(self, plural: str, namespace: str, name: str) -> JSON | None:
        with self._cond:
            obj = self._objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def delete_object(self, plural: str, namespace: str, name: str) -> None:
        with self._cond:
            if (plural, namespace, name) in self._objects:
                self._delete(plural, namespace, name)

    # -- semantics --------------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, plural: str, kind: str, obj: JSON, prev: JSON | None = None) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self._events.append((rv, plural, kind, copy.deepcopy(obj), copy.deepcopy(prev)))
        self._cond.notify_all()

    def _validate(self, plural: str, obj: JSON) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        if not name or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise ApiError(
                422,
                "Invalid",
                f'{RESOURCE_KIND[plural]} "{name}" is invalid: metadata.name: Invalid value: "{name}"',
            )
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                raise ApiError(422, "Invalid", f"metadata.labels: Invalid value: {value!r} (label {key})")
        ann = meta.get("annotations") or {}
        if any(not isinstance(v, str) for v in ann.values()):
            raise ApiError(400, "BadRequest", "metadata.annotations: values must be strings")
        size = sum(len(k) + len(v) for k, v in ann.items())
        if size > ANNOTATIONS_LIMIT:
            raise ApiError(
                422,
                "Invalid",
                f'{RESOURCE_KIND[plural]} "{name}" is invalid: metadata.annotations: Too long: must have at most'
                f" {ANNOTATIONS_LIMIT} bytes",
            )

    def _create(self, plural: str, namespace: str, body: JSON) -> JSON:
        meta = body.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        self._validate(plural, body)
        name = meta["name"]
        if (plural, namespace, name) in self._objects:
            raise ApiError(
                409, "AlreadyExists", f'{plural} "{name}" already exists', {"name": name, "kind": plural}
            )
        meta.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resourceVersion=self._next_rv(),
        )
        group, version = RESOURCE_GV[plural]
        body["apiVersion"] = f"{group}/{version}" if group else version
        body["kind"] = RESOURCE_KIND[plural]
        self._objects[(plural, namespace, name)] = body
        self._emit(plural, "ADDED", body)
        return copy.deepcopy(body)

    def _store(self, plural: str, namespace: str, new: JSON, old: JSON, kind: str) -> JSON:
        """Write ``new`` over ``old``: system metadata kept; no new version if nothing changed."""
        meta = new.setdefault("metadata", {})
        for field in ("name", "namespace", "uid", "creationTimestamp"):
            meta[field] = old["metadata"][field]
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        self._validate(plural, new)
        if new == old:  # a no-op write: the API server does not bump resourceVersion
            return copy.deepcopy(old)
        meta["resourceVersion"] = self._next_rv()
        self._objects[(plural, namespace, meta["name"])] = new
        self._emit(plural, kind, new, old)
        return copy.deepcopy(new)

    def _delete(self, plural: str, namespace: str, name: str) -> JSON:
        obj = self._objects.pop((plural, namespace, name))
        prev = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit(plural, "DELETED", obj, prev)
        return copy.deepcopy(obj)

    def _existing(self, plural: str, namespace: str, name: str) -> JSON:
        obj = self._objects.get((plural, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})
        return obj

    @staticmethod
    def _conflict(plural: str, name: str) -> ApiError:
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; please apply'
            " your changes to the latest version and try again",
            {"name": name, "kind": plural},
        )

    def handle(
        self,
        method: str,
        plural: str,
        *,
        namespace: str,
        name: str,
        query: dict[str, str],
        body: Any,
        content_type: str,
    ) -> tuple[int, JSON]:
        with self._cond:
            if method == "GET" and name:
                return 200, copy.deepcopy(self._existing(plural, namespace, name))
            if method == "GET":
                labels = parse_label_selector(query.get("labelSelector", ""))
                fields = parse_field_selector(query.get("fieldSelector", ""))
                items = [
                    copy.deepcopy(obj)
                    for (p, ns, _), obj in sorted(self._objects.items())
                    if p == plural and ns == namespace and _selected(obj, labels, fields)
                ]
                group, version = RESOURCE_GV[plural]
                return 200, {
                    "kind": f"{RESOURCE_KIND[plural]}List",
                    "apiVersion": f"{group}/{version}" if group else version,
                    "metadata": {"resourceVersion": str(self._rv)},
                    "items": items,
                }
            if not isinstance(body, dict) and method in ("POST", "PUT", "PATCH"):
                raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
            if method == "POST":
                return 201, self._create(plural, namespace, copy.deepcopy(body))
            if method == "PUT":
                old = self._existing(plural, namespace, name)
                if (body.get("metadata") or {}).get("name") != name:
                    raise ApiError(
                        400, "BadRequest", "the name of the object does not match the name on the URL"
                    )
                want = (body.get("metadata") or {}).get("resourceVersion")
                if want and want != old["metadata"]["resourceVersion"]:
                    raise self._conflict(plural, name)
                return 200, self._store(plural, namespace, copy.deepcopy(body), old, "MODIFIED")
            if method == "PATCH":
                if content_type != "application/merge-patch+json":
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        f"the emulator supports merge patches only, not {content_type}",
                    )
                old = self._existing(plural, namespace, name)
                want = (body.get("metadata") or {}).get("resourceVersion")
                if want and want != old["metadata"]["resourceVersion"]:
                    raise self._conflict(plural, name)
                return 200, self._store(plural, namespace, merge_patch(old, body), old, "MODIFIED")
            if method == "DELETE" and name:
                self._existing(plural, namespace, name)
                return 200, self._delete(plural, namespace, name)
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"the server does not allow this method on the requested resource ({method})",
            )

    def watch(self, plural: str, namespace: str, query: dict[str, str]) -> Iterator[JSON]:
        """Events for one watch request, until ``timeoutSeconds`` or :meth:`stop`; a bad
        request raises :class:`ApiError` here, before anything is streamed."""
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        timeout = float(query.get("timeoutSeconds") or 1800)
        since = query.get("resourceVersion", "")
        initial: list[JSON] = []
        with self._cond:
            generation = self._generation
            if since in ("", "0"):
                for (p, ns, _), obj in sorted(self._objects.items()):
                    if p == plural and ns == namespace and _selected(obj, labels, fields):
                        initial.append({"type": "ADDED", "object": copy.deepcopy(obj)})
                position = self._rv
            else:
                try:
                    position = int(since)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}") from None
                oldest = self._events[0][0] if self._events else self._rv + 1
                if position < oldest - 1 and len(self._events) == self._events.maxlen:
                    expired = ApiError(410, "Expired", f"too old resource version: {position} ({oldest - 1})")
                    initial.append({"type": "ERROR", "object": expired.status()})
                    position = -1
        return self._follow(
            plural,
            namespace,
            labels=labels,
            fields=fields,
            initial=initial,
            position=position,
            generation=generation,
            deadline=time.monotonic() + timeout,
        )

    def _follow(
        self,
        plural: str,
        namespace: str,
        *,
        labels: list[tuple[str, str, set[str]]],
        fields: list[tuple[str, bool, str]],
        initial: list[JSON],
        position: int,
        generation: int,
        deadline: float,
    ) -> Iterator[JSON]:
        yield from initial
        if position < 0:
            return
        while True:
            with self._cond:
                while True:
                    if self._generation != generation:
                        return
                    pending = [e for e in self._events if e[0] > position and e[1] == plural]
                    if pending:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._cond.wait(min(left, 0.5))
            for rv, _, etype, obj, prev in pending:
                position = max(position, rv)
                if (obj.get("metadata") or {}).get("namespace") != namespace:
                    continue
                now = _selected(obj, labels, fields)
                before = prev is not None and _selected(prev, labels, fields)
                if etype == "MODIFIED" and now != before:
                    # entering or leaving the selection looks like a creation or a deletion
                    etype = "ADDED" if now else "DELETED"  # noqa: PLW2901
                elif not (before if etype == "DELETED" else now):
                    continue
                yield {"type": etype, "object": obj}

    # -- RBAC --------------------------------------------------------------------------------------
    def authorize(self, verb: str, group: str, plural: str, namespace: str, name: str) -> None:
        self.requests.append((verb, group, plural, namespace, name))
        if self.rules is None:
            return
        for rule in self.rules:
            if (
                group in rule.get("apiGroups", [])
                and plural in rule.get("resources", [])
                and verb in rule.get("verbs", [])
                and (not rule.get("resourceNames") or name in rule["resourceNames"])
            ):
                return
        raise ApiError(
            403,
            "Forbidden",
            f'{plural} "{name}" is forbidden: User "system:serviceaccount:{namespace}:stolon" cannot {verb}'
            f' resource "{plural}" in API group "{group}" in the namespace "{namespace}"',
        )


RESOURCE_KIND = {plural: kind for (_, _, plural), kind in RESOURCES.items()}
RESOURCE_GV = {plural: (group, version) for (group, version, plural) in RESOURCES}


def _selected(
    obj: JSON, labels: list[tuple[str, str, set[str]]], fields: list[tuple[str, bool, str]]
) -> bool:
    return label_match(labels, (obj.get("metadata") or {}).get("labels") or {}) and field_match(fields, obj)


class _Handler(BaseHTTPRequestHandler):
    owner: KubeEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.owner._cond:
            self.owner._conns.add(self.connection)

    def finish(self) -> None:
        with self.owner._cond:
            self.owner._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _send(self, code: int, obj: JSON) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        owner = self.owner
        if not owner.running:
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            m = _PATH.match(url.path)
            if m is None:
                raise ApiError(
                    404, "NotFound", f"the server could not find the requested resource ({url.path})"
                )
            group = m.group("group") or ""
            version = m.group("cv") or m.group("gv")
            plural, namespace, name = m.group("res"), m.group("ns"), m.group("name") or ""
            if (group, version, plural) not in RESOURCES:
                raise ApiError(
                    404, "NotFound", f"the server could not find the requested resource ({url.path})"
                )
            watching = method == "GET" and query.get("watch") in ("1", "true")
            verb = {
                "GET": "watch" if watching else ("get" if name else "list"),
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection",
            }[method]
            owner.authorize(verb, group, plural, namespace, name)
            body = json.loads(raw) if raw else None
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if watching:
                self._stream(owner.watch(plural, namespace, query))
                return
            code, obj = owner.handle(
                method,
                plural,
                namespace=namespace,
                name=name,
                query=query,
                body=body,
                content_type=content_type,
            )
        except ApiError as e:
            code, obj = e.code, e.status()
        except ValueError as e:
            code, obj = 400, ApiError(400, "BadRequest", f"invalid JSON: {e}").status()
        self._send(code, obj)

    def _stream(self, events: Iterator[JSON]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for event in events:
                self._chunk(json.dumps(event).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
