"""Fixtures and helpers of the Kubernetes store tests (a uniquely named module, so test
modules can import it whatever other ``conftest`` modules are loaded).

``kube_emulator``
    a session-wide :class:`kube_emulator.KubeEmulator` that enforces the Role of
    ``manifests/rbac.yaml`` on every request (so every test also proves those rights are
    enough); tests must not stop it.
``kube_emulator_control``
    a second emulator a test may stop and restart (same port and objects), restored after.
``real_kube``
    the cluster named by ``$KUBECONFIG`` (kind, minikube, ...) or a skip saying so.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml
from kube_emulator import KubeEmulator
from stolon_store_kubernetes.store import COMPONENTS

from stolon.plugins import load_plugins
from stolon.store import open_backend
from stolon.store.base import (
    ALL_CHANGES,
    DEFAULT_ELECTION_TTL,
    ChangeKind,
    Election,
    InfoKind,
    Leadership,
    Revision,
    Store,
    StoreConfig,
    Versioned,
    Watch,
)

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

PLUGIN_DIR = Path(__file__).resolve().parent.parent
RBAC_MANIFEST = PLUGIN_DIR / "manifests" / "rbac.yaml"
NAMESPACE = "stolon-test"


def rbac_rules() -> list[dict[str, Any]]:
    """The rules of the Role in ``manifests/rbac.yaml``."""
    docs = [d for d in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if d]
    (role,) = [d for d in docs if d.get("kind") == "Role"]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


@dataclass
class EmulatorEnv:
    """An emulator and a kubeconfig file pointing at it (namespace :data:`NAMESPACE`)."""

    emulator: KubeEmulator
    kubeconfig: Path
    namespace: str = NAMESPACE

    def store_config(self, cluster_name: str, **options: str) -> StoreConfig:
        return StoreConfig(
            backend="kubernetes",
            cluster_name=cluster_name,
            timeout=3.0,
            options={"kubeconfig": str(self.kubeconfig), **options},
        )

    def add_pod(self, name: str, component: str, cluster: str, **labels: str) -> None:
        self.emulator.put_object(
            "pods",
            self.namespace,
            {
                "metadata": {
                    "name": name,
                    "labels": {"component": component, "stolon-cluster": cluster, **labels},
                },
                "spec": {"containers": [{"name": "stolon", "image": "stolon"}]},
            },
        )


def _emulator_env(tmp: Path, name: str) -> EmulatorEnv:
    emulator = KubeEmulator(rules=rbac_rules())
    emulator.start()
    path = tmp / f"{name}.kubeconfig"
    path.write_text(emulator.kubeconfig(NAMESPACE))
    path.chmod(0o644)
    return EmulatorEnv(emulator, path)


@pytest.fixture(scope="session")
def kube_emulator() -> Iterator[EmulatorEnv]:
    with tempfile.TemporaryDirectory(prefix="stolon-kube-") as tmp:
        env = _emulator_env(Path(tmp), "shared")
        try:
            yield env
        finally:
            env.emulator.close()


@pytest.fixture(scope="session")
def _kube_disposable() -> Iterator[EmulatorEnv]:
    with tempfile.TemporaryDirectory(prefix="stolon-kube-") as tmp:
        env = _emulator_env(Path(tmp), "disposable")
        try:
            yield env
        finally:
            env.emulator.close()


@pytest.fixture
def kube_emulator_control(_kube_disposable: EmulatorEnv) -> Iterator[EmulatorEnv]:
    _kube_disposable.emulator.start()
    yield _kube_disposable
    _kube_disposable.emulator.start()


# -- a real cluster -------------------------------------------------------------------------------
@dataclass
class RealKube:
    """The cluster of ``$KUBECONFIG``; pods are created as ``pause`` containers and removed."""

    kubeconfig: str
    namespace: str
    created: list[str] = field(default_factory=list)

    def store_config(self, cluster_name: str, **options: str) -> StoreConfig:
        return StoreConfig(
            backend="kubernetes",
            cluster_name=cluster_name,
            options={"kubeconfig": self.kubeconfig, "kube_namespace": self.namespace, **options},
        )

    def _api(self) -> Any:
        from stolon_store_kubernetes.api import KubeApi, load_client

        configuration, _ = load_client(self.store_config("unused"))
        return KubeApi(configuration, self.namespace, 10.0)

    def add_pod(self, name: str, component: str, cluster: str, **labels: str) -> None:
        api = self._api()
        try:
            if api.get(api.path("pods", name)) is None:
                api.create(
                    api.path("pods"),
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": name,
                            "labels": {"component": component, "stolon-cluster": cluster, **labels},
                        },
                        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]},
                    },
                )
                self.created.append(name)
        finally:
            api.close()

    def cleanup(self) -> None:
        api = self._api()
        try:
            for name in self.created:
                try:
                    api.request("DELETE", api.path("pods", name))
                except Exception:
                    pass
        finally:
            api.close()


@pytest.fixture
def real_kube() -> Iterator[RealKube]:
    path = os.environ.get("KUBECONFIG", "")
    if not path:
        pytest.skip(
            "no real Kubernetes cluster: set KUBECONFIG (e.g. a kind or minikube cluster) to run these"
        )
    kube = RealKube(path, os.environ.get("STOLON_TEST_KUBE_NAMESPACE", "default"))
    yield kube
    kube.cleanup()


# -- one pod per daemon ---------------------------------------------------------------------------
class PodMaker(Protocol):
    def add_pod(self, name: str, component: str, cluster: str, **labels: str) -> None: ...


def pod_name(cluster: str, kind: InfoKind, uid: str) -> str:
    clean = re.sub(r"[^a-z0-9-]", "-", uid.lower()).strip("-") or "x"
    return f"{cluster}-{kind.value[:-1]}-{clean}"[:253]


class PodPerDaemonStore(Store):
    """A store standing for a fleet of daemons, each with a pod of its own.

    On Kubernetes a daemon publishes its info in its own pod (``POD_NAME``), so one store
    object publishes one info. The store contract publishes several (kinds, uids) through
    one object; this adapter does what a deployment does: each (kind, uid) gets a pod with
    the right labels and a store opened with that ``POD_NAME``. Everything else goes to
    the wrapped store unchanged.
    """

    def __init__(self, config: StoreConfig, pods: PodMaker) -> None:
        super().__init__(config)
        self.base = open_backend(config, PLUGINS)
        self._pods = pods
        self._publishers: dict[tuple[InfoKind, str], Store] = {}

    def _publisher(self, kind: InfoKind, uid: str) -> Store:
        key = (kind, uid)
        if key not in self._publishers:
            name = pod_name(self.config.cluster_name, kind, uid)
            self._pods.add_pod(name, COMPONENTS[kind], self.config.cluster_name)
            options = {**self.config.options, "pod_name": name}
            self._publishers[key] = open_backend(replace(self.config, options=options), PLUGINS)
        return self._publishers[key]

    def put_info(self, kind: InfoKind, uid: str, data: bytes, ttl: float) -> None:
        self._publisher(kind, uid).put_info(kind, uid, data, ttl)

    def get_infos(self, kind: InfoKind) -> dict[str, bytes]:
        return self.base.get_infos(kind)

    def get_cluster_data(self) -> Versioned | None:
        return self.base.get_cluster_data()

    def put_cluster_data(self, data: bytes) -> Revision:
        return self.base.put_cluster_data(data)

    def create_cluster_data(self, data: bytes) -> Revision:
        return self.base.create_cluster_data(data)

    def cas_cluster_data(
        self, data: bytes, revision: Revision, *, leadership: Leadership | None = None
    ) -> Revision:
        return self.base.cas_cluster_data(data, revision, leadership=leadership)

    def delete_cluster_data(self) -> None:
        self.base.delete_cluster_data()

    def election(self, candidate: str, ttl: float = DEFAULT_ELECTION_TTL) -> Election:
        return self.base.election(candidate, ttl)

    def get_leader(self) -> str | None:
        return self.base.get_leader()

    def watch(self, kinds: frozenset[ChangeKind] = ALL_CHANGES) -> Watch:
        return self.base.watch(kinds)

    def close(self) -> None:
        for st in self._publishers.values():
            st.close()
        self.base.close()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
