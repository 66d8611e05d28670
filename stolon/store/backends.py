"""Store backends by name: what a backend plugin provides (:class:`StoreBackendSpec`), what
the store layer needs to find one (:class:`StoreBackends`) and opening a store with it.

The store layer does not know where backends come from. A process builds its plugin
manager once (:func:`stolon.plugins.load_plugins`, at its entry point) and hands it down:
:class:`stolon.plugins.StolonPluginManager` is a :class:`StoreBackends`; so is any other
object with a ``store_backend`` method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from stolon.store.base import Store, StoreConfig
from stolon.store.client import ClusterStore


@dataclass(frozen=True)
class StoreBackendSpec:
    """A store backend a plugin provides (the ``stolon_store_backends`` hook returns them).

    ``factory`` builds a connected :class:`stolon.store.base.Store` from the common store
    flags; it raises :class:`stolon.store.base.StoreConfigError` for unusable settings.
    """

    name: str
    factory: Callable[[StoreConfig], Store]
    description: str
    #: Used when ``--store-endpoints`` is empty (Go Stolon: etcd http://127.0.0.1:2379).
    default_endpoints: tuple[str, ...] = ()
    #: What ``--store-endpoints`` means for this backend, for help and error messages.
    endpoints_help: str = "comma-separated URLs"


class StoreBackends(Protocol):
    """Finds a store backend by the name of ``--store-backend``."""

    def store_backend(self, name: str) -> StoreBackendSpec:
        """The backend called ``name``; an exception whose message says what to do when there
        is none (the plugin manager's names the installed ones and a failed plugin)."""
        ...


def open_backend(config: StoreConfig, backends: StoreBackends) -> Store:
    """Open the raw backend named by ``config.backend``, found in ``backends``."""
    spec = backends.store_backend(config.backend)
    if not config.endpoints and spec.default_endpoints:
        config = replace(config, endpoints=spec.default_endpoints)
    return spec.factory(config)


def open_store(config: StoreConfig, backends: StoreBackends) -> ClusterStore:
    """Open the typed cluster store for ``config`` with a backend found in ``backends``."""
    return ClusterStore(open_backend(config, backends))
