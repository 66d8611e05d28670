"""The shared store contract on Consul: against the emulator always, against a real Consul
agent when ``CONSUL_HTTP_ADDR`` is set (skipped with that reason otherwise)."""

from __future__ import annotations

import pytest
from consul_emulator import ConsulEmulator
from consul_testing import real_consul_ttl_min

from stolon.store.base import StoreConfig
from stolon.testing.store_contract import ServerControl, StoreContract, unique_cluster_name


class TestConsulContractOnEmulator(StoreContract):
    @pytest.fixture
    def store_config(self, consul_emulator: ConsulEmulator) -> StoreConfig:
        return StoreConfig(
            backend="consul", cluster_name=unique_cluster_name(), endpoints=consul_emulator.endpoints
        )

    @pytest.fixture
    def stoppable_store_config(self, consul_emulator_control: ConsulEmulator) -> StoreConfig:
        return StoreConfig(
            backend="consul", cluster_name=unique_cluster_name(), endpoints=consul_emulator_control.endpoints
        )

    @pytest.fixture
    def server_control(self, consul_emulator_control: ConsulEmulator) -> ServerControl:
        return consul_emulator_control


class TestConsulContractOnRealConsul(StoreContract):
    """Run with ``CONSUL_HTTP_ADDR=127.0.0.1:8500`` against ``consul agent -dev``; TTLs are
    twice the agent's session_ttl_min (``CONSUL_SESSION_TTL_MIN``, default 10 s)."""

    info_ttl = election_ttl = 2 * real_consul_ttl_min()

    @pytest.fixture
    def store_config(self, real_consul: str) -> StoreConfig:
        return StoreConfig(backend="consul", cluster_name=unique_cluster_name(), endpoints=(real_consul,))
