"""Fencing: the spec (strict input, validation), the built-in ``command`` method with real
commands, and the sentinel's runner (order, policy-independent outcome, timeout, spans)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stolon.fencing.base import FencingError, FencingTarget
from stolon.fencing.command import CommandFencer
from stolon.fencing.runner import FencingRunner
from stolon.hookspecs import MethodSpec
from stolon.model import ClusterSpec, ModelError, SpecError
from stolon.model.spec import FencingSpec
from stolon.plugins import load_plugins

TARGET = FencingTarget(cluster_name="c1", keeper_uid="keeper1", db_uid="db1", host="10.0.0.1", port="5432")


def spec(fencing: Any) -> ClusterSpec:
    return ClusterSpec.from_obj({"initMode": "new", "fencing": fencing}, strict=True)


# -- spec ------------------------------------------------------------------------------------


def test_spec_round_trip_and_defaults() -> None:
    s = spec({"methods": [{"name": "command", "config": {"command": ["/bin/true"]}}]})
    s.validate()
    assert s.fencing is not None and s.fencing.enabled
    assert s.fencing.effective_policy == "required" and str(s.fencing.effective_timeout) == "10s"
    assert json.loads(s.dumps())["fencing"] == {
        "methods": [{"name": "command", "config": {"command": ["/bin/true"]}}]
    }
    assert not FencingSpec(policy="required").enabled  # no methods: nothing to fence


@pytest.mark.parametrize(
    ("fencing", "path", "message"),
    [
        ({"method": []}, "fencing.method", 'unknown field (did you mean "methods"?)'),
        ({"methods": [{"name": "command", "conf": {}}]}, "fencing.methods[0].conf", "unknown field"),
        ({"methods": {"name": "command"}}, "fencing.methods", "expected an array"),
        (
            {"methods": [{"name": "command", "config": ["x"]}]},
            "fencing.methods[0].config",
            "expected an object",
        ),
        ({"timeout": 10}, "fencing.timeout", "expected a duration string"),
        ({"policy": True}, "fencing.policy", "expected a string"),
    ],
)
def test_spec_strict_input(fencing: Any, path: str, message: str) -> None:
    with pytest.raises(ModelError) as e:
        spec(fencing)
    assert e.value.path == path and message in e.value.message


@pytest.mark.parametrize(
    ("fencing", "path", "message"),
    [
        ({"methods": [{"config": {}}]}, "fencing.methods[0].name", "is required"),
        ({"methods": [{"name": " command"}]}, "fencing.methods[0].name", "is required"),
        ({"policy": "always"}, "fencing.policy", "unknown policy 'always'"),
        ({"timeout": "0s"}, "fencing.timeout", "must be positive"),
        ({"timeout": "-1s"}, "fencing.timeout", "must be positive"),
    ],
)
def test_spec_validation(fencing: Any, path: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        spec(fencing).validate()
    assert e.value.path == path and message in e.value.message


def test_spec_patch_is_checked_strictly() -> None:
    ClusterSpec.check_patch({"fencing": {"policy": "best-effort", "timeout": "5s"}})
    with pytest.raises(ModelError) as e:
        ClusterSpec.check_patch({"fencing": {"polcy": "best-effort"}})
    assert e.value.path == "fencing.polcy"


# -- the command method ------------------------------------------------------------------------


def script(tmp_path: Path, body: str) -> str:
    f = tmp_path / "fence.sh"
    f.write_text("#!/bin/sh\n" + body)
    f.chmod(0o755)
    return str(f)


def test_command_gets_the_old_master_as_arguments_and_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = script(tmp_path, f'echo "$@" > {out}; echo "$STOLON_FENCE_PORT $STOLON_FENCE_CLUSTER $X"; exit 0\n')
    fencer = CommandFencer.from_config({"command": [cmd, "--hard"], "env": {"X": "x1"}})
    detail = fencer.fence(TARGET, 5)
    assert out.read_text().split() == ["--hard", "keeper1", "10.0.0.1", "db1"]
    assert detail == "exit status 0: 5432 c1 x1"


def test_command_failure_and_timeout(tmp_path: Path) -> None:
    fencer = CommandFencer.from_config({"command": [script(tmp_path, "echo no route to host >&2; exit 3\n")]})
    with pytest.raises(FencingError, match="exited with status 3: no route to host"):
        fencer.fence(TARGET, 5)
    slow = CommandFencer.from_config({"command": [script(tmp_path, "sleep 30 & sleep 30\n")]})
    start = time.monotonic()
    with pytest.raises(FencingError, match=r"timed out after 0.5s \(killed\)"):
        slow.fence(TARGET, 0.5)
    assert time.monotonic() - start < 5  # the whole process group was killed
    with pytest.raises(FencingError, match="cannot run /nonexistent"):
        CommandFencer.from_config({"command": ["/nonexistent"]}).fence(TARGET, 1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "command must be a non-empty list of strings"),
        ({"command": "/bin/true"}, "command must be a non-empty list of strings"),
        ({"command": ["/bin/true", 1]}, "command must be a non-empty list of strings"),
        ({"command": ["/bin/true"], "env": {"A": 1}}, "env must be an object of strings"),
        ({"command": ["/bin/true"], "shell": True}, "unknown setting 'shell'"),
    ],
)
def test_command_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CommandFencer.from_config(config)


def test_command_is_a_builtin_plugin() -> None:
    methods = load_plugins({}).fencing_methods()
    assert methods["command"].factory == CommandFencer.from_config


# -- the runner -------------------------------------------------------------------------------


class Fake:
    def __init__(self, result: str | Exception, delay: float = 0.0) -> None:
        self.result, self.delay, self.calls = result, delay, 0

    def fence(self, target: FencingTarget, timeout: float) -> str:
        self.calls += 1
        time.sleep(self.delay)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _returns(fake: Fake) -> Callable[[dict[str, Any]], Fake]:
    return lambda cfg: fake


def _bad_config(cfg: dict[str, Any]) -> Fake:
    raise ValueError("command is required")


def runner(
    fakes: dict[str, Fake], notified: list[Any] | None = None
) -> tuple[FencingRunner, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    methods = {n: MethodSpec(n, _returns(f), "fake") for n, f in fakes.items()}
    methods["bad"] = MethodSpec("bad", _bad_config, "x")
    notify = (lambda t, o: notified.append((t, o))) if notified is not None else None
    return FencingRunner(lambda: methods, provider.get_tracer("t"), notify), exporter


def fspec(*names: str, timeout: str = "5s") -> FencingSpec:
    return FencingSpec.from_obj({"methods": [{"name": n} for n in names], "timeout": timeout})


def test_runner_tries_methods_in_order_until_one_succeeds() -> None:
    a, b, c = Fake(FencingError("ipmi unreachable")), Fake("powered off"), Fake("never called")
    notified: list[Any] = []
    run, exporter = runner({"a": a, "b": b, "c": c}, notified)
    outcome = run.run(TARGET, fspec("nosuch", "bad", "a", "b", "c"))
    assert outcome.fenced and outcome.db_uid == "db1"
    assert [(x.method, x.ok) for x in outcome.attempts] == [
        ("nosuch", False), ("bad", False), ("a", False), ("b", True)
    ]  # fmt: skip
    assert "unknown fencing method 'nosuch' (installed: a, b, bad, c)" in outcome.attempts[0].detail
    assert outcome.attempts[1].detail == "invalid config: command is required"
    assert outcome.attempts[2].detail == "ipmi unreachable" and outcome.attempts[3].detail == "powered off"
    assert c.calls == 0 and notified == [(TARGET, outcome)]
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["sentinel.fencing"].attributes["stolon.fencing.fenced"] is True  # type: ignore[index]
    method_spans = [s for s in exporter.get_finished_spans() if s.name == "sentinel.fencing.method"]
    assert [s.attributes["stolon.fencing.method"] for s in method_spans] == ["nosuch", "bad", "a", "b"]  # type: ignore[index]
    parent = spans["sentinel.fencing"].context
    assert parent is not None
    assert all(s.parent is not None and s.parent.span_id == parent.span_id for s in method_spans)


def test_runner_timeout_bounds_the_whole_attempt() -> None:
    slow, never = Fake("late", delay=3), Fake("ok")
    run, _ = runner({"slow": slow, "never": never})
    start = time.monotonic()
    outcome = run.run(TARGET, fspec("slow", "never", timeout="500ms"))
    assert time.monotonic() - start < 2.0
    assert not outcome.fenced
    assert [(x.method, x.detail) for x in outcome.attempts] == [
        ("slow", "timed out after 0.5s"),
        ("never", "not tried: fencing.timeout (0.5s) used up"),
    ]
    assert never.calls == 0


def test_a_failing_notification_hook_does_not_change_the_outcome() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def boom(t: FencingTarget, o: Any) -> None:
        raise RuntimeError("alerting is down")

    run = FencingRunner(
        lambda: {"a": MethodSpec("a", lambda cfg: Fake("ok"), "")}, provider.get_tracer("t"), boom
    )
    assert run.run(TARGET, fspec("a")).fenced
