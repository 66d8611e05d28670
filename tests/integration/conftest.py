"""Markers for the integration tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: a whole-cluster scenario taking about a minute or more (deselect with -m 'not slow')",
    )
