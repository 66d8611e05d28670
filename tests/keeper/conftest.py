"""Fixtures for keeper integration tests (real PostgreSQL, the embedded store)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stolon.model.uid import new_uid
from stolon.plugins import load_plugins
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.errors import BinaryNotFoundError
from stolon.store import open_store
from stolon.store.base import StoreConfig
from stolon.testing.pgversions import pg18_bin_dir
from stolon.testing.requirements import tool_missing

from .harness import FakeSentinel, Sandbox, TestCluster

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


def _have_postgres() -> bool:
    try:
        PgBinaries.find()
        return True
    except BinaryNotFoundError:
        return False


#: ``@pytest.mark.parametrize("cluster", PG_VERSIONS, indirect=True)``: the test runs on the
#: default PostgreSQL (Debian's 15 here) and on PostgreSQL 18 (stolon.testing.pgversions)
PG_VERSIONS = ["default", "pg18"]


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[TestCluster]:
    version = getattr(request, "param", "default")
    bin_path = str(pg18_bin_dir()) if version == "pg18" else ""
    if not bin_path and not _have_postgres():
        tool_missing(
            "postgres", "PostgreSQL binaries not found: install PostgreSQL 12+ to run the keeper tests"
        )
    sandbox = Sandbox()
    cfg = StoreConfig(
        backend="embedded", cluster_name=f"k-{new_uid()}", endpoints=(str(sandbox.path / "store.db"),)
    )
    store = open_store(cfg, PLUGINS)
    c = TestCluster(sandbox, cfg, store, FakeSentinel(store), pg_bin_path=bin_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def logs_on_failure(request: pytest.FixtureRequest, cluster: TestCluster) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for k in cluster.keepers.values():
            print(f"===== keeper {k.uid} log =====\n{k.output()[-6000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


__all__ = ["Path", "shutil"]
