"""Whole clusters with backups through the ``barman`` method (real keepers, sentinel,
PostgreSQL and Barman Cloud, on moto's S3 server; the embedded store): PITR of a new cluster
from a backup taken with ``stolonctl backup create``, and an archive without a hole across a
failover."""

from __future__ import annotations

from typing import Any

import pytest

from stolon.testing.backup_cluster import failover_scenario, pitr_scenario

# whole clusters: several minutes on a loaded machine (the default per-test bound is 300s)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_pitr_from_a_backup_to_a_time(barman_settings: dict[str, Any]) -> None:
    source = {**barman_settings, "serverName": "source"}
    pitr_scenario("barman", source, new_cluster_settings={**barman_settings, "serverName": "restored"})


def test_archive_has_no_hole_across_a_failover(barman_settings: dict[str, Any]) -> None:
    failover_scenario("barman", {**barman_settings, "serverName": "prod"})
