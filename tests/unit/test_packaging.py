"""Packaging facts that must stay in step: the plugin distributions pin the core they were
released with, the ``all`` extra names every other extra, the development tools are the
same in the ``dev`` dependency group and in requirements-dev.txt, licenses are SPDX."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())


def _project(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((path / "pyproject.toml").read_text())
    return data


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_plugins_pin_the_core_they_are_released_with() -> None:
    core = _project(ROOT)["project"]["version"]
    assert PLUGINS
    for plugin in PLUGINS:
        project = _project(plugin)["project"]
        assert project["version"] == core, plugin.name
        stolon = [d for d in project["dependencies"] if _names([d]) == {"stolon"}]
        assert stolon == [f"stolon=={core}"], (plugin.name, stolon)


def test_every_plugin_is_an_extra_in_all_and_installed_for_development() -> None:
    root = _project(ROOT)
    extras: dict[str, list[str]] = root["project"]["optional-dependencies"]
    plugin_names = {_project(p)["project"]["name"] for p in PLUGINS}
    in_extras = set().union(*(_names(v) for k, v in extras.items() if k != "all"))
    assert plugin_names <= in_extras
    # `all` names the other extras (barman's tools left out) and the barman plugin itself
    (self_ref,) = [r for r in extras["all"] if r.startswith("stolon[")]
    named = set(self_ref[len("stolon[") : -1].split(","))
    assert named == set(extras) - {"all", "barman"}
    assert "stolon-backup-barman" in extras["all"]
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    for plugin in PLUGINS:
        assert f"-e ./plugins/{plugin.name}" in dev
    assert set(root["tool"]["uv"]["sources"]) == plugin_names


def test_dev_tools_are_a_dependency_group_and_the_same_in_requirements_dev() -> None:
    root = _project(ROOT)
    assert "dev" not in root["project"]["optional-dependencies"], "dev tools are not a published extra"
    group = root["dependency-groups"]["dev"]
    lines = [
        line.strip()
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-e"))
    ]
    assert lines == group


def test_licenses_are_spdx_expressions() -> None:
    for path in [ROOT, *PLUGINS]:
        project = _project(path)["project"]
        assert project["license"] == "Apache-2.0", path
        assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")], path
