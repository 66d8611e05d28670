"""Stores: the protocol (:mod:`.base`), the typed client (:mod:`.client`), backends by name
and opening a store (:mod:`.backends`), the key layout for key-value backends
(:mod:`.layout`) and the built-in embedded store (:mod:`.embedded`)."""

from __future__ import annotations

from stolon.store.backends import StoreBackends, StoreBackendSpec, open_backend, open_store
from stolon.store.base import (
    ConflictError,
    Election,
    InfoKind,
    Leadership,
    NotFoundError,
    NotLeaderError,
    Store,
    StoreConfig,
    StoreConfigError,
    StoreError,
    UnreachableError,
    Versioned,
)
from stolon.store.client import ClusterStore

__all__ = [
    "ClusterStore",
    "ConflictError",
    "Election",
    "InfoKind",
    "Leadership",
    "NotFoundError",
    "NotLeaderError",
    "Store",
    "StoreBackendSpec",
    "StoreBackends",
    "StoreConfig",
    "StoreConfigError",
    "StoreError",
    "UnreachableError",
    "Versioned",
    "open_backend",
    "open_store",
]
