"""Reading WAL-G's output: ``backup-list --json --detail``, ``--version`` and error lines.

``REAL_BACKUP_LIST`` is three entries of WAL-G's own sample of ``wal-g backup-list --json
--detail`` output (``cmd/pg/exporter/testdata/backup-list.json`` in github.com/wal-g/wal-g at
commit 43fb039f6ed24a8063a9a69c212f6742066942a6: a PostgreSQL 15 server on timeline 0x43,
full and delta backups), printed compact as WAL-G prints it without ``--pretty``. The field
names and types match ``internal.BackupTime`` and ``postgres.ExtendedMetadataDto`` in the
same sources.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from stolon_backup_walg.output import backup_info, error_line, parse_backup_list, parse_go_time, parse_version

from stolon.backup.base import BackupError

REAL_BACKUP_LIST = (
    '[{"backup_name":"base_000000430000030600000060","time":"2025-12-20T02:00:19.896Z",'
    '"wal_file_name":"000000430000030600000060","storage_name":"default",'
    '"start_time":"2025-12-20T02:00:01.793015Z","finish_time":"2025-12-20T02:00:18.538578Z",'
    '"date_fmt":"%Y-%m-%dT%H:%M:%S.%fZ","hostname":"superpg","data_dir":"/pgroot/data",'
    '"pg_version":150015,"start_lsn":3325915299880,"finish_lsn":3325916080832,"is_permanent":false,'
    '"system_identifier":7507672962298572862,"uncompressed_size":2604967632,"compressed_size":858502390},'
    '{"backup_name":"base_0000004300000388000000AC_D_000000430000038500000003","time":"2025-12-30T10:07:00.807Z",'
    '"wal_file_name":"0000004300000388000000AC","storage_name":"default",'
    '"start_time":"2025-12-30T10:06:51.293562Z","finish_time":"2025-12-30T10:07:00.682024Z",'
    '"date_fmt":"%Y-%m-%dT%H:%M:%S.%fZ","hostname":"superpg","data_dir":"/pgroot/data",'
    '"pg_version":150015,"start_lsn":3885536116952,"finish_lsn":3885536563600,"is_permanent":false,'
    '"system_identifier":7507672962298572862,"uncompressed_size":928772120,"compressed_size":386034756},'
    '{"backup_name":"base_000000430000035900000062","time":"2025-12-26T02:00:19.805Z",'
    '"wal_file_name":"000000430000035900000062","storage_name":"default",'
    '"start_time":"2025-12-26T02:00:01.427279Z","finish_time":"2025-12-26T02:00:19.645021Z",'
    '"date_fmt":"%Y-%m-%dT%H:%M:%S.%fZ","hostname":"superpg","data_dir":"/pgroot/data",'
    '"pg_version":150015,"start_lsn":3682431139880,"finish_lsn":3682432038696,"is_permanent":false,'
    '"system_identifier":7507672962298572862,"uncompressed_size":2716157648,"compressed_size":902940802}]\n'
)


def test_real_backup_list() -> None:
    backups = parse_backup_list(REAL_BACKUP_LIST)
    assert [b.id for b in backups] == [
        "base_000000430000030600000060",
        "base_000000430000035900000062",
        "base_0000004300000388000000AC_D_000000430000038500000003",
    ], "oldest first, by end time"
    first = backups[0]
    assert first.start_time == datetime(2025, 12, 20, 2, 0, 1, 793015, tzinfo=UTC)
    assert first.end_time == datetime(2025, 12, 20, 2, 0, 18, 538578, tzinfo=UTC)
    assert first.start_lsn == 3325915299880
    assert first.end_lsn == 3325916080832
    assert first.to_obj()["startLSN"] == "306/60000028"
    assert first.timeline == 0x43
    assert first.size == 858502390
    assert first.pg_major == 15
    assert first.system_id == "7507672962298572862"
    assert first.details["walFileName"] == "000000430000030600000060"
    assert first.details["uncompressedSize"] == "2604967632"
    assert first.details["hostname"] == "superpg"
    assert first.details["isPermanent"] == "false"


def test_pretty_output_parses_the_same() -> None:
    pretty = json.dumps(json.loads(REAL_BACKUP_LIST), indent=4)
    assert parse_backup_list(pretty) == parse_backup_list(REAL_BACKUP_LIST)


@pytest.mark.parametrize("stdout", ["[]\n", "", "  \n", "null\n"])
def test_no_backups(stdout: str) -> None:
    assert parse_backup_list(stdout) == []


def _entry(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(REAL_BACKUP_LIST)[0]
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        # the sentinel's time in the storage's local zone, nanoseconds
        (
            {"time": "2026-01-02T03:04:05.123456789+01:00", "start_time": None, "finish_time": None},
            lambda b: b.end_time == datetime(2026, 1, 2, 2, 4, 5, 123456, tzinfo=UTC),
        ),
        # a backup from a WAL-G without metadata: zero times fall back to the sentinel's time
        (
            {
                "start_time": "0001-01-01T00:00:00Z",
                "finish_time": "0001-01-01T00:00:00Z",
                "start_lsn": 0,
                "finish_lsn": 0,
            },
            lambda b: b.start_time == b.end_time == datetime(2025, 12, 20, 2, 0, 19, 896000, tzinfo=UTC),
        ),
        ({"compressed_size": 0}, lambda b: b.size == 2604967632),
        ({"wal_file_name": None}, lambda b: b.timeline == 0x43),
        ({"system_identifier": None}, lambda b: b.system_id == ""),
        ({"pg_version": 90624}, lambda b: b.pg_major == 9),
        ({"is_permanent": True}, lambda b: b.details["isPermanent"] == "true"),
    ],
)
def test_entry_variants(changes: dict[str, Any], check: Any) -> None:
    assert check(backup_info(_entry(**changes)))


@pytest.mark.parametrize(
    ("stdout", "words"),
    [
        ("INFO: 2026/01/01 00:00:00.000000 List backups\n", "not JSON"),
        ('{"backup_name": "x"}', "not a list of backups"),
        (json.dumps([_entry(backup_name="../../etc")]), "unusable backup_name"),
        (json.dumps([_entry(start_lsn="0/1")]), "start_lsn"),
        (json.dumps([_entry(time="yesterday", start_time=None, finish_time=None)]), "no usable time"),
    ],
)
def test_bad_backup_list(stdout: str, words: str) -> None:
    with pytest.raises(BackupError) as e:
        parse_backup_list(stdout)
    assert words in str(e.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-29T02:00:17.73Z", datetime(2025, 12, 29, 2, 0, 17, 730000, tzinfo=UTC)),
        ("2025-12-29T02:00:17Z", datetime(2025, 12, 29, 2, 0, 17, tzinfo=UTC)),
        ("2025-12-29T02:00:17.123456789-05:30", datetime(2025, 12, 29, 7, 30, 17, 123456, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("-", None),
        ("", None),
    ],
)
def test_go_time(text: str, expected: datetime | None) -> None:
    assert parse_go_time(text) == expected
    if expected is not None:
        assert parse_go_time(text).utcoffset() == timedelta(0)  # type: ignore[union-attr]
        assert expected.astimezone(timezone(timedelta(hours=1))) == expected


@pytest.mark.parametrize(
    ("stdout", "version"),
    [
        ("wal-g version v3.0.5\t1a2b3c4\t2024.11.26_10:11:12\tPostgreSQL\n", "v3.0.5"),
        ("wal-g version stolon-standin\tnone\tnone\tPostgreSQL\n", "stolon-standin"),
        ("something else\n", "something else"),
    ],
)
def test_version(stdout: str, version: str) -> None:
    assert parse_version(stdout) == version


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            "INFO: 2026/12/01 20:31:58.610543 LATEST backup is: 'base_000000010000000000000002'\n"
            "ERROR: 2026/12/01 20:32:00.572141 Failed to select backup: Backup 'base_x' does not exist.\n",
            "Failed to select backup: Backup 'base_x' does not exist.",
        ),
        (
            "ERROR: 2026/12/01 20:31:54.436423 Archive '00000002.history' does not exist.\n\n",
            "Archive '00000002.history' does not exist.",
        ),
        ("Error: unknown flag: --nope\nRun 'wal-g --help' for usage.\n", "unknown flag: --nope"),
        ("WARNING: 2026/12/01 20:31:54.436423 slow\nsome panic text\n", "some panic text"),
        ("", "no output"),
    ],
)
def test_error_line(output: str, line: str) -> None:
    assert error_line(output) == line
