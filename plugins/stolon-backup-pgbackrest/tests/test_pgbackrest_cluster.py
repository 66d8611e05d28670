"""Whole clusters with backups through the ``pgbackrest`` method (real keepers, sentinel,
PostgreSQL and pgBackRest; the embedded store): PITR of a new cluster from a backup taken
with ``stolonctl backup create``, and an archive without a hole across a failover (only the
master archives with pgBackRest: after the promotion the new master's keeper pushes the
previous timeline's segments)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stolon_backup_pgbackrest.testing import pgbackrest_or_skip, repository

from stolon.testing.backup_cluster import failover_scenario, pitr_scenario
from stolon.testing.pgsandbox import pg_os_user_or_skip

# whole clusters: several minutes on a loaded machine (the default per-test bound is 300s)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def second_repository() -> Iterator[Path]:
    pgbackrest_or_skip()
    with repository(pg_os_user_or_skip()) as path:
        yield path


def test_pitr_from_a_backup_to_a_time(pgbackrest_repository: Path, second_repository: Path) -> None:
    source = {"repoPath": str(pgbackrest_repository), "stanza": "source"}
    pitr_scenario(
        "pgbackrest", source, new_cluster_settings={"repoPath": str(second_repository), "stanza": "restored"}
    )


def test_archive_has_no_hole_across_a_failover(pgbackrest_repository: Path) -> None:
    failover_scenario("pgbackrest", {"repoPath": str(pgbackrest_repository), "stanza": "prod"})
