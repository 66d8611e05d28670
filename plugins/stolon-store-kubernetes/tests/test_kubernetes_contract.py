"""The shared store contract: against the emulator here, against a real cluster when
``KUBECONFIG`` names one (kind, minikube; see the plugin's README)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kube_testing import EmulatorEnv, PodPerDaemonStore, RealKube

from stolon.store.base import Store, StoreConfig
from stolon.testing.store_contract import ServerControl, StoreContract, unique_cluster_name


def _self_pod(pods: EmulatorEnv | RealKube, cluster: str) -> str:
    """The pod the store under test runs in (a keeper's), as POD_NAME."""
    name = f"{cluster}-self"
    pods.add_pod(name, "stolon-keeper", cluster)
    return name


class _PodPerDaemon:
    """Publishing through one pod per (kind, uid): see :class:`PodPerDaemonStore`."""

    pods: EmulatorEnv | RealKube

    @pytest.fixture
    def open_store(self, store_config: StoreConfig) -> Iterator[Callable[[], Store]]:
        opened: list[Store] = []

        def factory() -> Store:
            st = PodPerDaemonStore(store_config, self.pods)
            opened.append(st)
            return st

        yield factory
        for st in opened:
            st.close()


class TestKubernetesContractOnEmulator(_PodPerDaemon, StoreContract):
    @pytest.fixture
    def store_config(self, kube_emulator: EmulatorEnv) -> StoreConfig:
        self.pods = kube_emulator
        cluster = unique_cluster_name()
        return kube_emulator.store_config(cluster, pod_name=_self_pod(kube_emulator, cluster))

    @pytest.fixture
    def stoppable_store_config(self, kube_emulator_control: EmulatorEnv) -> StoreConfig:
        cluster = unique_cluster_name()
        return kube_emulator_control.store_config(cluster, pod_name=_self_pod(kube_emulator_control, cluster))

    @pytest.fixture
    def server_control(self, kube_emulator_control: EmulatorEnv) -> ServerControl:
        return kube_emulator_control.emulator


class TestKubernetesContractOnRealCluster(_PodPerDaemon, StoreContract):
    @pytest.fixture
    def store_config(self, real_kube: RealKube) -> StoreConfig:
        self.pods = real_kube
        cluster = unique_cluster_name()
        return real_kube.store_config(cluster, pod_name=_self_pod(real_kube, cluster))
