"""The fencing-method contract test kit, importable by third-party fencing plugins.

A fencing method (``stolon.fencing`` entry point, hook ``stolon_fencing_methods``) is run
by the leader sentinel against an old master before a new one is promoted
(docs/fencing.md). The kit checks what the sentinel relies on:

* the method is installed and discoverable under its name, with a description;
* its factory refuses a bad config with ``ValueError`` (a one-line message), and builds a
  :class:`~stolon.fencing.base.Fencer` from a good one;
* ``fence()`` returns a one-line detail when the target is fenced, raises (preferably
  :class:`~stolon.fencing.base.FencingError`, with a message) when it is not, and may be
  called again for the same target (the sentinel retries under policy ``required``);
* it works from a worker thread, and through the sentinel's own runner
  (:class:`~stolon.fencing.runner.FencingRunner`): the outcome is fenced or not as the
  method said, with its detail;
* optionally, that it honours the timeout it is given (a method that can hang).

Use it from a test module of your plugin::

    from stolon.testing.fencing_contract import FencingMethodContract

    class TestMyFencing(FencingMethodContract):
        method_name = "ipmi"              # your stolon.fencing entry-point name
        invalid_configs = ({}, {"host": 42})

        @pytest.fixture
        def fencing_config(self, my_bmc) -> dict:
            return {"host": my_bmc.address}   # fences successfully

        @pytest.fixture
        def failing_config(self, my_bmc) -> dict | None:
            return {"host": my_bmc.unreachable_address}   # or None to skip those tests

        # optional
        @pytest.fixture
        def hanging_config(self) -> dict | None: ...      # fence() blocks past any timeout
        @pytest.fixture
        def fenced_targets(self, my_bmc) -> Callable[[], list[str]] | None: ...  # keeper UIDs fenced so far

The method is built through the plugin registry, so the kit also checks that the plugin is
installed. Nothing here needs PostgreSQL or a store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from stolon.fencing.base import Fencer, FencingOutcome, FencingTarget
from stolon.fencing.runner import FencingRunner
from stolon.hookspecs import FencingMethodSpec
from stolon.model.spec import FencingSpec
from stolon.plugins import load_plugins

#: The old master the kit fences (an address nothing listens on).
TARGET = FencingTarget(
    cluster_name="contract", keeper_uid="keeper_old", db_uid="db_old", host="127.0.0.1", port="9"
)


class FencingMethodContract:
    """The behaviour every fencing method must have (see the module docstring)."""

    #: the ``stolon.fencing`` entry-point name of the method under test
    method_name: str = ""
    #: configs the factory must refuse with ``ValueError``
    invalid_configs: tuple[dict[str, Any], ...] = ()
    #: the timeout handed to ``fence()`` in the timeout test (seconds)
    timeout_s: float = 1.0

    # -- fixtures the plugin provides ----------------------------------------------------------
    @pytest.fixture
    def fencing_config(self) -> dict[str, Any]:
        raise NotImplementedError("provide a fencing_config fixture: a config that fences successfully")

    @pytest.fixture
    def failing_config(self) -> dict[str, Any] | None:
        return None

    @pytest.fixture
    def hanging_config(self) -> dict[str, Any] | None:
        return None

    @pytest.fixture
    def fenced_targets(self) -> Callable[[], list[str]] | None:
        return None

    # -- helpers ------------------------------------------------------------------------------
    def spec(self) -> FencingMethodSpec:
        assert self.method_name, "set method_name to your stolon.fencing entry-point name"
        methods = load_plugins().fencing_methods()
        assert self.method_name in methods, f"{self.method_name!r} is not an installed stolon.fencing plugin"
        return methods[self.method_name]

    def fencer(self, config: dict[str, Any]) -> Fencer:
        return self.spec().factory(dict(config))

    def run(self, config: dict[str, Any], timeout: str = "30s") -> FencingOutcome:
        """Fence :data:`TARGET` through the sentinel's runner, as a failover does."""
        methods = {self.method_name: self.spec()}
        runner = FencingRunner(lambda: methods, TracerProvider().get_tracer("contract"))
        spec = FencingSpec.from_obj(
            {"methods": [{"name": self.method_name, "config": config}], "timeout": timeout}
        )
        return runner.run(TARGET, spec)

    # -- the contract -------------------------------------------------------------------------
    def test_discoverable_with_a_description(self) -> None:
        spec = self.spec()
        assert spec.name == self.method_name and spec.description.strip()

    def test_bad_configs_are_refused_with_one_line(self) -> None:
        for config in self.invalid_configs:
            with pytest.raises(ValueError) as info:
                self.fencer(config)
            message = str(info.value)
            assert message and "\n" not in message, (config, message)

    def test_fences_and_says_how_in_one_line(self, fencing_config: dict[str, Any]) -> None:
        detail = self.fencer(fencing_config).fence(TARGET, 30.0)
        assert isinstance(detail, str) and "\n" not in detail.strip()

    def test_fencing_again_succeeds(self, fencing_config: dict[str, Any]) -> None:
        """The sentinel may fence the same old master more than once (retries, a new leader)."""
        fencer = self.fencer(fencing_config)
        fencer.fence(TARGET, 30.0)
        fencer.fence(TARGET, 30.0)

    def test_reports_the_target_it_fenced(
        self, fencing_config: dict[str, Any], fenced_targets: Callable[[], list[str]] | None
    ) -> None:
        if fenced_targets is None:
            pytest.skip("no fenced_targets fixture: the method's effect is not observable here")
        self.fencer(fencing_config).fence(TARGET, 30.0)
        assert TARGET.keeper_uid in fenced_targets()

    def test_failure_raises_with_a_message(self, failing_config: dict[str, Any] | None) -> None:
        if failing_config is None:
            pytest.skip("no failing_config fixture")
        with pytest.raises(Exception) as info:
            self.fencer(failing_config).fence(TARGET, 30.0)
        assert str(info.value).strip(), "a fencing failure must say why"

    def test_works_from_a_worker_thread(self, fencing_config: dict[str, Any]) -> None:
        result: dict[str, object] = {}

        def work() -> None:
            try:
                result["detail"] = self.fencer(fencing_config).fence(TARGET, 30.0)
            except Exception as e:
                result["error"] = e

        worker = threading.Thread(target=work)
        worker.start()
        worker.join(60)
        assert not worker.is_alive() and "error" not in result, result

    def test_through_the_sentinel_runner(
        self, fencing_config: dict[str, Any], failing_config: dict[str, Any] | None
    ) -> None:
        ok = self.run(fencing_config)
        assert ok.fenced and ok.db_uid == TARGET.db_uid
        assert [a.method for a in ok.attempts] == [self.method_name] and ok.attempts[0].ok
        if failing_config is not None:
            bad = self.run(failing_config)
            assert not bad.fenced and not bad.attempts[0].ok and bad.attempts[0].detail

    def test_honours_its_timeout(self, hanging_config: dict[str, Any] | None) -> None:
        """A method that cannot fence in time must give up (raise) within the timeout it is
        given; the runner abandons a thread that doesn't, but it keeps running. The bound
        allows a few seconds of slack for a loaded machine."""
        if hanging_config is None:
            pytest.skip("no hanging_config fixture")
        fencer = self.fencer(hanging_config)
        result: dict[str, object] = {}

        def work() -> None:
            try:
                result["detail"] = fencer.fence(TARGET, self.timeout_s)
            except Exception as e:
                result["error"] = e

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(self.timeout_s + 10.0)
        assert not worker.is_alive(), f"fence() still running long after its {self.timeout_s:g}s timeout"
        assert "error" in result, "a fence() that ran out of time must raise, not report success"
        outcome = self.run(hanging_config, timeout=f"{int(self.timeout_s * 1000)}ms")
        assert not outcome.fenced
