"""contrib/docker: the Dockerfile passes hadolint and installs what the daemons need; the
compose file is valid for Docker Compose (``docker-compose config``, which checks it
against the compose-spec schema, no engine needed) and every command, flag, variable,
secret and config it uses exists. Docker cannot run here, so the topology the compose file
describes is run with the local cluster command in ``test_docker_topology.py``."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from stolon.cli.proxy import parse_listener
from stolon.plugins import load_plugins
from stolon.sentinel.daemon import load_initial_spec

from . import cli_surface
from .paths import CONTRIB, REPO
from .tools import PIP_HOW, tool

DOCKER = CONTRIB / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
PG_BIN = "/usr/lib/postgresql/15/bin"
#: Debian 12's python3
IMAGE_PYTHON = (3, 11)


# -- Dockerfile ---------------------------------------------------------------------------------
def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.partition(" ")
        out.append((keyword.upper(), args.strip()))
        buf = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_hadolint() -> None:
    hadolint = tool("hadolint", PIP_HOW)
    res = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_image_installs_postgres_python_and_tini() -> None:
    build, final = stages()
    assert [a for k, a in build if k == "FROM"] == ["debian:bookworm-slim AS build"]
    assert [a for k, a in final if k == "FROM"] == ["debian:bookworm-slim"]
    runs = " ".join(a for k, a in final if k == "RUN")
    for package in ("postgresql-15", "python3", "tini"):
        assert re.search(rf"\binstall\b[^;&]*\b{re.escape(package)}\b", runs), package
    assert "create_main_cluster = false" in runs
    # Debian 12's python satisfies the core's requires-python
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and IMAGE_PYTHON >= (3, 11)


def test_entrypoint_user_and_environment() -> None:
    final = stages()[-1]
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["/usr/bin/tini", "--"]
    cmd = json.loads(dict(final)["CMD"])
    assert cmd[0] in cli_surface.ENV_PREFIXES
    # a numeric non-root user (Kubernetes' runAsNonRoot can only check a number), the one
    # the postgres account is created with
    user = [a for k, a in final if k == "USER"][-1]
    assert user == "999:999"
    runs = " ".join(a for k, a in final if k == "RUN")
    assert "--uid 999" in runs and "--gid 999" in runs
    env = " ".join(a for k, a in final if k == "ENV")
    assert f"STKEEPER_PG_BIN_PATH={PG_BIN}" in env
    assert not cli_surface.unknown_env(re.findall(r"\b(ST[A-Z]+_[A-Z_]+)=", env))


def test_installed_plugins_exist_and_the_context_sends_them() -> None:
    build = stages()[0]
    arg = next(a for k, a in build if k == "ARG" and a.startswith("PLUGINS="))
    plugins = arg.split("=", 1)[1].strip('"').split()
    assert "stolon-store-etcd" in plugins
    for name in plugins:
        assert (REPO / "plugins" / name / "pyproject.toml").exists(), name
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!README.md", "!stolon/", "!plugins/"):
        assert needed in ignore
    for _, src in [(k, a) for k, a in build if k == "COPY"]:
        assert src.split()[0] == "."


def test_kubernetes_store_plugin_is_in_the_image_when_present() -> None:
    """The Kubernetes manifests use --store-backend kubernetes: once the plugin is in this
    checkout, the image must install it."""
    if not (REPO / "plugins" / "stolon-store-kubernetes" / "pyproject.toml").exists():
        pytest.skip("plugins/stolon-store-kubernetes is not in this checkout yet")
    arg = next(a for k, a in stages()[0] if k == "ARG" and a.startswith("PLUGINS="))
    assert "stolon-store-kubernetes" in arg


# -- compose ----------------------------------------------------------------------------------
def compose_model() -> dict[str, Any]:
    """The compose file with its anchors and merge keys resolved (PyYAML does both)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services_running(command: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose_model()["services"].items() if (s.get("command") or [""])[0] == command}


def test_compose_config_is_valid() -> None:
    compose = tool("docker-compose", PIP_HOW)
    res = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=DOCKER,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_config_catches_a_bad_key(tmp_path: Path) -> None:
    compose = tool("docker-compose", PIP_HOW)
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_perod:"))
    (tmp_path / "cluster-spec.json").write_text("{}")
    res = subprocess.run(
        [compose, "-f", str(bad), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert res.returncode != 0 and "stop_grace_perod" in res.stderr


def test_compose_topology() -> None:
    model = compose_model()
    assert len(services_running("stolon-keeper")) == 3
    assert len(services_running("stolon-sentinel")) == 2
    assert len(services_running("stolon-proxy")) == 1
    assert model["services"]["etcd"]["command"][0] == "etcd"


def test_compose_variables_are_flags_of_each_daemon() -> None:
    for name, svc in compose_model()["services"].items():
        command = svc["command"][0]
        if command == "etcd":
            continue
        assert command in cli_surface.DAEMONS, (name, command)
        env = svc.get("environment") or {}
        assert env, name
        for var in env:
            assert cli_surface.command_for_env(var) == command, (name, var)
        assert not cli_surface.unknown_env(env), f"{name}: not flags of {command}"
        assert not [v for v in env if v.endswith("_PASSWORD")], f"{name}: passwords only as files"
        assert env[cli_surface.env_var(command, "--store-backend")] == "etcdv3"
        assert env[cli_surface.env_var(command, "--store-endpoints")] == "http://etcd:2379"
        assert env[cli_surface.env_var(command, "--cluster-name")] == "stolon-cluster"


def test_compose_keepers() -> None:
    keepers = services_running("stolon-keeper")
    uids = set()
    for name, svc in keepers.items():
        env = svc["environment"]
        uids.add(env["STKEEPER_UID"])
        assert env["STKEEPER_PG_ADVERTISE_ADDRESS"] == name
        assert svc["user"] == "root" and "ALL" in svc["cap_drop"]
        assert svc["stop_grace_period"] == "90s"
        # password files are the secrets the service mounts
        secrets = set(svc["secrets"])
        for var in ("STKEEPER_PG_SU_PASSWORDFILE", "STKEEPER_PG_REPL_PASSWORDFILE"):
            path = env[var]
            assert path.startswith("/run/secrets/") and path.removeprefix("/run/secrets/") in secrets
        assert [v.split(":")[1] for v in svc["volumes"]] == ["/var/lib/stolon"]
        assert env["STKEEPER_DATA_DIR"].startswith("/var/lib/stolon/")
    assert len(uids) == len(keepers)
    for secret in compose_model()["secrets"].values():
        assert secret["file"].startswith("./secrets/")


def test_compose_sentinels_get_the_initial_spec() -> None:
    model = compose_model()
    for svc in services_running("stolon-sentinel").values():
        (config,) = svc["configs"]
        assert svc["environment"]["STSENTINEL_INITIAL_CLUSTER_SPEC"] == config["target"]
        source = model["configs"][config["source"]]["file"]
        load_initial_spec(str(DOCKER / source))


def test_compose_proxy_listeners_and_ports() -> None:
    ((_, proxy),) = services_running("stolon-proxy").items()
    env = proxy["environment"]
    listener = parse_listener(env["STPROXY_LISTENER"], env["STPROXY_LISTEN_ADDRESS"])
    assert listener.policy == "readonly"
    assert "readonly" in load_plugins().proxy_health_policies()
    published = {int(p.rsplit(":", 1)[1]) for p in proxy["ports"]}
    assert published == {int(env["STPROXY_PORT"]), listener.port}
