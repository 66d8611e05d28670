"""Plugin discovery through real entry points of a fake installed distribution.

The distribution is a ``*.dist-info`` directory on ``PYTHONPATH`` of a child process, which
is how ``importlib.metadata`` (and so stevedore) finds installed packages.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stolon.plugins import load_plugins

FAKE_MODULES = {
    "stolon_fake_good.py": """
        import stolon
        from stolon.hookspecs import MethodSpec

        @stolon.hookimpl
        def stolon_fencing_methods():
            return [MethodSpec(name="good", factory=lambda cfg: None, description="a fake fencing method")]
    """,
    "stolon_fake_broken.py": """
        raise ImportError("this plugin needs a library that is not installed")
    """,
    "stolon_fake_typo.py": """
        import stolon

        @stolon.hookimpl
        def stolon_store_backendz():
            return []
    """,
}

ENTRY_POINTS = """
[stolon.fencing]
good = stolon_fake_good

[stolon.store]
broken = stolon_fake_broken
typo = stolon_fake_typo
"""


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    for name, body in FAKE_MODULES.items():
        (site / name).write_text(textwrap.dedent(body))
    info = site / "stolon_fake_plugins-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stolon-fake-plugins\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def list_plugins(site: Path, **env: str) -> tuple[dict[str, dict[str, object]], str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STOLON_")}
    full_env.update(env, PYTHONPATH=str(site), XDG_CACHE_HOME=str(site / ".cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "stolon.cli.stolonctl", "plugins", "-f", "json"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {f"{r['kind']}:{r['name']}": r for r in json.loads(proc.stdout)}, proc.stderr


def test_builtin_embedded_store_is_a_plugin() -> None:
    pm = load_plugins({})
    rec = next(r for r in pm.records if r.registered_name == "store:embedded")
    assert rec.loaded and rec.distribution == "stolon" and rec.builtin
    assert "embedded" in pm.store_backends()
    assert pm.get_plugin("store:embedded") is not None


def test_failures_are_reported_per_plugin(fake_site: Path) -> None:
    recs, stderr = list_plugins(fake_site)
    good = recs["fencing:good"]
    assert good["state"] == "loaded"
    assert good["distribution"] == "stolon-fake-plugins" and good["version"] == "1.2.3"
    broken = recs["store:broken"]
    assert broken["state"] == "error"
    assert broken["distribution"] == "stolon-fake-plugins"
    assert "ImportError: this plugin needs a library that is not installed" in str(broken["error"])
    typo = recs["store:typo"]
    assert typo["state"] == "error"
    assert "stolon_store_backendz" in str(typo["error"])  # check_pending caught the misspelled hook
    assert recs["store:embedded"]["state"] == "loaded"  # the others still load
    assert "store:broken from stolon-fake-plugins 1.2.3 failed to load" in stderr


def test_block_and_autoload_switches(fake_site: Path) -> None:
    recs, _ = list_plugins(fake_site, STOLON_BLOCK_PLUGINS="broken,store:typo")
    assert recs["store:broken"]["state"] == "blocked"
    assert recs["store:typo"]["state"] == "blocked"
    assert recs["fencing:good"]["state"] == "loaded"

    recs, _ = list_plugins(fake_site, STOLON_DISABLE_PLUGIN_AUTOLOAD="1")
    assert recs["fencing:good"]["state"] == "not loaded"
    assert recs["store:broken"]["state"] == "not loaded"
    assert recs["store:embedded"]["state"] == "loaded"  # built-ins always load

    recs, _ = list_plugins(fake_site, STOLON_DISABLE_PLUGIN_AUTOLOAD="1", STOLON_PLUGINS="fencing:good")
    assert recs["fencing:good"]["state"] == "loaded"
    assert recs["store:broken"]["state"] == "not loaded"


def test_trace_hooks(fake_site: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOLON_")}
    env.update(PYTHONPATH=str(fake_site), STOLON_TRACE_HOOKS="1", XDG_CACHE_HOME=str(fake_site / ".cache"))
    code = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stdout);"
        "from stolon.plugins import load_plugins; pm = load_plugins(); print(sorted(pm.fencing_methods()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "stolon_fencing_methods" in out
    names = ast.literal_eval(out.strip().splitlines()[-1])
    # the built-in command method and the fake one (and any other installed, e.g. contrib's example)
    assert {"command", "good"} <= set(names)


def test_unknown_backend_error_lists_installed(fake_site: Path) -> None:
    pm = load_plugins({})
    from stolon.plugins import PluginError

    with pytest.raises(
        PluginError, match=r"unknown store backend 'zookeeper'.*installed backends are .*embedded"
    ):
        pm.store_backend("zookeeper")
    with pytest.raises(PluginError, match=r"etcd v2 API, which is not supported; use etcdv3"):
        pm.store_backend("etcd")
