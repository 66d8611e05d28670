"""The plugin module named by the ``stolon.store`` entry point ``kubernetes``.

It stays cheap to import: the official ``kubernetes`` client (about 1 s and 10-35 MB to
import, see docs/store-kubernetes.md) is loaded only when a store is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import stolon
from stolon.store.backends import StoreBackendSpec
from stolon_store_kubernetes import BACKEND_NAME

if TYPE_CHECKING:
    from stolon.store.base import Store, StoreConfig


def open_store(config: StoreConfig) -> Store:
    from stolon_store_kubernetes.store import KubernetesStore

    return KubernetesStore(config)


@stolon.hookimpl
def stolon_store_backends() -> Sequence[StoreBackendSpec]:
    return [
        StoreBackendSpec(
            name=BACKEND_NAME,
            factory=open_store,
            description=(
                "Kubernetes API: Go Stolon's ConfigMap and pod-annotation layout, sentinel election"
                " through a coordination.k8s.io/v1 Lease"
            ),
            endpoints_help=(
                "unused: the API server comes from the kubeconfig (--kubeconfig, $KUBECONFIG,"
                " ~/.kube/config) or the pod's service account"
            ),
        )
    ]
