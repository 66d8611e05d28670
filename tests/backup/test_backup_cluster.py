"""Whole clusters with backups through the built-in ``directory`` method: PITR of a new
cluster from a backup taken with ``stolonctl backup create``, and an archive without a
hole across a failover (real keepers, sentinel, PostgreSQL; the embedded store)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stolon.testing.backup_cluster import failover_scenario, pitr_scenario

pytestmark = pytest.mark.integration


def test_pitr_from_a_backup_to_a_time(make_repository: Callable[[], Path]) -> None:
    repo_a, repo_b = make_repository(), make_repository()
    pitr_scenario("directory", {"path": str(repo_a)}, new_cluster_settings={"path": str(repo_b)})


def test_archive_has_no_hole_across_a_failover(repository: Path) -> None:
    failover_scenario("directory", {"path": str(repository)})
