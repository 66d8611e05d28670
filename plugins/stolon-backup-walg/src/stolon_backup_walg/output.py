"""Reading WAL-G's output: ``backup-list --json --detail``, ``--version`` and its log lines.

``backup-list --json --detail`` prints one JSON array (Go's ``encoding/json`` of
``postgres.BackupDetail``: ``internal.BackupTime`` and ``ExtendedMetadataDto``)::

    [{"backup_name": "base_000000430000030600000060", "time": "2025-12-20T02:00:19.896Z",
      "wal_file_name": "000000430000030600000060", "storage_name": "default",
      "start_time": "2025-12-20T02:00:01.793015Z", "finish_time": "2025-12-20T02:00:18.538578Z",
      "date_fmt": "%Y-%m-%dT%H:%M:%S.%fZ", "hostname": "superpg", "data_dir": "/pgroot/data",
      "pg_version": 150015, "start_lsn": 3325915299880, "finish_lsn": 3325916080832,
      "is_permanent": false, "system_identifier": 7507672962298572862,
      "uncompressed_size": 2604967632, "compressed_size": 858502390}]

LSNs are integers (``postgres.LSN`` is a ``uint64`` without a JSON method), times are Go's
RFC 3339 with up to nine fractional digits (``time`` is the sentinel object's modification
time, in the storage's zone); a backup taken by an old WAL-G without metadata has zero
times (``0001-01-01T00:00:00Z``) and LSNs. Log lines go to stderr as ``ERROR: 2006/01/02
15:04:05.000000 message`` (github.com/wal-g/tracelog), usage errors as ``Error: message``
(cobra).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stolon.backup.base import BACKUP_ID_RE, BackupError, BackupInfo

_GO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")
_WAL_NAME = re.compile(r"[0-9A-F]{24}")
_LOG_PREFIX = re.compile(r"^(ERROR|WARNING|INFO|FATAL|PANIC): \d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)? ?")
_VERSION = re.compile(r"\bversion\s+(\S+)")


def parse_go_time(text: str) -> datetime | None:
    """A Go ``time.Time`` from JSON (RFC 3339, nanoseconds cut to microseconds); None for
    Go's zero time or text that is not a time."""
    m = _GO_TIME.fullmatch(text.strip())
    if not m:
        return None
    frac = (m.group(2) or "").ljust(6, "0")[:6]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    value = datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")
    if value.year <= 1:
        return None
    return value.astimezone(UTC)


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BackupError(
            f"wal-g backup-list: {key} of {obj.get('backup_name')!r} is not an integer ({value!r})"
        )
    return value


def backup_info(obj: Mapping[str, Any]) -> BackupInfo:
    """One element of ``backup-list --json --detail`` as a :class:`BackupInfo`."""
    name = obj.get("backup_name")
    if not isinstance(name, str) or not BACKUP_ID_RE.fullmatch(name):
        raise BackupError(f"wal-g backup-list: unusable backup_name {name!r}")
    modified = parse_go_time(str(obj.get("time", "")))
    start = parse_go_time(str(obj.get("start_time", ""))) or modified
    end = parse_go_time(str(obj.get("finish_time", ""))) or modified
    if start is None or end is None:
        raise BackupError(f"wal-g backup-list: backup {name} has no usable time")
    wal = str(obj.get("wal_file_name") or "")
    if not _WAL_NAME.fullmatch(wal):
        found = _WAL_NAME.search(name)
        if not found:
            raise BackupError(f"wal-g backup-list: backup {name} names no WAL file")
        wal = found.group(0)
    compressed = obj.get("compressed_size")
    size = compressed if isinstance(compressed, int) and compressed > 0 else obj.get("uncompressed_size", 0)
    pg_version = obj.get("pg_version")
    pg_major = 0
    if isinstance(pg_version, int) and pg_version > 0:
        pg_major = pg_version // 10000
    sysid = obj.get("system_identifier")
    details = {
        "walFileName": wal,
        "storageName": str(obj.get("storage_name", "")),
        "hostname": str(obj.get("hostname", "")),
        "dataDir": str(obj.get("data_dir", "")),
        "isPermanent": str(bool(obj.get("is_permanent", False))).lower(),
        "uncompressedSize": str(obj.get("uncompressed_size", "")),
        "compressedSize": str(obj.get("compressed_size", "")),
    }
    return BackupInfo(
        id=name,
        start_time=start,
        end_time=end,
        start_lsn=_int(obj, "start_lsn") if "start_lsn" in obj else 0,
        end_lsn=_int(obj, "finish_lsn") if "finish_lsn" in obj else 0,
        timeline=int(wal[:8], 16),
        size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
        pg_major=pg_major,
        system_id=str(sysid) if isinstance(sysid, int) and not isinstance(sysid, bool) else "",
        details={k: v for k, v in details.items() if v},
    )


def parse_backup_list(stdout: str) -> list[BackupInfo]:
    """The backups in ``backup-list --json --detail`` output, oldest first."""
    text = stdout.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BackupError(f"wal-g backup-list --json printed something that is not JSON ({e})") from None
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise BackupError("wal-g backup-list --json printed something that is not a list of backups")
    backups = [backup_info(o) for o in data]
    return sorted(backups, key=lambda b: (b.end_time, b.end_lsn, b.id))


def parse_version(stdout: str) -> str:
    """``wal-g version v3.0.5\\t<revision>\\t<date>\\tPostgreSQL`` -> ``v3.0.5``."""
    m = _VERSION.search(stdout)
    return m.group(1) if m else (stdout.strip().splitlines() or ["unknown version"])[0]


def error_line(output: str) -> str:
    """The line of WAL-G's stderr that says what went wrong, without the log prefix: the last
    ``ERROR:``/``FATAL:``/``PANIC:`` line, else cobra's ``Error:`` line, else the last line."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for prefix in (("ERROR:", "FATAL:", "PANIC:"), ("Error:",)):
        for line in reversed(lines):
            if line.startswith(prefix):
                text = _LOG_PREFIX.sub("", line)
                return text.removeprefix("Error:").strip() or line
    return lines[-1] if lines else "no output"
