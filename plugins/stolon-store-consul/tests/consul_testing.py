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

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from consul_emulator import ConsulEmulator

from stolon.testing.requirements import tool_missing

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
        tool_missing(
            "consul",
            f"no real Consul: set {ENV_ADDR} (e.g. to the address of `consul agent -dev`) to run these",
        )
    return endpoint


# -- Go Stolon on the wire -----------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
GO_TREE = FIXTURES / "go_consul_tree.json"
LOCK_FLAG = 0x2DDCCBC058A50C18


class LibkvWire:
    """The HTTP requests Go Stolon's Consul backend (libkv v0.2.1 store/consul/consul.go,
    with Consul's api.Lock) sends, to play a Go Stolon component against a Consul."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False

    def close(self) -> None:
        self.http.close()

    def session(self, behavior: str, ttl: str, lock_delay: str = "1ms") -> str:
        body = {"Behavior": behavior, "TTL": ttl, "LockDelay": lock_delay}
        r = self.http.put(f"{self.url}/v1/session/create", json=body, timeout=5)
        r.raise_for_status()
        return str(r.json()["ID"])

    def acquire(self, key: str, value: bytes, session: str, flags: int = LOCK_FLAG) -> bool:
        r = self.http.put(
            f"{self.url}/v1/kv/{key}", params={"acquire": session, "flags": str(flags)}, data=value, timeout=5
        )
        r.raise_for_status()
        return r.json() is True

    def put(self, key: str, value: bytes, flags: int = LOCK_FLAG) -> None:
        r = self.http.put(f"{self.url}/v1/kv/{key}", params={"flags": str(flags)}, data=value, timeout=5)
        r.raise_for_status()

    def get(self, key: str) -> dict[str, Any] | None:
        r = self.http.get(f"{self.url}/v1/kv/{key}", timeout=5)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return dict(r.json()[0])

    def value(self, key: str) -> bytes | None:
        got = self.get(key)
        return base64.b64decode(got["Value"]) if got is not None and got.get("Value") else None


def load_go_tree(url: str, cluster_name: str) -> dict[str, str]:
    """Write the hand-made Go Stolon tree of ``fixtures/go_consul_tree.json`` for
    ``cluster_name`` as libkv would (a session per TTL'd key, acquired with it); returns the
    fixture's session names -> the session ids."""
    tree = json.loads(GO_TREE.read_text())
    wire = LibkvWire(url)
    try:
        sessions = {
            name: wire.session(s["Behavior"], s["TTL"], s["LockDelay"])
            for name, s in tree["sessions"].items()
        }
        for kv in tree["kv"]:
            key = kv["key"].replace(f"/{tree['cluster']}/", f"/{cluster_name}/", 1)
            if "json" in kv:
                value = json.dumps(kv["json"], separators=(",", ":")).encode()  # Go's json.Marshal
            else:
                value = kv["text"].encode()
            if kv.get("session"):
                assert wire.acquire(key, value, sessions[kv["session"]], kv["flags"])
            else:
                wire.put(key, value, kv["flags"])
    finally:
        wire.close()
    return sessions
