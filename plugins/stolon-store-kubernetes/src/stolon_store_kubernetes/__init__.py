"""Kubernetes store backend for stolon: Go Stolon's ConfigMap and pod-annotation layout,
sentinel election through a ``coordination.k8s.io/v1`` Lease."""

from __future__ import annotations

BACKEND_NAME = "kubernetes"

#: Go Stolon's names (internal/util/k8s.go): the ConfigMap (and our Lease) is
#: ``stolon-cluster-<cluster name>``; the cluster data is one annotation of it; every
#: daemon's info is one annotation of its own pod.
RESOURCE_PREFIX = "stolon-cluster"
CLUSTER_DATA_ANNOTATION = "stolon-clusterdata"
STATUS_ANNOTATION = "stolon-status"
#: Ours: what the reader needs to honour the writer's TTL (Go's pods don't have it).
STATUS_META_ANNOTATION = "stolon-status-meta"
#: The leader record of Go Stolon's sentinels (client-go's ConfigMap lock).
GO_LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

COMPONENT_LABEL = "component"
CLUSTER_LABEL = "stolon-cluster"

#: The only resource kind Go Stolon supports for ``--kube-resource-kind``.
RESOURCE_KIND_CONFIGMAP = "configmap"

__all__ = [
    "BACKEND_NAME",
    "CLUSTER_DATA_ANNOTATION",
    "CLUSTER_LABEL",
    "COMPONENT_LABEL",
    "GO_LEADER_ANNOTATION",
    "RESOURCE_KIND_CONFIGMAP",
    "RESOURCE_PREFIX",
    "STATUS_ANNOTATION",
    "STATUS_META_ANNOTATION",
]
