"""The built-in ``command`` fencing method against the fencing-method contract kit, with
real commands: a script that records whom it fenced, ``/bin/false`` and a script that hangs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stolon.testing.fencing_contract import FencingMethodContract


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


class TestCommandFencing(FencingMethodContract):
    method_name = "command"
    invalid_configs = (
        {},
        {"command": "/usr/local/bin/fence-node"},
        {"command": []},
        {"command": ["/bin/true"], "comand": ["/bin/true"]},
        {"command": ["/bin/true"], "env": {"FENCE_USER": 1}},
    )

    @pytest.fixture
    def fence_log(self, tmp_path: Path) -> Path:
        return tmp_path / "fenced.log"

    @pytest.fixture
    def fencing_config(self, tmp_path: Path, fence_log: Path) -> dict[str, Any]:
        # the command gets the old master's keeper UID, host and DB UID as arguments
        return {
            "command": [_script(tmp_path / "fence.sh", f'echo "$1" >> {fence_log}; echo "powered off $1"')]
        }

    @pytest.fixture
    def failing_config(self) -> dict[str, Any] | None:
        return {"command": ["/bin/false"]}

    @pytest.fixture
    def hanging_config(self, tmp_path: Path) -> dict[str, Any] | None:
        return {"command": [_script(tmp_path / "hang.sh", "exec sleep 300")]}

    @pytest.fixture
    def fenced_targets(self, fence_log: Path) -> Callable[[], list[str]] | None:
        return lambda: fence_log.read_text().split() if fence_log.exists() else []
