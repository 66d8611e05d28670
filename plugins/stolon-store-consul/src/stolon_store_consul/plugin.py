"""The plugin module named by the ``stolon.store`` entry point ``consul``.

It provides the ``consul`` store backend and the ``stolonctl register`` command. It stays
cheap to import: the HTTP client is loaded when a store is opened or the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

import stolon
from stolon.store.backends import StoreBackendSpec
from stolon_store_consul import BACKEND_NAME, DEFAULT_ENDPOINT

if TYPE_CHECKING:
    from stolon.store.base import Store, StoreConfig

DEFAULT_ENDPOINTS = (DEFAULT_ENDPOINT,)


def open_store(config: StoreConfig) -> Store:
    from stolon_store_consul.store import ConsulStore

    return ConsulStore(config)


@stolon.hookimpl
def stolon_store_backends() -> Sequence[StoreBackendSpec]:
    return [
        StoreBackendSpec(
            name=BACKEND_NAME,
            factory=open_store,
            description="Consul KV (Go Stolon's consul key layout, session TTLs and lock election)",
            default_endpoints=DEFAULT_ENDPOINTS,
            endpoints_help=(
                "comma-separated Consul agent URLs, all http:// or all https:// (host:port alone means http)"
            ),
        )
    ]


@stolon.hookimpl
def stolonctl_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from stolon_store_consul.register import add_command

    add_command(subparsers)
