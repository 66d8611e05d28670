"""The keeper's files in its data directory (as Go Stolon's): lock, keeperstate, dbstate.

State files are written atomically: a temp file in the same directory, fsync, mode 0600,
rename, then an fsync of the directory, so a crash leaves either the old or the new file.
Key names are Go Stolon's, so a data dir moves between implementations.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCK_FILE = "lock"
KEEPER_STATE_FILE = "keeperstate"
DB_STATE_FILE = "dbstate"
PGDATA_DIR = "postgres"


class DataDirLockedError(Exception):
    """Another keeper holds the data directory."""


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    directory = path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    obj = json.loads(data)
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
        return cls(uid=str(obj.get("UID") or ""), cluster_uid=str(obj.get("ClusterUID") or ""))

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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
