"""Reading ``pgbackrest info --output=json`` and pgBackRest's error output (pure).

``info`` prints a JSON array with one object per stanza (pgBackRest 2.45)::

    [{"name": "main", "status": {"code": 0, "message": "ok", "lock": {...}},
      "db": [{"id": 1, "system-id": 7714435061474823394, "version": "15", "repo-key": 1}],
      "archive": [{"id": "15-1", "min": "000000010000000000000001", "max": "...", ...}],
      "backup": [{"label": "20261201-202806F", "type": "full", "error": false,
                  "timestamp": {"start": 1796156886, "stop": 1796156891},
                  "lsn": {"start": "0/2000028", "stop": "0/3000050"},
                  "archive": {"start": "000000010000000000000002", "stop": "000000010000000000000003"},
                  "info": {"size": 22958764, "delta": 22958764,
                           "repository": {"size": 3033258, "delta": 3033258}},
                  "database": {"id": 1, "repo-key": 1}, "prior": null, "reference": null,
                  "backrest": {"format": 5, "version": "2.45"}}],
      ...}]

It exits 0 even when the stanza is missing or the repository unreadable: ``status.code`` says
so (0 ok, 1 missing stanza path, 2 no valid backups, 3 missing stanza data, 4 different
cipher, 5 database mismatch, 6 backup/expire running, 99 other; per-repository details in
``repo[].status``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stolon.backup.base import BACKUP_ID_RE, BackupError, BackupInfo
from stolon.postgres.lsn import parse_lsn

STATUS_OK = 0
STATUS_MISSING_STANZA_PATH = 1
STATUS_NO_BACKUP = 2
STATUS_MISSING_STANZA_DATA = 3
STATUS_DIFFERENT_CIPHER = 4
STATUS_OTHER = 99
#: codes that mean "nothing there yet", not "broken"
EMPTY_CODES = frozenset({STATUS_OK, STATUS_MISSING_STANZA_PATH, STATUS_NO_BACKUP, STATUS_MISSING_STANZA_DATA})
_SEGMENT = re.compile(r"[0-9A-F]{24}")


@dataclass(frozen=True)
class StanzaStatus:
    """One stanza as ``info`` describes it."""

    name: str
    code: int
    message: str
    backups: list[BackupInfo] = field(default_factory=list)
    #: ``repo[].status`` messages that are not "ok" (why a repository is unusable)
    repo_problems: list[str] = field(default_factory=list)

    @property
    def created(self) -> bool:
        return self.code not in (STATUS_MISSING_STANZA_PATH, STATUS_MISSING_STANZA_DATA)

    @property
    def readable(self) -> bool:
        """False when pgBackRest could not read the repository (the fix is not "take a backup")."""
        return self.code in EMPTY_CODES or self.code == 6  # 6: a backup or expire is running

    @property
    def undecryptable(self) -> bool:
        """The info files could not be read as text: a wrong passphrase, or an encrypted
        repository read without one (or the other way round)."""
        return self.code == STATUS_DIFFERENT_CIPHER or any(
            "FormatError" in p or "CryptoError" in p for p in self.repo_problems
        )

    def describe(self) -> str:
        detail = "; ".join(self.repo_problems) or self.message
        return f"stanza {self.name}: {detail} (code {self.code})"


def _printable_first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = "".join(c if c.isprintable() else "?" for c in line)
    return line if len(line) <= limit else line[:limit] + "..."


def parse_info(text: str, stanza: str) -> StanzaStatus:
    """The stanza ``stanza`` from ``info --output=json --stanza=<stanza>`` output.

    Raises :class:`BackupError` when the output is not what pgBackRest prints.
    """
    try:
        # strict=False: pgBackRest copies raw bytes into messages (an info file decrypted
        # with the wrong passphrase is quoted as is), control characters included
        doc = json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        raise BackupError(f"pgbackrest info printed no JSON ({e.msg}): is this pgBackRest 2.x?") from None
    if not isinstance(doc, list):
        raise BackupError("pgbackrest info printed JSON that is not a list of stanzas")
    for obj in doc:
        if isinstance(obj, dict) and obj.get("name") == stanza:
            return _stanza(obj)
    return StanzaStatus(stanza, STATUS_MISSING_STANZA_PATH, "missing stanza path")


def _stanza(obj: dict[str, Any]) -> StanzaStatus:
    status = obj.get("status") or {}
    code = _int(status.get("code"), STATUS_OTHER)
    message = _printable_first_line(str(status.get("message", "")))
    problems = []
    for repo in obj.get("repo") or []:
        rs = (repo or {}).get("status") or {}
        if _int(rs.get("code"), 0) not in EMPTY_CODES:
            problems.append(
                f"repo{repo.get('key', '?')}: {_printable_first_line(str(rs.get('message', '?')))}"
            )
    dbs = {}
    for db in obj.get("db") or []:
        if isinstance(db, dict):
            dbs[(db.get("id"), db.get("repo-key"))] = db
    backups = []
    for b in obj.get("backup") or []:
        info = backup_info(b, dbs)
        if info is not None:
            backups.append(info)
    backups.sort(key=lambda b: (b.end_time, b.id))
    return StanzaStatus(str(obj.get("name", "")), code, message, backups, problems)


def backup_info(b: Any, dbs: dict[tuple[Any, Any], dict[str, Any]]) -> BackupInfo | None:
    """One ``backup[]`` entry as a :class:`BackupInfo`; None for an entry we can't use (no
    LSNs: written by a pgBackRest too old to record them; a label that is no backup id)."""
    if not isinstance(b, dict):
        return None
    try:
        label = str(b["label"])
        ts = b["timestamp"]
        lsn = b["lsn"]
        wal = b["archive"]
        start_seg = str(wal["start"])
        stop_seg = str(wal["stop"])
        size_info = b.get("info") or {}
        repo_size = (size_info.get("repository") or {}).get("size")
        db_size = size_info.get("size")
        size = _int(repo_size, _int(db_size, 0))
        start_lsn = parse_lsn(str(lsn["start"]))
        end_lsn = parse_lsn(str(lsn["stop"]))
        start_time = datetime.fromtimestamp(int(ts["start"]), UTC)
        end_time = datetime.fromtimestamp(int(ts["stop"]), UTC)
    except (KeyError, TypeError, ValueError):
        return None
    if not BACKUP_ID_RE.fullmatch(label) or not _SEGMENT.fullmatch(start_seg):
        return None
    database = b.get("database") or {}
    db = dbs.get((database.get("id"), database.get("repo-key"))) or {}
    details = {
        "type": str(b.get("type", "")),
        "walStart": start_seg,
        "walStop": stop_seg,
        "databaseSize": str(_int(db_size, 0)),
        "pgbackrestVersion": str((b.get("backrest") or {}).get("version", "")),
    }
    if b.get("prior"):
        details["prior"] = str(b["prior"])
    if b.get("error"):
        details["error"] = "true"  # pgBackRest found page checksum errors while copying
    return BackupInfo(
        id=label,
        start_time=start_time,
        end_time=end_time,
        start_lsn=start_lsn,
        end_lsn=end_lsn,
        timeline=int(start_seg[:8], 16),
        size=size,
        pg_major=_major(db.get("version")),
        system_id=str(db.get("system-id", "")),
        details=details,
    )


def _major(version: Any) -> int:
    # "15" -> 15, "9.6" -> 9 (PostgreSQL before 10 had two-part majors)
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return 0


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    return default


# -- error output ----------------------------------------------------------------------------

_ERROR = re.compile(r"^\s*(?:[0-9-]+ [0-9:.]+ P\d+\s+)?ERROR: \[(\d+)\]: (.*)$")
_HINT = re.compile(r"^\s*HINT: (.*)$")


@dataclass(frozen=True)
class ToolError:
    """The first ``ERROR: [code]: message`` of pgBackRest's output, with its first hint."""

    code: int
    message: str
    hint: str = ""

    def one_line(self) -> str:
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"[{self.code}] {self.message}{hint}"


def tool_error(output: str) -> ToolError | None:
    """pgBackRest prints ``ERROR: [NNN]: message``, continuation lines, then ``HINT:`` lines.
    Return the first error (None if there is none)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        m = _ERROR.match(line)
        if not m:
            continue
        message = m.group(2).strip().rstrip(":")
        hint = ""
        for follow in lines[i + 1 :]:
            if _ERROR.match(follow):
                break
            h = _HINT.match(follow)
            if h:
                hint = h.group(1).strip()
                break
        return ToolError(int(m.group(1)), message, hint)
    return None


def one_line(output: str) -> str:
    """pgBackRest's error as one line, else the last non-empty line of ``output``."""
    err = tool_error(output)
    if err is not None:
        return err.one_line()
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
