"""The built-in proxy health policies (``master``, ``readonly``) against the
proxy-health-policy contract kit."""

from __future__ import annotations

import pytest

from stolon.testing.proxy_health_contract import HealthPolicyContract


class TestMasterPolicy(HealthPolicyContract):
    policy_name = "master"
    invalid_settings = ({"max-lag": "1MiB"}, {"include-master": "true"})


class TestReadOnlyPolicy(HealthPolicyContract):
    policy_name = "readonly"
    invalid_settings = (
        {"max-lag": "lots"},
        {"include-master": "maybe"},
        {"balance": "random"},
        {"max_lag": "1MiB"},
    )

    @pytest.fixture(params=[{}, {"max-lag": "2MiB", "include-master": "true", "balance": "round-robin"}])
    def policy_settings(self, request: pytest.FixtureRequest) -> dict[str, str]:
        settings: dict[str, str] = request.param
        return settings
