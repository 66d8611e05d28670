"""The etcd fixtures of this plugin's test support (:mod:`stolon_store_etcd.fixtures`)."""

from stolon_store_etcd.fixtures import (  # noqa: F401 - fixtures, found by name
    etcd_server,
    etcd_server_control,
    etcd_server_disposable,
)
