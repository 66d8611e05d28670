"""Parsing barman-cloud output (samples from Barman 3.19.1 against moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from stolon_backup_barman.catalog import complete_backups, parse_backup_list, pg_major_of, tool_error

from stolon.backup.base import BackupError

#: one entry of barman-cloud-backup-list --format json (trimmed: copy_stats, paths)
SAMPLE: dict[str, Any] = {
    "backup_label": "'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\\n'",
    "backup_name": "stolon-20261201T203622-3b671722",
    "begin_offset": 40,
    "begin_time": "Tue Dec  1 20:36:23 2026",
    "begin_wal": "000000010000000000000002",
    "begin_xlog": "0/2000028",
    "cluster_size": 23133897,
    "compression": None,
    "data_checksums": "off",
    "deduplicated_size": None,
    "end_time": "Tue Dec  1 20:36:23 2026",
    "end_wal": "000000010000000000000002",
    "end_xlog": "0/2000100",
    "error": None,
    "server_name": "cloud",
    "size": None,
    "status": "DONE",
    "systemid": "7714437201776807292",
    "tablespaces": None,
    "timeline": 1,
    "version": 150018,
    "xlog_segment_size": 16777216,
    "backup_id": "20261201T203623",
    "begin_time_iso": "2026-12-01T20:36:23.177971+00:00",
    "end_time_iso": "2026-12-01T20:36:23.997574+00:00",
}


def test_a_done_backup_becomes_a_backup_info() -> None:
    (b,) = complete_backups(parse_backup_list(json.dumps({"backups_list": [SAMPLE]})))
    assert b.id == "20261201T203623"
    assert b.start_time == datetime(2026, 12, 1, 20, 36, 23, 177971, tzinfo=UTC)
    assert b.end_time == datetime(2026, 12, 1, 20, 36, 23, 997574, tzinfo=UTC)
    assert (b.start_lsn, b.end_lsn) == (0x2000028, 0x2000100)
    assert b.timeline == 1
    assert b.size == 23133897  # "size" is null: cluster_size
    assert b.pg_major == 15
    assert b.system_id == "7714437201776807292"
    assert b.details["backup_name"] == "stolon-20261201T203622-3b671722"
    assert b.details["begin_wal"] == "000000010000000000000002"
    assert "compression" not in b.details


def test_only_done_backups_oldest_first() -> None:
    later = {**SAMPLE, "backup_id": "20261201T210000", "end_time_iso": "2026-12-01T21:00:05+00:00"}
    failed = {**SAMPLE, "backup_id": "20261201T200000", "status": "FAILED"}
    started = {"backup_id": "20261201T220000", "status": "STARTED", "begin_xlog": None}
    items = parse_backup_list(json.dumps({"backups_list": [later, failed, SAMPLE, started]}))
    assert [b.id for b in complete_backups(items)] == ["20261201T203623", "20261201T210000"]


def test_empty_list() -> None:
    assert complete_backups(parse_backup_list('{"backups_list": []}')) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "not JSON"),
        ("[]", "no backups_list"),
        ('{"backups_list": {}}', "no backups_list"),
    ],
)
def test_unreadable_list(text: str, fragment: str) -> None:
    with pytest.raises(BackupError) as e:
        parse_backup_list(text)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"backup_id": "../x"}, "unusable id"),
        ({"begin_xlog": "nonsense"}, "unreadable field"),
        ({"end_time_iso": None}, "unreadable field"),
        ({"timeline": None}, "unreadable field"),
    ],
)
def test_unreadable_backup(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BackupError) as e:
        complete_backups([{**SAMPLE, **change}])
    assert fragment in str(e.value)


@pytest.mark.parametrize(("num", "major"), [(150018, 15), (90624, 9), (170000, 17), (0, 0)])
def test_pg_major(num: int, major: int) -> None:
    assert pg_major_of(num) == major


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "2026-12-01 20:29:22,823 [26566] ERROR: Barman cloud WAL restore exception: An error occurred"
            " (NoSuchBucket) when calling the ListObjectsV2 operation: The specified bucket does not exist\n",
            "Barman cloud WAL restore exception: An error occurred (NoSuchBucket) when calling the"
            " ListObjectsV2 operation: The specified bucket does not exist",
        ),
        (
            "2026-12-01 20:29:22,281 [26556] INFO: Found\n2026-12-01 20:29:22,281 [26556] ERROR: first\n"
            "2026-12-01 20:29:22,290 [26556] ERROR: second\n2026-12-01 20:29:22,291 [26556] INFO: bye\n",
            "second",
        ),
        ("Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'boto3'\n",
         "ModuleNotFoundError: No module named 'boto3'"),
        ("", ""),
    ],
)  # fmt: skip
def test_tool_error(stderr: str, expected: str) -> None:
    assert tool_error(stderr) == expected
