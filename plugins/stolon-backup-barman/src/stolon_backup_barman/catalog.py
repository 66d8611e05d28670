"""Reading what the barman-cloud tools print.

``barman-cloud-backup-list --format json`` prints ``{"backups_list": [...]}``, one object per
backup (``BackupInfo.to_json()`` in Barman), with among others (Barman 3.19)::

    backup_id        "20261201T203000"  (the tool's local time when it started; we run it with TZ=UTC)
    backup_name      "stolon-..."       (``--name``; absent or null when not given)
    status           "DONE" | "STARTED" | "FAILED" | ...
    begin_time_iso   "2026-12-01T20:30:00.123456+00:00"  (also begin_time, a ctime string)
    end_time_iso     ...
    begin_xlog       "0/2000028"        end_xlog "0/2000138"
    begin_wal        "000000010000000000000002"
    timeline         1
    size             null for barman-cloud-backup; ``cluster_size`` is the data directory's size
    version          150018             (server_version_num)
    systemid         "7447..."          compression "gzip" | null

Tool errors go to stderr as ``2026-12-01 20:29:22,823 [26566] ERROR: <message>``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stolon.backup.base import BACKUP_ID_RE, BackupError, BackupInfo, parse_time
from stolon.postgres.lsn import parse_lsn

DONE = "DONE"

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \[\d+\] (?P<level>[A-Z]+): (?P<msg>.*)$")


def parse_backup_list(text: str) -> list[dict[str, Any]]:
    """The backup objects of ``barman-cloud-backup-list --format json`` output."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise BackupError(f"barman-cloud-backup-list printed something that is not JSON ({e.msg})") from None
    items = doc.get("backups_list") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise BackupError("barman-cloud-backup-list JSON has no backups_list array")
    return [item for item in items if isinstance(item, dict)]


def complete_backups(items: list[dict[str, Any]]) -> list[BackupInfo]:
    """The ``DONE`` backups as :class:`BackupInfo`, oldest first (others are skipped: a
    ``STARTED`` one is running or was interrupted, a ``FAILED`` one is unusable)."""
    out = [to_backup_info(item) for item in items if item.get("status") == DONE]
    return sorted(out, key=lambda b: (b.end_time, b.id))


def to_backup_info(item: dict[str, Any]) -> BackupInfo:
    backup_id = str(item.get("backup_id", ""))
    if not BACKUP_ID_RE.fullmatch(backup_id):
        raise BackupError(f"barman-cloud-backup-list reports a backup with an unusable id {backup_id!r}")
    try:
        start = parse_time(str(item.get("begin_time_iso") or ""))
        end = parse_time(str(item.get("end_time_iso") or ""))
        start_lsn = parse_lsn(str(item["begin_xlog"]))
        end_lsn = parse_lsn(str(item["end_xlog"]))
        timeline = int(item["timeline"])
        # barman-cloud-backup leaves "size" null and reports the data directory's size as
        # "cluster_size" (3.19); Barman's own backups fill "size"
        size = int(item.get("size") or item.get("cluster_size") or item.get("deduplicated_size") or 0)
        version = int(item.get("version") or 0)
    except (KeyError, TypeError, ValueError) as e:
        raise BackupError(
            f"backup {backup_id}: barman-cloud-backup-list gave an unreadable field ({e})"
        ) from None
    details = {}
    for key in ("backup_name", "compression", "begin_wal", "end_wal", "data_checksums"):
        value = item.get(key)
        if value is not None and value != "":
            details[key] = str(value)
    return BackupInfo(
        id=backup_id,
        start_time=start,
        end_time=end,
        start_lsn=start_lsn,
        end_lsn=end_lsn,
        timeline=timeline,
        size=size,
        pg_major=pg_major_of(version),
        system_id=str(item.get("systemid") or ""),
        details=details,
    )


def pg_major_of(version_num: int) -> int:
    """``server_version_num`` to a major version (150018 -> 15, 90624 -> 9)."""
    if version_num <= 0:
        return 0
    return version_num // 10000


def tool_error(output: str) -> str:
    """The most useful line of a barman-cloud tool's stderr: the last ``ERROR``/``CRITICAL``
    message without its timestamp prefix, else the last non-empty line."""
    last = ""
    for raw in output.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _LOG_LINE.match(line)
        if m and m.group("level") in ("ERROR", "CRITICAL"):
            last = m.group("msg").strip()
    if last:
        return last
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""
