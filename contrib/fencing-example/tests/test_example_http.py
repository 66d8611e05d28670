"""The example-http method: the fencing contract against a power switch on loopback, then
what is specific to this method (outlet mapping, token file, a switch that never cuts
power, HTTP errors), and its listing by ``stolonctl plugins``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from power_switch_server import SwitchState, power_switch
from stolon_fencing_example import PowerSwitchFencer

from stolon.fencing.base import FencingError, FencingTarget
from stolon.testing.fencing_contract import TARGET, FencingMethodContract

OUTLETS = {TARGET.keeper_uid: "7", "keeper1": "8"}


@pytest.fixture
def switch() -> Iterator[tuple[str, SwitchState]]:
    with power_switch() as s:
        yield s


class TestExampleHttpContract(FencingMethodContract):
    method_name = "example-http"
    invalid_configs: tuple[dict[str, Any], ...] = (
        {},
        {"url": "ftp://pdu", "outlets": {"keeper0": "1"}},
        {"url": "http://pdu"},
        {"url": "http://pdu", "outlets": {}},
        {"url": "http://pdu", "outlets": {"keeper0": "1/../2"}},
        {"url": "http://pdu", "outlets": {"keeper0": "1"}, "tokenFile": 3},
        {"url": "http://pdu", "outlets": {"keeper0": "1"}, "passwd": "x"},
    )
    timeout_s = 1.0

    @pytest.fixture
    def fencing_config(self, switch: tuple[str, SwitchState]) -> dict[str, Any]:
        return {"url": switch[0], "outlets": OUTLETS}

    @pytest.fixture
    def failing_config(self) -> Iterator[dict[str, Any]]:
        with power_switch(SwitchState(mode="error")) as (url, _):
            yield {"url": url, "outlets": OUTLETS}

    @pytest.fixture
    def hanging_config(self) -> Iterator[dict[str, Any]]:
        with power_switch(SwitchState(mode="hang")) as (url, _):
            yield {"url": url, "outlets": OUTLETS}

    @pytest.fixture
    def fenced_targets(self, switch: tuple[str, SwitchState]) -> Callable[[], list[str]]:
        by_outlet = {v: k for k, v in OUTLETS.items()}
        return lambda: [by_outlet[o] for o in switch[1].switched_off]


def fencer(url: str, **extra: Any) -> PowerSwitchFencer:
    return PowerSwitchFencer.from_config({"url": url, "outlets": OUTLETS, **extra})


def test_switches_the_keepers_outlet_off_and_waits_for_it(switch: tuple[str, SwitchState]) -> None:
    url, state = switch
    detail = fencer(url).fence(TARGET, 10.0)
    assert state.switched_off == ["7"]
    assert "outlet 7" in detail and "off" in detail
    # the POST, then reads until the switch reported "off"
    assert [m for m, _, _ in state.requests] == ["POST"] + ["GET"] * (state.reads_until_off + 1)


def test_a_keeper_without_an_outlet_is_not_fenced(switch: tuple[str, SwitchState]) -> None:
    other = FencingTarget("c", "keeper9", "db9", "10.0.0.9", "5432")
    with pytest.raises(FencingError, match="no outlet configured for keeper keeper9"):
        fencer(switch[0]).fence(other, 5.0)
    assert switch[1].requests == []


def test_an_outlet_that_stays_on_is_a_failure_at_the_deadline() -> None:
    with power_switch(SwitchState(mode="stuck")) as (url, _), pytest.raises(FencingError, match="still 'on'"):
        fencer(url).fence(TARGET, 0.8)


def test_unreachable_switch() -> None:
    with power_switch() as (url, _):
        pass  # closed: nothing listens there any more
    with pytest.raises(FencingError, match="cannot reach"):
        fencer(url).fence(TARGET, 5.0)


def test_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    os.chmod(token, 0o600)
    with power_switch(SwitchState(token="s3cret")) as (url, state):
        fencer(url, tokenFile=str(token)).fence(TARGET, 10.0)
        assert {auth for _, _, auth in state.requests} == {"Bearer s3cret"}
        with pytest.raises(FencingError, match="HTTP 401"):
            fencer(url).fence(TARGET, 10.0)
        os.chmod(token, 0o644)
        with pytest.raises(FencingError, match="chmod 600"):
            fencer(url, tokenFile=str(token)).fence(TARGET, 10.0)


def test_listed_by_stolonctl_plugins() -> None:
    """Installed (editable, requirements-dev.txt): stolonctl finds it through its entry point."""
    out = subprocess.run(
        [sys.executable, "-m", "stolon.cli.stolonctl", "plugins", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)}
    row = rows[("fencing", "example-http")]
    assert row["distribution"] == "stolon-fencing-example" and row["state"] == "loaded", row
