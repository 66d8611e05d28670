"""The ``etcdv3`` store backend for stolon (etcd >= 3.4, through etcd's JSON gateway).

The backend is found through the ``stolon.store`` entry point ``etcdv3``
(:mod:`stolon_store_etcd.plugin`); :class:`stolon_store_etcd.store.EtcdStore` is the store.
"""

from __future__ import annotations

BACKEND_NAME = "etcdv3"

__all__ = ["BACKEND_NAME"]
