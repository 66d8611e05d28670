"""Stores: the protocol (:mod:`.base`), the typed client (:mod:`.client`), the key layout
for key-value backends (:mod:`.layout`) and the built-in embedded store (:mod:`.embedded`)."""

from __future__ import annotations

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


def open_backend(config: StoreConfig) -> Store:
    """Open the raw backend named by ``config.backend`` through the plugin registry."""
    from stolon.plugins import plugin_manager

    spec = plugin_manager().store_backend(config.backend)
    if not config.endpoints and spec.default_endpoints:
        from dataclasses import replace

        config = replace(config, endpoints=spec.default_endpoints)
    return spec.factory(config)


def open_store(config: StoreConfig) -> ClusterStore:
    """Open the typed cluster store for ``config``."""
    return ClusterStore(open_backend(config))


__all__ = [
    "ClusterStore",
    "ConflictError",
    "Election",
    "InfoKind",
    "Leadership",
    "NotFoundError",
    "NotLeaderError",
    "Store",
    "StoreConfig",
    "StoreConfigError",
    "StoreError",
    "UnreachableError",
    "Versioned",
    "open_backend",
    "open_store",
]
