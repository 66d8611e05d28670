"""The shared store contract against a real etcd (``etcd`` in PATH or ``$ETCD_BIN``)."""

from __future__ import annotations

import pytest
from stolon_store_etcd.testing import EtcdServer

from stolon.store.base import StoreConfig
from stolon.testing.store_contract import ServerControl, StoreContract, unique_cluster_name

pytestmark = pytest.mark.integration


class TestEtcdContract(StoreContract):
    @pytest.fixture
    def store_config(self, etcd_server: EtcdServer) -> StoreConfig:
        return StoreConfig(
            backend="etcdv3", cluster_name=unique_cluster_name(), endpoints=etcd_server.endpoints
        )

    @pytest.fixture
    def stoppable_store_config(self, etcd_server_control: EtcdServer) -> StoreConfig:
        # The test that stops the server gets a disposable one, so the shared server
        # (and every other test's keys) is never disturbed.
        return StoreConfig(
            backend="etcdv3", cluster_name=unique_cluster_name(), endpoints=etcd_server_control.endpoints
        )

    @pytest.fixture
    def server_control(self, etcd_server_control: EtcdServer) -> ServerControl:
        return etcd_server_control
