"""Fixtures of the Consul plugin's tests (a uniquely named module, so test modules can import
its helpers whatever other ``conftest`` modules are loaded).

``consul_emulator``
    a session-wide :class:`consul_emulator.ConsulEmulator` (never stopped; each test uses its
    own cluster name), with ``session_ttl_min`` lowered to 1 s so the contract's 2 s TTLs work.
``consul_emulator_control``
    a second, disposable emulator that a test may stop, freeze or restart; brought back to
    running after each test.
``real_consul``
    the endpoint of a real Consul agent from ``CONSUL_HTTP_ADDR``; skips when it is unset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from consul_emulator import ConsulEmulator

#: The emulator's session_ttl_min: half of the contract suite's 2 s TTLs.
EMULATOR_SESSION_TTL_MIN = 1.0
ENV_ADDR = "CONSUL_HTTP_ADDR"
#: The real agent's session_ttl_min in seconds (Consul's default is 10).
ENV_TTL_MIN = "CONSUL_SESSION_TTL_MIN"


def real_consul_endpoint() -> str | None:
    addr = os.environ.get(ENV_ADDR, "").strip()
    return addr or None


def real_consul_ttl_min() -> float:
    try:
        return float(os.environ.get(ENV_TTL_MIN, "") or 10.0)
    except ValueError:
        raise pytest.UsageError(f"{ENV_TTL_MIN} must be a number of seconds") from None


@pytest.fixture(scope="session")
def consul_emulator() -> Iterator[ConsulEmulator]:
    with ConsulEmulator(session_ttl_min=EMULATOR_SESSION_TTL_MIN) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def _consul_disposable() -> Iterator[ConsulEmulator]:
    with ConsulEmulator(session_ttl_min=EMULATOR_SESSION_TTL_MIN) as emulator:
        yield emulator


@pytest.fixture
def consul_emulator_control(_consul_disposable: ConsulEmulator) -> Iterator[ConsulEmulator]:
    _consul_disposable.ensure_running()
    yield _consul_disposable
    _consul_disposable.ensure_running()


@pytest.fixture(scope="session")
def real_consul() -> str:
    endpoint = real_consul_endpoint()
    if endpoint is None:
        pytest.skip(
            f"no real Consul: set {ENV_ADDR} (e.g. to the address of `consul agent -dev`) to run these"
        )
    return endpoint
