"""The ``consul`` store backend for stolon, and ``stolonctl register``.

The backend is found through the ``stolon.store`` entry point ``consul``
(:mod:`stolon_store_consul.plugin`); :class:`stolon_store_consul.store.ConsulStore` is the
store and :mod:`stolon_store_consul.register` the Consul service registration loop.
"""

from __future__ import annotations

BACKEND_NAME = "consul"
#: Go Stolon's default Consul endpoint (internal/store/kvbacked.go).
DEFAULT_ENDPOINT = "http://127.0.0.1:8500"

__all__ = ["BACKEND_NAME", "DEFAULT_ENDPOINT"]
