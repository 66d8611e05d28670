"""Change notification through Kubernetes watches (``?watch=1&resourceVersion=N``).

One thread per watched collection, as client-go's informers do: list (the baseline and a
resourceVersion), then watch from that version; each event is compared with what the
object held before, so only what stolon reads counts as a change:

- the ConfigMap ``stolon-cluster-<c>`` (``fieldSelector=metadata.name=...``): a change of
  its ``stolon-clusterdata`` annotation is :attr:`ChangeKind.CLUSTER_DATA` (a Go sentinel
  renewing its lock in the same ConfigMap, or ``kubectl annotate``, is not);
- the pods labelled ``stolon-cluster=<c>``: a change of a pod's ``stolon-status`` or
  ``stolon-status-meta`` annotations (every put changes the meta's nonce), its appearance
  or its removal is the change kind of its ``component`` label (pod status updates by the
  kubelet are not);
- the Lease ``stolon-cluster-<c>``: a change of ``holderIdentity`` is
  :attr:`ChangeKind.LEADER` (renewals are not).

- **Resuming.** A stream ends after :data:`WATCH_SECONDS` (the server closes it) and is
  re-opened from the last resourceVersion seen, bookmarks included, so nothing is lost and
  a frozen API server is noticed that soon.
- **Lost continuity.** A 410 Expired (the version left the server's history) or a failed
  request means events may be missing: the watch lists again and reports ``resync`` once
  the API server answers.

A write that changes nothing (the same cluster data put twice) is no event: the API server
does not store a no-op update.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stolon.store.base import INFO_CHANGES, ChangeKind, Changes, InfoKind, Watch
from stolon_store_kubernetes import (
    CLUSTER_DATA_ANNOTATION,
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    STATUS_ANNOTATION,
    STATUS_META_ANNOTATION,
)
from stolon_store_kubernetes.api import JSON, KubeApi

log = logging.getLogger(__name__)

#: How long one watch request lasts before it is re-opened from the last version.
WATCH_SECONDS = 15
#: Wait between attempts while the API server cannot be reached, growing to the maximum.
RETRY_MIN, RETRY_MAX = 0.2, 2.0

_KIND_OF_COMPONENT = {
    "stolon-keeper": InfoKind.KEEPER,
    "stolon-sentinel": InfoKind.SENTINEL,
    "stolon-proxy": InfoKind.PROXY,
}

#: What of an object matters, by the change kind it belongs to.
Relevant = dict[ChangeKind, Any]


def _meta(obj: JSON) -> JSON:
    return dict(obj.get("metadata") or {})


def configmap_relevant(obj: JSON) -> Relevant:
    ann = _meta(obj).get("annotations") or {}
    return {ChangeKind.CLUSTER_DATA: ann[CLUSTER_DATA_ANNOTATION]} if CLUSTER_DATA_ANNOTATION in ann else {}


def pod_relevant(obj: JSON) -> Relevant:
    meta = _meta(obj)
    ann = meta.get("annotations") or {}
    kind = _KIND_OF_COMPONENT.get((meta.get("labels") or {}).get(COMPONENT_LABEL, ""))
    if kind is None or STATUS_ANNOTATION not in ann:
        return {}
    return {INFO_CHANGES[kind]: (ann[STATUS_ANNOTATION], ann.get(STATUS_META_ANNOTATION))}


def lease_relevant(obj: JSON) -> Relevant:
    holder = (obj.get("spec") or {}).get("holderIdentity") or ""
    return {ChangeKind.LEADER: holder} if holder else {}


@dataclass
class _Stream:
    """One watched collection (with its selectors) and what its objects last held."""

    name: str
    path: str
    relevant: Callable[[JSON], Relevant]
    kinds: frozenset[ChangeKind]
    label_selector: str = ""
    field_selector: str = ""


class KubernetesWatch(Watch):
    native = True

    def __init__(
        self, api: KubeApi, *, resource_name: str, cluster: str, kinds: frozenset[ChangeKind]
    ) -> None:
        self.api = api
        self.kinds = kinds
        self._cond = threading.Condition()
        self._pending: set[ChangeKind] = set()
        self._resync = False
        self._closed = False
        self._responses: dict[str, Any] = {}
        streams = []
        if ChangeKind.CLUSTER_DATA in kinds:
            streams.append(
                _Stream(
                    "configmap",
                    api.path("configmaps"),
                    configmap_relevant,
                    kinds,
                    field_selector=f"metadata.name={resource_name}",
                )
            )
        if kinds & set(INFO_CHANGES.values()):
            streams.append(
                _Stream(
                    "pods", api.path("pods"), pod_relevant, kinds, label_selector=f"{CLUSTER_LABEL}={cluster}"
                )
            )
        if ChangeKind.LEADER in kinds:
            streams.append(
                _Stream(
                    "lease",
                    api.path("leases"),
                    lease_relevant,
                    kinds,
                    field_selector=f"metadata.name={resource_name}",
                )
            )
        self._threads: list[threading.Thread] = []
        for stream in streams:
            # The first list happens here, so a change made right after watch() returns is
            # reported; if the API server can't be reached now, the thread lists later and
            # reports a resync.
            state, version = self._list(stream)
            t = threading.Thread(
                target=self._run, args=(stream, state, version), name=f"kube-watch-{stream.name}", daemon=True
            )
            self._threads.append(t)
            t.start()

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
            responses = list(self._responses.values())
        for resp in responses:
            KubeApi.shutdown(resp)
        for t in self._threads:
            t.join(timeout=5)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the reader threads -------------------------------------------------------------------
    def _list(self, stream: _Stream) -> tuple[dict[str, Relevant] | None, str]:
        """(what each object holds, the list's resourceVersion); (None, "") when unreachable."""
        try:
            listed = self.api.list(
                stream.path, label_selector=stream.label_selector, field_selector=stream.field_selector
            )
        except Exception as e:
            log.debug("kubernetes watch: cannot list %s: %s", stream.name, e)
            return None, ""
        state = {str(_meta(obj).get("name")): stream.relevant(obj) for obj in listed.get("items") or []}
        return state, str(_meta(listed).get("resourceVersion") or "")

    def _note(self, stream: _Stream, old: Relevant, new: Relevant) -> None:
        changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)} & stream.kinds
        if changed:
            with self._cond:
                self._pending |= changed
                self._cond.notify_all()

    def _run(self, stream: _Stream, state: dict[str, Relevant] | None, version: str) -> None:
        delay = RETRY_MIN
        lost = state is None
        while not self._closed:
            if state is None:
                state, version = self._list(stream)
                if state is None:
                    with self._cond:
                        self._cond.wait_for(lambda: self._closed, delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                if lost:
                    with self._cond:
                        self._resync = True
                        self._cond.notify_all()
                lost, delay = False, RETRY_MIN
            try:
                for event in self.api.watch(
                    stream.path,
                    resource_version=version,
                    label_selector=stream.label_selector,
                    field_selector=stream.field_selector,
                    timeout_seconds=WATCH_SECONDS,
                    bookmarks=True,
                    on_open=lambda resp: self._opened(stream, resp),
                ):
                    if self.closed:
                        return
                    if event.type == "ERROR":
                        # 410 Expired, or another failure reported in the stream: list again
                        log.info("kubernetes watch on %s: %s", stream.name, event.object.get("message"))
                        state, lost = None, True
                        break
                    version = str(_meta(event.object).get("resourceVersion") or version)
                    if event.type == "BOOKMARK":
                        continue
                    name = str(_meta(event.object).get("name"))
                    new = {} if event.type == "DELETED" else stream.relevant(event.object)
                    self._note(stream, state.get(name, {}), new)
                    if new:
                        state[name] = new
                    else:
                        state.pop(name, None)
            except Exception as e:
                if self.closed:
                    return
                log.debug("kubernetes watch on %s broke: %s", stream.name, e)
                state, lost = None, True
            finally:
                with self._cond:
                    self._responses.pop(stream.name, None)

    def _opened(self, stream: _Stream, resp: Any) -> None:
        with self._cond:
            self._responses[stream.name] = resp
            closed = self._closed
        if closed:
            KubeApi.shutdown(resp)


__all__ = ["KubernetesWatch", "configmap_relevant", "lease_relevant", "pod_relevant"]
