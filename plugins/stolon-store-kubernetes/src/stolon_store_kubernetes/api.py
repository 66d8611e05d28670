"""A thin JSON layer over the official ``kubernetes`` client.

The official client does what is hard to get right: kubeconfig files (contexts, client
certificates, exec and token auth providers) and the in-cluster service account (with
token rotation); its ``Configuration`` (server, TLS files, credentials and their refresh
hook) is what the store takes from it. Requests are sent with urllib3 (the client's own
HTTP library) from that configuration, with raw JSON in and out: the store needs a handful
of fields of three object kinds, exact control of the patch bodies and watch streams, not
the generated models, and the client's request layer changed shape between releases (36
to 37) while ``Configuration`` did not.

Every request is bounded by the store timeout and never retried here (urllib3 retries
are off), so a caller sees an unreachable API server within ``--store-timeout``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from stolon.store.base import StoreConfig, StoreConfigError, StoreError, UnreachableError

log = logging.getLogger(__name__)

#: Service-account files mounted in every pod (the namespace file names the pod's namespace).
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_KUBECONFIG = "~/.kube/config"
MERGE_PATCH = "application/merge-patch+json"

JSON = dict[str, Any]


class KubeApiError(StoreError):
    """The API server answered with an error status (a ``Status`` object)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"kubernetes API error {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.api_message = message


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch stream: ``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK`` or
    ``ERROR`` (then ``object`` is a ``Status``)."""

    type: str
    object: JSON


def resolve_namespace(options: Mapping[str, str], context_namespace: str, in_cluster: bool) -> str:
    """client-go's order: the override (``--kube-namespace``), the kubeconfig context's
    namespace; in a pod ``POD_NAMESPACE`` then the service account's namespace; ``default``."""
    if options.get("kube_namespace"):
        return options["kube_namespace"]
    if context_namespace:
        return context_namespace
    if in_cluster:
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        try:
            with open(SERVICE_ACCOUNT_NAMESPACE_FILE, encoding="utf-8") as f:
                ns = f.read().strip()
            if ns:
                return ns
        except OSError:
            pass
    return "default"


def load_client(config: StoreConfig) -> tuple[Any, str]:
    """The client ``Configuration`` and the namespace, from a kubeconfig or the in-cluster
    service account.

    Like Go Stolon (client-go's deferred loading rules): ``--kubeconfig`` (stolonctl), else
    ``$KUBECONFIG``, else ``~/.kube/config`` when it exists, else the in-cluster config.
    """
    import importlib

    # Any: the client's typing differs between releases (37 ships partial annotations)
    kclient: Any = importlib.import_module("kubernetes.client")
    kconfig: Any = importlib.import_module("kubernetes.config")

    options = config.options
    configuration = kclient.Configuration()
    explicit = options.get("kubeconfig") or os.environ.get("KUBECONFIG", "")
    context = options.get("kube_context") or None
    default_exists = os.path.exists(os.path.expanduser(DEFAULT_KUBECONFIG))
    context_namespace = ""
    in_cluster = False
    try:
        if explicit or context or default_exists:
            path = explicit or DEFAULT_KUBECONFIG
            kconfig.load_kube_config(
                config_file=path, context=context, client_configuration=configuration, persist_config=False
            )
            contexts, current = kconfig.list_kube_config_contexts(config_file=path)
            chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
            context_namespace = ((chosen or {}).get("context") or {}).get("namespace") or ""
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            kconfig.load_incluster_config(client_configuration=configuration)
            in_cluster = True
        else:
            raise StoreConfigError(
                "no Kubernetes API server configured: not running in a pod (KUBERNETES_SERVICE_HOST"
                " is unset) and no kubeconfig (give --kubeconfig, set KUBECONFIG, or create"
                f" {DEFAULT_KUBECONFIG})"
            )
    except StoreConfigError:
        raise
    except Exception as e:  # ConfigException, a missing or malformed file, a bad context
        raise StoreConfigError(f"cannot load the Kubernetes client configuration: {e}") from None
    return configuration, resolve_namespace(options, context_namespace, in_cluster)


def _pool(configuration: Any, maxsize: int = 8) -> Any:
    """A urllib3 pool for ``configuration``'s server: its TLS settings and proxy, no retries
    (one attempt per request, bounded by the store timeout: retrying is the caller's job)."""
    import ssl

    import urllib3

    kwargs: dict[str, Any] = {"maxsize": maxsize, "retries": False, "block": False}
    if str(configuration.host).startswith("https"):
        kwargs["cert_reqs"] = ssl.CERT_REQUIRED if configuration.verify_ssl else ssl.CERT_NONE
        if configuration.ssl_ca_cert:
            kwargs["ca_certs"] = configuration.ssl_ca_cert
        if configuration.cert_file:
            kwargs["cert_file"] = configuration.cert_file
        if configuration.key_file:
            kwargs["key_file"] = configuration.key_file
        if getattr(configuration, "assert_hostname", None) is not None:
            kwargs["assert_hostname"] = configuration.assert_hostname
        if getattr(configuration, "tls_server_name", None):
            kwargs["server_hostname"] = configuration.tls_server_name
    proxy = getattr(configuration, "proxy", None)
    if proxy:
        return urllib3.ProxyManager(
            proxy, proxy_headers=getattr(configuration, "proxy_headers", None), **kwargs
        )
    return urllib3.PoolManager(**kwargs)


class KubeApi:
    """JSON requests to one namespace's objects, each bounded by ``timeout`` seconds."""

    def __init__(
        self, configuration: Any, namespace: str, timeout: float, user_agent: str = "stolon"
    ) -> None:
        self._configuration = configuration
        self._host = str(configuration.host).rstrip("/")
        self._pool = _pool(configuration)
        self.namespace = namespace
        self.timeout = timeout
        self.user_agent = user_agent

    def _headers(self, content_type: str) -> dict[str, str]:
        """Credentials are read per request: the client's refresh hook renews expiring
        tokens (exec providers, the in-cluster service account's rotated token)."""
        headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": self.user_agent}
        for setting in (self._configuration.auth_settings() or {}).values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    # -- paths ----------------------------------------------------------------------------------
    def path(self, resource: str, name: str = "") -> str:
        """The path of a namespaced object (or collection) of the resources stolon uses."""
        ns = quote(self.namespace, safe="")
        if resource == "leases":
            base = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        elif resource in ("configmaps", "pods"):
            base = f"/api/v1/namespaces/{ns}/{resource}"
        else:
            raise ValueError(f"unexpected resource {resource!r}")
        return f"{base}/{quote(name, safe='')}" if name else base

    # -- requests -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: JSON | None = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
        stream: bool = False,
    ) -> Any:
        """One request; the decoded JSON answer, or the open response when ``stream``."""
        import urllib3

        url = self._host + path
        if query:
            url += "?" + urlencode(query)
        limit = self.timeout if timeout is None else timeout
        t = (
            urllib3.Timeout(connect=limit[0], read=limit[1])
            if isinstance(limit, tuple)
            else urllib3.Timeout(total=limit)
        )
        try:
            resp = self._pool.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers=self._headers(content_type),
                timeout=t,
                preload_content=False,
            )
        except Exception as e:  # urllib3: refused, reset, timed out, TLS, DNS, ...
            raise UnreachableError(f"kubernetes API server unreachable: {_describe(e)}") from None
        if stream and 200 <= resp.status < 300:
            return resp
        try:
            data = resp.read()
        except Exception as e:
            raise UnreachableError(f"kubernetes API server unreachable: {_describe(e)}") from None
        finally:
            resp.release_conn()
        if not 200 <= resp.status < 300:
            raise _api_error(resp.status, resp.reason or "", data)
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise StoreError(f"kubernetes API server sent a non-JSON answer to {method} {path}") from None

    def get(self, path: str) -> JSON | None:
        """The object, or ``None`` when it does not exist."""
        try:
            obj: JSON = self.request("GET", path)
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise
        return obj

    def create(self, path: str, obj: JSON) -> JSON:
        created: JSON = self.request("POST", path, body=obj)
        return created

    def merge_patch(self, path: str, patch: JSON) -> JSON:
        """A JSON merge patch (RFC 7386); a ``metadata.resourceVersion`` in it is a precondition."""
        patched: JSON = self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        return patched

    def list(self, path: str, *, label_selector: str = "", field_selector: str = "") -> JSON:
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        listed: JSON = self.request("GET", path, query=query)
        return listed

    def watch(
        self,
        path: str,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 60,
        bookmarks: bool = False,
        on_open: Callable[[Any], None] | None = None,
    ) -> Iterator[WatchEvent]:
        """The events of ``path`` after ``resource_version`` (``?watch=1``), until the server
        ends the stream (after ``timeout_seconds``) or the consumer stops iterating.

        A caller resumes from the last ``metadata.resourceVersion`` it saw (``bookmarks``
        asks the server for ``BOOKMARK`` events that carry the current version, so a quiet
        filtered watch does not fall behind the server's history); an ``ERROR`` event with
        code 410 (``Expired``) means it must list again and watch from there. ``on_open``
        gets the open response, for :meth:`shutdown` from another thread.
        """
        query = [("watch", "1"), ("timeoutSeconds", str(timeout_seconds))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        resp = self.request(
            "GET", path, query=query, timeout=(self.timeout, timeout_seconds + self.timeout), stream=True
        )
        if on_open is not None:
            on_open(resp)
        try:
            buffer = b""
            for chunk in resp.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield _event(line)
            if buffer.strip():
                yield _event(buffer)
        except StoreError:
            raise
        except Exception as e:
            raise UnreachableError(f"kubernetes watch on {path} broke: {_describe(e)}") from None
        finally:
            resp.release_conn()

    @staticmethod
    def shutdown(response: Any) -> None:
        """End a watch stream from another thread (its reader sees the connection close)."""
        try:
            response.shutdown()
        except Exception as e:
            log.debug("shutting a watch stream down: %s", e)

    def close(self) -> None:
        try:
            self._pool.clear()
        except Exception as e:  # at interpreter exit, ...
            log.debug("closing the kubernetes client: %s", e)


def _event(line: bytes) -> WatchEvent:
    try:
        raw = json.loads(line)
        return WatchEvent(str(raw["type"]), dict(raw["object"]))
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"malformed watch event from the kubernetes API server: {line[:200]!r}") from None


def _api_error(status: int, http_reason: str, body: bytes) -> StoreError:
    reason, message = http_reason, ""
    try:
        st = json.loads(body) if body else {}
        reason = st.get("reason") or reason
        message = st.get("message") or ""
    except (ValueError, TypeError, AttributeError):
        message = body[:300].decode(errors="replace")
    if status == 429 or status >= 500:
        # Throttled, or the API server cannot reach its own storage: stolon cannot read or
        # write its state, which is what "unreachable" means to the daemons.
        return UnreachableError(f"kubernetes API server unavailable ({status} {reason}): {message}")
    if status in (401, 403):
        return KubeApiError(
            status,
            reason,
            f"{message} (check the service account's RBAC rules: see docs/store-kubernetes.md)",
        )
    return KubeApiError(status, reason, message)


def _describe(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    return f"{type(e).__name__}: {reason or e}"


__all__ = ["KubeApi", "KubeApiError", "WatchEvent", "load_client", "resolve_namespace"]
