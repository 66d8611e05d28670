"""The fencing-method contract, kept here until stolon ships its kit.

stolon's test kit for fencing plugins (``stolon.testing.fencing_contract``, issue 11) is
being added; this class has the same shape (class attributes ``method_name``,
``invalid_configs``, ``timeout_s``; fixtures ``fencing_config``, ``failing_config``,
``hanging_config``, ``fenced_targets``), so the plugin's test module switches to the kit
by changing one import (``test_example_http.py`` already prefers the kit when it is
installed). It checks what the sentinel relies on, through stolon's plugin registry and its
fencing runner: the method is discoverable, refuses bad configs with ValueError, fences
(again and again), fails with a message, and gives up within its timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from stolon.fencing.base import Fencer, FencingOutcome, FencingTarget
from stolon.fencing.runner import FencingRunner
from stolon.hookspecs import MethodSpec
from stolon.model.spec import FencingSpec
from stolon.plugins import load_plugins

#: the old master fenced by the contract tests
TARGET = FencingTarget(
    cluster_name="contract", keeper_uid="keeper0", db_uid="db0", host="127.0.0.1", port="5432"
)


class FencingMethodContract:
    method_name: str = ""
    invalid_configs: tuple[dict[str, Any], ...] = ()
    timeout_s: float = 1.0

    @pytest.fixture
    def fencing_config(self) -> dict[str, Any]:
        raise NotImplementedError("provide fencing_config: a config that fences TARGET")

    @pytest.fixture
    def failing_config(self) -> dict[str, Any] | None:
        return None

    @pytest.fixture
    def hanging_config(self) -> dict[str, Any] | None:
        return None

    @pytest.fixture
    def fenced_targets(self) -> Callable[[], list[str]] | None:
        return None

    def spec(self) -> MethodSpec:
        methods = load_plugins().fencing_methods()
        assert self.method_name in methods, f"{self.method_name!r} is not an installed stolon.fencing method"
        return methods[self.method_name]

    def fencer(self, config: dict[str, Any]) -> Fencer:
        fencer: Fencer = self.spec().factory(dict(config))
        return fencer

    def run(self, config: dict[str, Any], timeout: str = "30s") -> FencingOutcome:
        methods = {self.method_name: self.spec()}
        runner = FencingRunner(lambda: methods, TracerProvider().get_tracer("contract"))
        spec = FencingSpec.from_obj(
            {"methods": [{"name": self.method_name, "config": config}], "timeout": timeout}
        )
        return runner.run(TARGET, spec)

    def test_discoverable_with_a_description(self) -> None:
        spec = self.spec()
        assert spec.name == self.method_name and spec.description.strip()

    def test_bad_configs_are_refused_in_one_line(self) -> None:
        for config in self.invalid_configs:
            with pytest.raises(ValueError) as info:
                self.fencer(config)
            assert str(info.value) and "\n" not in str(info.value), config

    def test_fences_with_a_one_line_detail(self, fencing_config: dict[str, Any]) -> None:
        detail = self.fencer(fencing_config).fence(TARGET, 30.0)
        assert isinstance(detail, str) and detail.strip() and "\n" not in detail.strip()

    def test_fencing_again_succeeds(self, fencing_config: dict[str, Any]) -> None:
        fencer = self.fencer(fencing_config)
        fencer.fence(TARGET, 30.0)
        fencer.fence(TARGET, 30.0)

    def test_the_target_is_fenced(
        self, fencing_config: dict[str, Any], fenced_targets: Callable[[], list[str]] | None
    ) -> None:
        if fenced_targets is None:
            pytest.skip("no fenced_targets fixture")
        self.fencer(fencing_config).fence(TARGET, 30.0)
        assert TARGET.keeper_uid in fenced_targets()

    def test_failure_raises_with_a_reason(self, failing_config: dict[str, Any] | None) -> None:
        if failing_config is None:
            pytest.skip("no failing_config fixture")
        with pytest.raises(Exception) as info:
            self.fencer(failing_config).fence(TARGET, 30.0)
        assert str(info.value).strip()

    def test_through_the_sentinel_runner(
        self, fencing_config: dict[str, Any], failing_config: dict[str, Any] | None
    ) -> None:
        ok = self.run(fencing_config)
        assert ok.fenced and [a.method for a in ok.attempts] == [self.method_name]
        if failing_config is not None:
            bad = self.run(failing_config)
            assert not bad.fenced and bad.attempts[0].detail

    def test_gives_up_within_its_timeout(self, hanging_config: dict[str, Any] | None) -> None:
        """fence() must raise once its timeout is spent (the runner abandons a thread that
        does not, but the thread goes on). A few seconds of slack for a loaded machine."""
        if hanging_config is None:
            pytest.skip("no hanging_config fixture")
        fencer = self.fencer(hanging_config)
        result: dict[str, object] = {}

        def work() -> None:
            try:
                result["detail"] = fencer.fence(TARGET, self.timeout_s)
            except Exception as e:
                result["error"] = e

        started = time.monotonic()
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(self.timeout_s + 10.0)
        assert not worker.is_alive(), f"fence() still running {time.monotonic() - started:.1f}s after start"
        assert "error" in result, "a fence() that ran out of time must raise"
        assert not self.run(hanging_config, timeout=f"{int(self.timeout_s * 1000)}ms").fenced
