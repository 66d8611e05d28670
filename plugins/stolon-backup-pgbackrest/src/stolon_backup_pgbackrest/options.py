"""The ``pgbackrest`` method's settings (``backup.settings`` in the cluster spec), read strictly.

Settings hold no secret: they live in the cluster data, which every component reads. The
repository cipher passphrase comes from ``envFile``, a ``KEY=VALUE`` file on each host
(mode 0600), read when the method prepares its work directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stolon.backup.base import BackupConfigError
from stolon.backup.settings import Settings
from stolon_backup_pgbackrest import METHOD_NAME

KNOWN = (
    "repoPath",
    "stanza",
    "compressType",
    "processMax",
    "startFast",
    "archiveTimeout",
    "cipherType",
    "envFile",
    "logLevelFile",
)
COMPRESS_TYPES = ("gz", "lz4", "zst", "bz2", "none")
CIPHER_TYPES = ("none", "aes-256-cbc")
LOG_LEVELS = ("off", "error", "warn", "info", "detail", "debug")

#: a stanza is a directory name in the repository and an INI section name in pgbackrest.conf
STANZA_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STANZA_HELP = "1 to 64 letters, digits, '_', '-' or '.', starting with a letter or a digit"

#: the envFile key holding the repository cipher passphrase (pgBackRest's own env var name)
CIPHER_PASS_KEY = "PGBACKREST_REPO1_CIPHER_PASS"


@dataclass(frozen=True)
class Options:
    """The validated settings (see README.md for each one)."""

    repo_path: Path
    stanza: str = ""
    compress_type: str = "gz"
    process_max: int = 1
    start_fast: bool = True
    archive_timeout: int = 60
    cipher_type: str = "none"
    env_file: str = ""
    log_level_file: str = "off"

    def stanza_for(self, cluster_name: str) -> str:
        """The stanza: the ``stanza`` setting, else the cluster name (checked: it becomes a
        path and an INI section)."""
        if self.stanza:
            return self.stanza
        if not STANZA_RE.fullmatch(cluster_name):
            raise BackupConfigError(
                f"backup.settings.stanza: the cluster name {cluster_name!r} is not a valid pgBackRest"
                f" stanza name ({STANZA_HELP}): set backup.settings.stanza"
            )
        return cluster_name


def parse_options(raw: Mapping[str, Any] | None) -> Options:
    """:class:`Options` from ``backup.settings``; :class:`BackupConfigError` (one line naming
    ``backup.settings.<key>`` and the fix) for anything unknown, missing or malformed."""
    s = Settings(METHOD_NAME, raw, known=KNOWN)
    repo = s.abs_path("repoPath", required=True)
    assert repo is not None
    _no_edge_spaces("repoPath", str(repo))
    stanza = s.string("stanza")
    if stanza and not STANZA_RE.fullmatch(stanza):
        raise BackupConfigError(
            f"backup.settings.stanza: {stanza!r} is not a valid stanza name ({STANZA_HELP})"
        )
    env_file = s.abs_path("envFile")
    cipher = s.choice("cipherType", CIPHER_TYPES, default="none")
    if cipher != "none" and env_file is None:
        raise BackupConfigError(
            f"backup.settings.envFile: cipherType {cipher} needs the passphrase: name a file (mode 0600)"
            f" on each host holding {CIPHER_PASS_KEY}=<passphrase>"
        )
    return Options(
        repo_path=repo,
        stanza=stanza,
        compress_type=s.choice("compressType", COMPRESS_TYPES, default="gz"),
        process_max=s.integer("processMax", default=1, minimum=1, maximum=64),
        start_fast=s.boolean("startFast", default=True),
        archive_timeout=s.integer("archiveTimeout", default=60, minimum=1, maximum=86400),
        cipher_type=cipher,
        env_file=str(env_file) if env_file else "",
        log_level_file=s.choice("logLevelFile", LOG_LEVELS, default="off"),
    )


def _no_edge_spaces(key: str, value: str) -> None:
    # pgbackrest.conf values are trimmed: a path ending in a space would silently change
    if value != value.strip():
        raise BackupConfigError(f"backup.settings.{key}: {value!r} starts or ends with a space: remove it")
