"""The plugin surface is exactly what exists: every hookspec is documented in docs/hooks.md
(generated from the hookspecs), has a built-in implementation, and is exercised here
through its real call site by a ``test_hook_<name>`` test (the meta-tests check both, as
datasette's do)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stolon
from stolon.backup.base import BackupMethod
from stolon.backup.registry import open_method
from stolon.cli import ctl_commands, hookdoc
from stolon.cli.ctlcontext import CtlContext
from stolon.cli.stolonctl import build_parser, main
from stolon.fencing.base import FencingOutcome, FencingTarget
from stolon.hookspecs import hook_facts
from stolon.model.spec import FencingSpec
from stolon.plugins import load_plugins
from stolon.proxy.policies import HealthPolicy, plugin_policy
from stolon.sentinel.daemon import Sentinel, SentinelConfig
from stolon.store import open_store
from stolon.store.base import Store, StoreConfig

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

HOOKS = [f.__name__ for f in hookdoc.hookspec_functions()]
TARGET = FencingTarget("c", "keeper1", "db1", "127.0.0.1", "5432")


# -- meta-tests ------------------------------------------------------------------------------------


def test_the_hookspecs_are_the_expected_ones() -> None:
    assert HOOKS == [
        "stolon_store_backends",
        "stolon_fencing_methods",
        "stolon_backup_methods",
        "stolon_proxy_health_policies",
        "stolon_fencing_done",
        "stolonctl_add_commands",
    ]
    pm = load_plugins({"STOLON_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert sorted(HOOKS) == sorted(n for n in vars(pm.hook) if not n.startswith("_"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_is_documented(hook: str) -> None:
    page = hookdoc.PAGE.read_text(encoding="utf-8")
    assert f"\n## {hook}\n" in page
    facts = hook_facts(getattr(stolon.hookspecs, hook))
    assert facts.called_by and facts.when


def test_docs_hooks_md_is_generated_from_the_hookspecs() -> None:
    assert hookdoc.PAGE.read_text(encoding="utf-8") == hookdoc.render(), (
        "docs/hooks.md is stale: run scripts/gen-hooks-doc"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_is_exercised_by_a_test(hook: str) -> None:
    tests = [name for name in globals() if name.startswith("test_hook_")]
    assert f"test_hook_{hook}" in tests, f"hook {hook} has no test_hook_{hook} in {__name__}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_has_a_builtin_implementation(hook: str) -> None:
    assert hookdoc._builtin_implementations()[hook], f"nothing of the stolon distribution implements {hook}"


# -- one test per hook, through its call site ---------------------------------------------------------


def test_hook_stolon_store_backends(tmp_path: Path) -> None:
    # the call site: open_store() looks the backend up by name
    store = open_store(StoreConfig("embedded", "hooks", (str(tmp_path / "store.db"),)), PLUGINS)
    try:
        assert isinstance(store.backend, Store)
        assert store.get_cluster_data() == (None, None)
    finally:
        store.close()
    spec = load_plugins({"STOLON_DISABLE_PLUGIN_AUTOLOAD": "1"}).store_backends()["embedded"]
    assert spec.name == "embedded" and spec.description


def _sentinel(tmp_path: Path) -> Sentinel:
    cfg = StoreConfig("embedded", "hooks", (str(tmp_path / "store.db"),))
    return Sentinel(SentinelConfig(store=cfg, initial_cluster_spec=None, uid="hooks"), PLUGINS)


def _fencing(*commands: str) -> FencingSpec:
    methods = [{"name": "command", "config": {"command": [c]}} for c in commands]
    return FencingSpec.from_obj({"methods": methods, "timeout": "10s"})


def test_hook_stolon_fencing_methods(tmp_path: Path) -> None:
    # the call site: the sentinel's fencing runner finds the spec's methods by name
    outcome = _sentinel(tmp_path).fencing_runner.run(TARGET, _fencing("/nonexistent/fence", "/bin/true"))
    assert outcome.fenced
    assert [(a.method, a.ok) for a in outcome.attempts] == [("command", False), ("command", True)]


def test_hook_stolon_backup_methods(tmp_path: Path) -> None:
    # the call site of the keeper and stolonctl: open_method()
    method = open_method(PLUGINS, "directory", {"path": str(tmp_path / "repo")})
    assert isinstance(method, BackupMethod)


def test_hook_stolon_proxy_health_policies() -> None:
    # the call site: a proxy listener loads its policy by name from the registry
    for name in ("master", "readonly"):
        assert isinstance(plugin_policy(PLUGINS, name, {}), HealthPolicy)


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[FencingTarget, FencingOutcome]] = []

    @stolon.hookimpl
    def stolon_fencing_done(self, target: FencingTarget, outcome: FencingOutcome) -> None:
        self.seen.append((target, outcome))


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    rec = _Recorder()
    PLUGINS.register(rec, name="test:recorder")
    yield rec
    PLUGINS.unregister(rec)


def test_hook_stolon_fencing_done(tmp_path: Path, recorder: _Recorder) -> None:
    sentinel = _sentinel(tmp_path)
    sentinel.start()  # registers the sentinel's own implementation (the fencing counter)
    try:
        failed = sentinel.fencing_runner.run(TARGET, _fencing("/bin/false"))
        fenced = sentinel.fencing_runner.run(TARGET, _fencing("/bin/true"))
    finally:
        sentinel.close()
    assert [o.fenced for _, o in recorder.seen] == [False, True]
    assert recorder.seen == [(TARGET, failed), (TARGET, fenced)]
    registry = sentinel.metrics.m.registry
    for result in ("fenced", "failed"):
        value = registry.get_sample_value("stolon_sentinel_fencing_total", {"result": result})
        assert value == 1.0, result
    assert not PLUGINS.is_registered(sentinel.fencing_counter)


class _HelloCommand:
    @stolon.hookimpl
    def stolonctl_add_commands(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--to", default="world")
        p.set_defaults(func=self.hello)

    @staticmethod
    def hello(ctx: CtlContext) -> int:
        ctx.out(f"hello {ctx.args.to}")
        return 3


def test_hook_stolonctl_add_commands(capsys: pytest.CaptureFixture[str]) -> None:
    plugin = _HelloCommand()
    pm = PLUGINS
    pm.register(plugin, name="test:hello")
    try:
        assert main(["hello", "--to", "plugins"], pm) == 3
        assert capsys.readouterr().out == "hello plugins\n"
        # the built-in commands come through the same hook, first
        impls = [i.plugin_name for i in pm.hook.stolonctl_add_commands.get_hookimpls()]
        assert ctl_commands.NAME in impls and "test:hello" in impls
        sub = next(a for a in build_parser(PLUGINS)._actions if isinstance(a, argparse._SubParsersAction))
        names = list(sub.choices)
        builtin = _builtin_command_names()
        assert names[: len(builtin)] == builtin and "hello" in names[len(builtin) :]
        assert {"init", "status", "switchover", "plugins", "version"} <= set(builtin)
    finally:
        pm.unregister(plugin)
    assert main(["version"], pm) == 0
    assert capsys.readouterr().out.startswith("stolonctl version ")


def _builtin_command_names() -> list[str]:
    parser = argparse.ArgumentParser()
    ctl_commands.plugin.stolonctl_add_commands(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_builtin_commands_alone_without_the_process_plugin_manager(capsys: Any) -> None:
    pm = load_plugins({"STOLON_DISABLE_PLUGIN_AUTOLOAD": "1"})
    parser = build_parser(pm)
    assert pm.get_plugin(ctl_commands.NAME) is ctl_commands.plugin
    args = parser.parse_args(["version"])
    assert args.func is ctl_commands.cmd_version
    assert sys.modules["stolon.cli.ctl_commands"] is ctl_commands
