"""The keeper's files in its data directory (as Go Stolon's): lock, keeperstate, dbstate.

State files are written atomically: a temp file in the same directory, fsync, mode 0600,
rename, then an fsync of the directory, so a crash leaves either the old or the new file.
Key names are Go Stolon's, so a data dir moves between implementations.

The data directory belongs to the PostgreSQL OS user (it must reach PGDATA and may own what
is in it) while the keeper may be root: every file here is opened, created and replaced
without following links and without blocking on a planted FIFO
(:mod:`stolon.postgres.safefs`), and what is read is size-bounded and checked like any
untrusted input.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stolon.model.uid import is_valid_keeper_uid
from stolon.postgres import safefs

LOCK_FILE = "lock"
KEEPER_STATE_FILE = "keeperstate"
DB_STATE_FILE = "dbstate"
PGDATA_DIR = "postgres"


class DataDirLockedError(Exception):
    """Another keeper holds the data directory."""


#: A state file is a few hundred bytes (InitPGParameters can be a few KB).
MAX_STATE_FILE = 1 << 20


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    safefs.write_file_atomic(path, data, mode=mode)


def _read_json(path: Path) -> dict[str, Any] | None:
    data = safefs.read_file(path, limit=MAX_STATE_FILE)
    if data is None:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError(f"{path}: not valid JSON") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a JSON object")
    return obj


@dataclass
class KeeperLocalState:
    uid: str = ""
    cluster_uid: str = ""

    @classmethod
    def load(cls, data_dir: Path) -> KeeperLocalState | None:
        obj = _read_json(data_dir / KEEPER_STATE_FILE)
        if obj is None:
            return None
        uid = str(obj.get("UID") or "")
        if uid and not is_valid_keeper_uid(uid):
            raise ValueError(f"{data_dir / KEEPER_STATE_FILE}: invalid keeper uid {uid!r}")
        return cls(uid=uid, cluster_uid=str(obj.get("ClusterUID") or ""))

    def save(self, data_dir: Path) -> None:
        write_atomic(
            data_dir / KEEPER_STATE_FILE,
            json.dumps({"UID": self.uid, "ClusterUID": self.cluster_uid}).encode(),
        )


@dataclass
class DBLocalState:
    uid: str = ""
    generation: int = 0
    initializing: bool = False
    init_pg_parameters: dict[str, str] | None = field(default=None)

    @classmethod
    def load(cls, data_dir: Path) -> DBLocalState:
        obj = _read_json(data_dir / DB_STATE_FILE)
        if obj is None:
            return cls()
        params = obj.get("InitPGParameters")
        return cls(
            uid=str(obj.get("UID") or ""),
            generation=int(obj.get("Generation") or 0),
            initializing=bool(obj.get("Initializing")),
            init_pg_parameters=dict(params) if isinstance(params, dict) else None,
        )

    def save(self, data_dir: Path) -> None:
        write_atomic(
            data_dir / DB_STATE_FILE,
            json.dumps(
                {
                    "UID": self.uid,
                    "Generation": self.generation,
                    "Initializing": self.initializing,
                    "InitPGParameters": self.init_pg_parameters,
                }
            ).encode(),
        )


class DataDirLock:
    """An exclusive fcntl write lock on ``<data-dir>/lock``, held for the process lifetime."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; the file is created 0600 if missing, never through a link."""
        fd = safefs.open_file(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise DataDirLockedError(
                f"cannot take exclusive lock on data dir {str(self.path)!r}: {e.strerror}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
