"""The plugin module named by the ``stolon.store`` entry point ``etcdv3``.

It stays cheap to import: the client (urllib3, requests) is loaded when a store is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import stolon
from stolon.store.backends import StoreBackendSpec
from stolon_store_etcd import BACKEND_NAME

if TYPE_CHECKING:
    from stolon.store.base import Store, StoreConfig

DEFAULT_ENDPOINTS = ("http://127.0.0.1:2379",)


def open_store(config: StoreConfig) -> Store:
    from stolon_store_etcd.store import EtcdStore

    return EtcdStore(config)


@stolon.hookimpl
def stolon_store_backends() -> Sequence[StoreBackendSpec]:
    return [
        StoreBackendSpec(
            name=BACKEND_NAME,
            factory=open_store,
            description="etcd v3 API (etcd >= 3.4), Go Stolon's etcdv3 key layout and election",
            default_endpoints=DEFAULT_ENDPOINTS,
            endpoints_help=(
                "comma-separated etcd client URLs, all http:// or all https:// (host:port alone means http)"
            ),
        )
    ]
