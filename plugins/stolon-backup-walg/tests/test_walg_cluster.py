"""Whole clusters with backups through the ``walg`` method (real keepers, sentinel and
PostgreSQL; the embedded store): PITR of a new cluster from a backup taken with ``stolonctl
backup create``, and an archive without a hole across a failover. The binary is WAL-G's
stand-in, and the real ``wal-g`` when one is on PATH."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from walg_testing import walg_settings

from stolon.testing.backup_cluster import failover_scenario, pitr_scenario
from stolon.testing.pgsandbox import pg_os_user_or_skip

# whole clusters: several minutes on a loaded machine (the default per-test bound is 300s)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def make_repository() -> Iterator[Callable[[], Path]]:
    """Makes empty directories for ``WALG_FILE_PREFIX`` that PostgreSQL's user owns."""
    made: list[Path] = []

    def make() -> Path:
        user = pg_os_user_or_skip()
        base = Path(tempfile.mkdtemp(prefix="stolon-walg-repo-", dir="/tmp"))
        made.append(base)
        os.chmod(base, 0o700)
        user.chown(base)
        return base

    yield make
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


@pytest.fixture(params=["standin", "real"])
def walg_binary(request: pytest.FixtureRequest) -> Path:
    name = "walg_standin" if request.param == "standin" else "walg_real"
    return Path(request.getfixturevalue(name))


def test_pitr_from_a_backup_to_a_time(walg_binary: Path, make_repository: Callable[[], Path]) -> None:
    repo_a, repo_b = make_repository(), make_repository()
    pitr_scenario(
        "walg",
        walg_settings(walg_binary, repo_a),
        new_cluster_settings=walg_settings(walg_binary, repo_b),
    )


def test_archive_has_no_hole_across_a_failover(
    walg_binary: Path, make_repository: Callable[[], Path]
) -> None:
    failover_scenario("walg", walg_settings(walg_binary, make_repository()))
