"""The Kubernetes store: Go Stolon's layout, a Lease for the sentinel election.

In the namespace of the store (``--kube-namespace``, the kubeconfig context's, or the pod's):

- ConfigMap ``stolon-cluster-<cluster>``: the cluster data is its annotation
  ``stolon-clusterdata`` (the data field is unused, as in Go Stolon). The revision is the
  ConfigMap's ``resourceVersion``; writes are JSON merge patches that carry it as a
  precondition (the API server answers 409 Conflict when it changed).
- Each daemon's info is the ``stolon-status`` annotation of its own pod (``POD_NAME``),
  found through the labels ``component=stolon-keeper|stolon-sentinel|stolon-proxy`` and
  ``stolon-cluster=<cluster>``. Annotations have no TTL: the writer adds
  ``stolon-status-meta`` (uid, TTL, a nonce that changes on every put) and the reader
  drops an info ``ttl`` seconds after it last saw it change (:class:`InfoTracker`).
- Lease ``stolon-cluster-<cluster>`` (``coordination.k8s.io/v1``): the sentinel leader,
  client-go's leader-election rules (holder, duration, observed renewals).
- Change notification: watches on those three (:mod:`stolon_store_kubernetes.watch`).

See docs/store-kubernetes.md for the reasoning, the migration from Go Stolon and the limits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stolon.model.uid import new_uid
from stolon.store.base import (
    ALL_CHANGES,
    DEFAULT_ELECTION_TTL,
    MIN_INFO_TTL,
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
    StoreConfigError,
    StoreError,
    Versioned,
    Watch,
)
from stolon_store_kubernetes import (
    CLUSTER_DATA_ANNOTATION,
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    GO_LEADER_ANNOTATION,
    RESOURCE_KIND_CONFIGMAP,
    RESOURCE_PREFIX,
    STATUS_ANNOTATION,
    STATUS_META_ANNOTATION,
)
from stolon_store_kubernetes.api import JSON, KubeApi, KubeApiError, load_client

log = logging.getLogger(__name__)

#: Label values of the three daemon kinds (Go Stolon's ``ComponentLabelValue``).
COMPONENTS: dict[InfoKind, str] = {
    InfoKind.KEEPER: "stolon-keeper",
    InfoKind.SENTINEL: "stolon-sentinel",
    InfoKind.PROXY: "stolon-proxy",
}
#: TTL applied to infos written without our meta annotation (by Go Stolon's daemons).
FOREIGN_INFO_TTL = MIN_INFO_TTL
#: How many attempts a write makes when the ConfigMap changes under it for other reasons.
WRITE_ATTEMPTS = 5

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_names(cluster_name: str) -> str:
    """The ConfigMap/Lease name for ``cluster_name``, or :class:`StoreConfigError`.

    Kubernetes object names are DNS subdomains (lower case, at most 253 characters) and
    the cluster name is also a label value (at most 63 characters).
    """
    name = f"{RESOURCE_PREFIX}-{cluster_name}"
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise StoreConfigError(
            f"--cluster-name {cluster_name!r} cannot name a Kubernetes object ({name!r}): use lower"
            " case letters, digits, '-' and '.'"
        )
    if len(cluster_name) > 63 or not _LABEL_VALUE.match(cluster_name):
        raise StoreConfigError(
            f"--cluster-name {cluster_name!r} is not a valid Kubernetes label value: at most 63"
            " characters, letters, digits, '-', '_' and '.'"
        )
    return name


def micro_time(now: datetime | None = None) -> str:
    """A Kubernetes ``MicroTime`` (RFC 3339 with microseconds, UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"{what} is not UTF-8: a Kubernetes annotation holds text only") from None


def _rv(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _annotations(obj: JSON) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class KubernetesStore(Store):
    """One cluster's objects in one namespace. Thread-safe; opening it does no network I/O."""

    def __init__(self, config: StoreConfig, api: KubeApi | None = None) -> None:
        super().__init__(config)
        kind = config.options.get("kube_resource_kind", "") or RESOURCE_KIND_CONFIGMAP
        if kind != RESOURCE_KIND_CONFIGMAP:
            raise StoreConfigError(
                f"--kube-resource-kind {kind!r} is not supported: use configmap (the only kind Go Stolon has)"
            )
        self.name = check_names(config.cluster_name)
        self.pod_name = config.options.get("pod_name") or os.environ.get("POD_NAME", "")
        component = config.options.get("component", "")
        if component and not self.pod_name:
            raise StoreConfigError(
                f"POD_NAME is not set: stolon-{component} with the kubernetes backend publishes its"
                " state in its own pod's annotations; set POD_NAME from the downward API"
                " (env valueFrom fieldRef metadata.name)"
            )
        if api is None:
            configuration, namespace = load_client(config)
            agent = f"stolon-{component}" if component else "stolon"
            api = KubeApi(configuration, namespace, config.timeout, user_agent=f"{agent}/kubernetes-store")
        self.api = api
        self.namespace = api.namespace
        self.configmap_path = api.path("configmaps", self.name)
        self.lease_path = api.path("leases", self.name)
        self.pods_path = api.path("pods")
        self.infos = InfoTracker()
        self._lock = threading.Lock()
        #: resourceVersion -> digest of the cluster data stored at it (see cas_cluster_data)
        self._seen_data: OrderedDict[str, str] = OrderedDict()
        self._label_warned: set[InfoKind] = set()

    # -- cluster data ---------------------------------------------------------------------------
    def _remember(self, rv: str, text: str) -> None:
        with self._lock:
            self._seen_data[rv] = _digest(text)
            self._seen_data.move_to_end(rv)
            while len(self._seen_data) > 32:
                self._seen_data.popitem(last=False)

    def _seen_digest(self, rv: str) -> str | None:
        with self._lock:
            return self._seen_data.get(rv)

    def get_cluster_data(self) -> Versioned | None:
        cm = self.api.get(self.configmap_path)
        if cm is None:
            return None
        text = _annotations(cm).get(CLUSTER_DATA_ANNOTATION)
        if text is None:
            return None
        rv = _rv(cm)
        self._remember(rv, text)
        return Versioned(text.encode(), rv)

    def _new_configmap(self, text: str) -> JSON:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {CLUSTER_LABEL: self.config.cluster_name},
                "annotations": {CLUSTER_DATA_ANNOTATION: text},
            },
        }

    def put_cluster_data(self, data: bytes) -> Revision:
        text = _text(data, "the cluster data")
        patch = {"metadata": {"annotations": {CLUSTER_DATA_ANNOTATION: text}}}
        for _ in range(WRITE_ATTEMPTS):
            try:
                cm = self.api.merge_patch(self.configmap_path, patch)
            except KubeApiError as e:
                if e.status != 404:
                    raise _write_error(e, self.name) from None
                try:
                    cm = self.api.create(self.api.path("configmaps"), self._new_configmap(text))
                except KubeApiError as e2:
                    if e2.status == 409:  # created meanwhile: patch it
                        continue
                    raise _write_error(e2, self.name) from None
            self._remember(_rv(cm), text)
            return _rv(cm)
        raise ConflictError(f"ConfigMap {self.name!r} kept changing while writing the cluster data")

    def create_cluster_data(self, data: bytes) -> Revision:
        text = _text(data, "the cluster data")
        for _ in range(WRITE_ATTEMPTS):
            cm = self.api.get(self.configmap_path)
            try:
                if cm is None:
                    created = self.api.create(self.api.path("configmaps"), self._new_configmap(text))
                    self._remember(_rv(created), text)
                    return _rv(created)
                if CLUSTER_DATA_ANNOTATION in _annotations(cm):
                    raise ConflictError(f"cluster data already exists in ConfigMap {self.name!r}")
                # The ConfigMap exists without cluster data (deleted, or only Go's leader
                # record): add it unless the ConfigMap changes meanwhile.
                patched = self.api.merge_patch(
                    self.configmap_path,
                    {
                        "metadata": {
                            "resourceVersion": _rv(cm),
                            "annotations": {CLUSTER_DATA_ANNOTATION: text},
                        }
                    },
                )
                self._remember(_rv(patched), text)
                return _rv(patched)
            except KubeApiError as e:
                if e.status in (404, 409):  # raced with another writer: look again
                    continue
                raise _write_error(e, self.name) from None
        raise ConflictError(f"ConfigMap {self.name!r} kept changing while creating the cluster data")

    def cas_cluster_data(
        self, data: bytes, revision: Revision, *, leadership: Leadership | None = None
    ) -> Revision:
        """A merge patch with ``metadata.resourceVersion = revision`` as its precondition.

        The ConfigMap's resourceVersion also moves when something else in it changes (a
        label, another annotation such as Go Stolon's leader record during a migration).
        Go Stolon compares the annotation's bytes instead; we keep the resourceVersion
        precondition (atomic in the API server) and, when it fails, retry against the
        new resourceVersion only if the cluster data annotation still holds exactly the
        bytes this store saw at ``revision``.
        """
        if not isinstance(revision, str) or not revision:
            raise ConflictError(f"{revision!r} is not a Kubernetes resourceVersion")
        text = _text(data, "the cluster data")
        if leadership is not None:
            self.check_leadership(leadership)
        expected_rv = revision
        for _ in range(WRITE_ATTEMPTS):
            patch = {
                "metadata": {"resourceVersion": expected_rv, "annotations": {CLUSTER_DATA_ANNOTATION: text}}
            }
            try:
                cm = self.api.merge_patch(self.configmap_path, patch)
            except KubeApiError as e:
                if e.status == 404:
                    raise ConflictError(f"cluster data ConfigMap {self.name!r} was deleted") from None
                if e.status != 409:
                    raise _write_error(e, self.name) from None
                expected_rv = self._unchanged_data_rv(revision)
                continue
            self._remember(_rv(cm), text)
            return _rv(cm)
        raise ConflictError(f"ConfigMap {self.name!r} kept changing while writing the cluster data")

    def _unchanged_data_rv(self, revision: str) -> str:
        """The ConfigMap's current resourceVersion if its cluster data is still the one seen
        at ``revision``; else :class:`ConflictError`."""
        seen = self._seen_digest(revision)
        cm = self.api.get(self.configmap_path)
        current = None if cm is None else _annotations(cm).get(CLUSTER_DATA_ANNOTATION)
        if cm is None or current is None:
            raise ConflictError(f"cluster data in ConfigMap {self.name!r} was deleted")
        if seen is None or _digest(current) != seen:
            raise ConflictError(
                f"cluster data in ConfigMap {self.name!r} changed: resourceVersion {_rv(cm)},"
                f" expected {revision}"
            )
        return _rv(cm)

    def delete_cluster_data(self) -> None:
        """Remove the annotation; the ConfigMap itself stays (no ``delete`` right needed)."""
        try:
            self.api.merge_patch(
                self.configmap_path, {"metadata": {"annotations": {CLUSTER_DATA_ANNOTATION: None}}}
            )
        except KubeApiError as e:
            if e.status != 404:
                raise _write_error(e, self.name) from None

    # -- leadership-conditioned writes ------------------------------------------------------------
    def check_leadership(self, leadership: Leadership) -> None:
        """Confirm, in the API server, that ``leadership`` still holds the Lease, and renew it.

        Kubernetes has no transaction over two objects, so the cluster data write cannot be
        conditioned on the Lease atomically. Instead the Lease is read (holder, term) and
        renewed with its resourceVersion as a precondition right before the ConfigMap
        write: nobody else can have taken it at that point, and others wait a whole lease
        duration after they observe this renewal before taking it over. The write can
        still land after a takeover if this process stalls for longer than the lease
        duration between the two requests (docs/store-kubernetes.md, "the remaining window").
        """
        token = leadership.token
        if not isinstance(token, LeaseTerm) or token.lease != self.lease_path:
            raise NotLeaderError(
                f"the leadership of {leadership.candidate} was not won on Lease {self.name!r}"
            )
        if not leadership.is_valid():
            raise NotLeaderError(f"the leadership of {leadership.candidate} expired before the write")
        for _ in range(2):
            lease = self.api.get(self.lease_path)
            if (
                lease is None
                or LeaseTerm.of(self.lease_path, lease) != token
                or _holder(lease) != leadership.candidate
            ):
                holder = _holder(lease) if lease is not None else ""
                raise NotLeaderError(
                    f"{leadership.candidate} no longer holds the sentinel leadership (Lease {self.name!r}"
                    f" held by {holder or 'nobody'})"
                )
            try:
                self.api.merge_patch(
                    self.lease_path,
                    {"metadata": {"resourceVersion": _rv(lease)}, "spec": {"renewTime": micro_time()}},
                )
                return
            except KubeApiError as e:
                if e.status != 409:  # 409: renewed meanwhile (our campaign thread?): look again
                    raise
        raise NotLeaderError(
            f"Lease {self.name!r} kept changing: cannot confirm the leadership of {leadership.candidate}"
        )

    # -- infos ----------------------------------------------------------------------------------
    def put_info(self, kind: InfoKind, uid: str, data: bytes, ttl: float) -> None:
        """Merge-patch this daemon's pod: ``stolon-status`` (Go's) and ``stolon-status-meta``."""
        if not self.pod_name:
            raise StoreConfigError(
                "POD_NAME is not set: with the kubernetes backend a daemon publishes its state in its"
                " own pod's annotations (set POD_NAME from the downward API)"
            )
        text = _text(data, f"the {kind.value} info")
        meta = {"kind": kind.value, "uid": uid, "ttl": ttl, "digest": _digest(text), "nonce": new_uid()}
        patch = {
            "metadata": {"annotations": {STATUS_ANNOTATION: text, STATUS_META_ANNOTATION: json.dumps(meta)}}
        }
        try:
            pod = self.api.merge_patch(self.api.path("pods", self.pod_name), patch)
        except KubeApiError as e:
            if e.status == 404:
                raise StoreError(
                    f"pod {self.pod_name!r} (POD_NAME) does not exist in namespace {self.namespace!r}"
                ) from None
            raise
        labels = (pod.get("metadata") or {}).get("labels") or {}
        want = {COMPONENT_LABEL: COMPONENTS[kind], CLUSTER_LABEL: self.config.cluster_name}
        if any(labels.get(k) != v for k, v in want.items()) and kind not in self._label_warned:
            self._label_warned.add(kind)
            log.warning(
                "pod %s lacks the labels %s: the other components will not see its %s info",
                self.pod_name,
                ",".join(f"{k}={v}" for k, v in want.items()),
                kind.value,
            )

    def get_infos(self, kind: InfoKind) -> dict[str, bytes]:
        selector = f"{COMPONENT_LABEL}={COMPONENTS[kind]},{CLUSTER_LABEL}={self.config.cluster_name}"
        listed = self.api.list(self.pods_path, label_selector=selector)
        return self.infos.fresh(kind, listed.get("items") or [], time.monotonic())

    # -- election -------------------------------------------------------------------------------
    def election(self, candidate: str, ttl: float = DEFAULT_ELECTION_TTL) -> Election:
        return LeaseElection(self, candidate, ttl)

    # -- change notification -------------------------------------------------------------------
    def watch(self, kinds: frozenset[ChangeKind] = ALL_CHANGES) -> Watch:
        """Kubernetes watches on the ConfigMap, the cluster's pods and the Lease (see
        :mod:`stolon_store_kubernetes.watch`)."""
        from stolon_store_kubernetes.watch import KubernetesWatch

        return KubernetesWatch(
            self.api, resource_name=self.name, cluster=self.config.cluster_name, kinds=kinds
        )

    def get_leader(self) -> str | None:
        """The Lease's holder, as Go Stolon's ``Leader()`` (an expired holder included)."""
        lease = self.api.get(self.lease_path)
        return (_holder(lease) or None) if lease is not None else None

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> KubernetesStore:
        return self


def _write_error(e: KubeApiError, name: str) -> StoreError:
    if e.status == 422 and "annotations" in e.api_message:
        return StoreError(
            f"ConfigMap {name!r} refused the cluster data: {e.api_message} (Kubernetes limits all"
            " annotations of an object to 256 KiB together)"
        )
    return e


def _holder(lease: JSON) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


# -- infos ----------------------------------------------------------------------------------------
@dataclass
class _Seen:
    token: tuple[str, str]
    changed_at: float


class InfoTracker:
    """Turns pod annotations (no TTL) into infos that expire.

    An info is visible from the moment this reader sees it change until ``ttl`` seconds
    after the last change it saw (the TTL is the writer's, from ``stolon-status-meta``;
    an info written by Go Stolon, without it, gets :data:`FOREIGN_INFO_TTL`). Every put
    changes the meta's nonce, so a refresh with identical content is a change too. The
    clock is this process's monotonic clock: no clock skew between nodes is involved, but
    a reader that starts sees every existing info as fresh for one TTL.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[InfoKind, str], _Seen] = {}

    def fresh(self, kind: InfoKind, pods: list[JSON], now: float) -> dict[str, bytes]:
        out: dict[str, tuple[float, bytes]] = {}
        present: set[tuple[InfoKind, str]] = set()
        with self._lock:
            for pod in pods:
                meta = pod.get("metadata") or {}
                ann = meta.get("annotations") or {}
                text = ann.get(STATUS_ANNOTATION)
                if not isinstance(text, str):
                    continue
                raw_meta = ann.get(STATUS_META_ANNOTATION) or ""
                parsed = _info_identity(kind, text, raw_meta)
                if parsed is None:
                    continue
                uid, ttl = parsed
                key = (kind, str(meta.get("uid") or meta.get("name") or ""))
                present.add(key)
                token = (text, raw_meta)
                seen = self._seen.get(key)
                if seen is None or seen.token != token:
                    seen = self._seen[key] = _Seen(token, now)
                if now - seen.changed_at >= ttl:
                    continue
                # two pods claiming one uid (a replaced pod): the latest change wins
                if uid not in out or out[uid][0] < seen.changed_at:
                    out[uid] = (seen.changed_at, text.encode())
            for key in [k for k in self._seen if k[0] == kind and k not in present]:
                del self._seen[key]
        return {uid: data for uid, (_, data) in out.items()}


def _info_identity(kind: InfoKind, text: str, raw_meta: str) -> tuple[str, float] | None:
    """(uid, ttl) of an info: from our meta when it describes this very content, else from
    the info itself as Go Stolon reads it (``uid`` of a keeper, ``UID`` of the others)."""
    if raw_meta:
        try:
            meta = json.loads(raw_meta)
            if (
                isinstance(meta, dict)
                and meta.get("kind") == kind.value
                and meta.get("digest") == _digest(text)
                and isinstance(meta.get("uid"), str)
                and isinstance(meta.get("ttl"), int | float)
            ):
                return meta["uid"], float(meta["ttl"])
        except ValueError:
            pass
    try:
        info = json.loads(text)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    uid = info.get("uid") if kind is InfoKind.KEEPER else info.get("UID")
    if not isinstance(uid, str) or not uid:
        return None
    return uid, FOREIGN_INFO_TTL


# -- election -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaseTerm:
    """One term of leadership: the Lease object (path and uid) and its ``leaseTransitions``."""

    lease: str
    object_uid: str
    transitions: int

    @classmethod
    def of(cls, path: str, lease: JSON) -> LeaseTerm:
        spec = lease.get("spec") or {}
        return cls(
            path, str((lease.get("metadata") or {}).get("uid") or ""), int(spec.get("leaseTransitions") or 0)
        )


@dataclass
class _Observed:
    """client-go's ``observedRecord``/``observedTime``: when this candidate last saw a record change."""

    record: str = ""
    at: float = 0.0


class LeaseElection(PollingElection):
    """client-go's leader election over a ``coordination.k8s.io/v1`` Lease, driven by polling.

    A candidate takes the Lease when it has no holder, or when it has seen no change of the
    Lease for ``leaseDurationSeconds`` (measured on its own clock from when it observed the
    last change, so clocks of different nodes never matter). Taking, renewing and releasing
    are merge patches with the Lease's resourceVersion as precondition: of two candidates
    racing for it, one gets 409 Conflict. The holder renews every ``ttl/4``.

    While a Go Stolon sentinel renews its ConfigMap lock (the annotation
    ``control-plane.alpha.kubernetes.io/leader``), this candidate does not take the Lease:
    the two kinds of sentinel do not see each other's locks, so a mixed fleet would
    otherwise have two leaders (docs/store-kubernetes.md, "Migrating from Go Stolon").
    """

    def __init__(self, store: KubernetesStore, candidate: str, ttl: float) -> None:
        super().__init__(candidate, ttl)
        self._store = store
        self._api = store.api
        self._duration = max(1, math.ceil(ttl))
        self._observed = _Observed()
        self._go_observed = _Observed()
        self._go_warned = False

    def _acquire_or_renew(self, current: Any | None) -> Any | None:
        api, path = self._api, self._store.lease_path
        lease = api.get(path)
        now = time.monotonic()
        if lease is None:
            if self._go_sentinel_leads(now):
                return None
            return self._create(path)
        spec = lease.get("spec") or {}
        holder = _holder(lease)
        rv = _rv(lease)
        if rv != self._observed.record:
            self._observed = _Observed(rv, now)
        if holder == self.candidate:
            term = LeaseTerm.of(path, lease)
            if current is not None and current != term:
                log.warning("sentinel leadership of %s was lost and re-acquired", self.candidate)
                return None
            patch = {
                "metadata": {"resourceVersion": rv},
                "spec": {"renewTime": micro_time(), "leaseDurationSeconds": self._duration},
            }
            return self._patch(path, patch, term)
        duration = int(spec.get("leaseDurationSeconds") or self._duration)
        if holder and now - self._observed.at < duration:
            return None  # held, and renewed within its duration as far as we have seen
        if self._go_sentinel_leads(now):
            return None
        stamp = micro_time()
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        patch = {
            "metadata": {"resourceVersion": rv},
            "spec": {
                "holderIdentity": self.candidate,
                "leaseDurationSeconds": self._duration,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": transitions,
            },
        }
        meta = lease.get("metadata") or {}
        return self._patch(path, patch, LeaseTerm(path, str(meta.get("uid") or ""), transitions))

    def _create(self, path: str) -> LeaseTerm | None:
        stamp = micro_time()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self._store.name,
                "labels": {CLUSTER_LABEL: self._store.config.cluster_name},
            },
            "spec": {
                "holderIdentity": self.candidate,
                "leaseDurationSeconds": self._duration,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            created = self._api.create(self._api.path("leases"), body)
        except KubeApiError as e:
            if e.status == 409:  # another candidate created it first
                return None
            raise
        self._observed = _Observed(_rv(created), time.monotonic())
        return LeaseTerm.of(path, created)

    def _patch(self, path: str, patch: JSON, term: LeaseTerm) -> LeaseTerm | None:
        try:
            patched = self._api.merge_patch(path, patch)
        except KubeApiError as e:
            if e.status in (404, 409):  # changed or deleted since we read it: not ours now
                return None
            raise
        self._observed = _Observed(_rv(patched), time.monotonic())
        got = LeaseTerm.of(path, patched)
        return got if got == term and _holder(patched) == self.candidate else None

    def _go_sentinel_leads(self, now: float) -> bool:
        """Whether a Go Stolon sentinel holds the ConfigMap lock and renewed it recently."""
        cm = self._api.get(self._store.configmap_path)
        raw = _annotations(cm).get(GO_LEADER_ANNOTATION, "") if cm is not None else ""
        if not raw:
            return False
        try:
            record = json.loads(raw)
            holder = str(record.get("holderIdentity") or "")
            duration = float(record.get("leaseDurationSeconds") or 15)
        except (ValueError, AttributeError, TypeError):
            return False
        if not holder:
            return False
        if raw != self._go_observed.record:
            self._go_observed = _Observed(raw, now)
        if now - self._go_observed.at >= duration:
            return False
        if not self._go_warned:
            self._go_warned = True
            log.warning(
                "a Go Stolon sentinel (%s) holds the ConfigMap lock of %s: not taking the sentinel"
                " leadership until that lock has not been renewed for %gs (stop Go Stolon's sentinels"
                " to migrate; see docs/store-kubernetes.md)",
                holder,
                self._store.name,
                duration,
            )
        return True

    def _release(self, token: Any) -> None:
        """client-go's ReleaseOnCancel: empty holder, so a waiting candidate takes it at once."""
        lease = self._api.get(self._store.lease_path)
        if (
            lease is None
            or _holder(lease) != self.candidate
            or LeaseTerm.of(self._store.lease_path, lease) != token
        ):
            return
        try:
            self._api.merge_patch(
                self._store.lease_path,
                {
                    "metadata": {"resourceVersion": _rv(lease)},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time()},
                },
            )
        except KubeApiError as e:
            if e.status not in (404, 409):
                raise


__all__ = ["InfoTracker", "KubernetesStore", "LeaseElection", "LeaseTerm", "check_names", "micro_time"]
