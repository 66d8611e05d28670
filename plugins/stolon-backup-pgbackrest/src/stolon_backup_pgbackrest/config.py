"""Rendering the ``pgbackrest.conf`` the method keeps in its work directory (pure).

Every pgBackRest command the method runs, and the archive/restore commands PostgreSQL runs,
name this file with ``--config=<work_dir>/pgbackrest.conf``. Given on the command line,
``--config`` makes pgBackRest read that file only: neither ``/etc/pgbackrest/pgbackrest.conf``
nor the ``conf.d`` include directory. Options that change per call (``pg1-path`` of a
restore, ``--set``, ``--repo1-retention-full``) go on the command line, which wins over the
file.

Choices made here, and why:

* ``lock-path``/``log-path``/``spool-path`` live under the work directory: the defaults
  (``/tmp/pgbackrest``, ``/var/log/pgbackrest``, ``/var/spool/pgbackrest``) may be missing or
  not writable by PostgreSQL's OS user, and two clusters on one host must not share locks.
* ``archive-mode-check=n``: the keeper runs every instance with ``archive_mode = always``,
  which pgBackRest refuses by default (see README.md, "Archiving from standbys").
* ``repo1-retention-full=9999999`` and ``expire-auto=n``: retention is the keeper's
  (``delete_backups(retain)`` runs ``expire --repo1-retention-full=N``); the maximum only
  silences pgBackRest's "retention not set" warning.
* ``log-level-file`` defaults to ``off``: pgBackRest writes its log files with mode 0640 and
  never rotates them; errors reach PostgreSQL's log (archiving) or the keeper (the rest)
  through stderr anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stolon.backup.base import BackupConfigError
from stolon_backup_pgbackrest.options import Options

CONFIG_NAME = "pgbackrest.conf"
LOCK_DIR = "lock"
LOG_DIR = "log"
SPOOL_DIR = "spool"
#: pgBackRest's largest accepted retention: "keep every full backup" without a warning
RETENTION_MAX = 9999999

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Target:
    """The PostgreSQL instance the file describes (``pg1-*``).

    ``socket_dir`` is set when the server is reached through a unix socket (pgBackRest's
    ``pg1-socket-path``); with a TCP host, libpq takes it from ``PGHOST`` (the method passes
    the context's libpq environment to every command that connects).
    """

    pgdata: Path
    port: int | None = None
    socket_dir: str | None = None
    user: str | None = None
    database: str | None = None


def render_config(
    options: Options, stanza: str, work_dir: Path, target: Target, cipher_pass: str | None = None
) -> str:
    """The text of ``pgbackrest.conf``. ``cipher_pass`` (from the envFile) is required when
    ``options.cipher_type`` is not ``none``."""
    glob: list[tuple[str, str]] = [
        ("repo1-type", "posix"),
        ("repo1-path", str(options.repo_path)),
        ("repo1-retention-full", str(RETENTION_MAX)),
    ]
    if options.cipher_type != "none":
        if not cipher_pass:
            raise BackupConfigError(
                f"backup.settings.envFile: {options.env_file} holds no PGBACKREST_REPO1_CIPHER_PASS:"
                " add PGBACKREST_REPO1_CIPHER_PASS=<passphrase> to it"
            )
        glob += [("repo1-cipher-type", options.cipher_type), ("repo1-cipher-pass", cipher_pass)]
    glob += [
        ("compress-type", options.compress_type),
        ("process-max", str(options.process_max)),
        ("start-fast", "y" if options.start_fast else "n"),
        ("archive-timeout", str(options.archive_timeout)),
        ("archive-mode-check", "n"),
        ("expire-auto", "n"),
        ("lock-path", str(work_dir / LOCK_DIR)),
        ("log-path", str(work_dir / LOG_DIR)),
        ("spool-path", str(work_dir / SPOOL_DIR)),
        ("log-level-file", options.log_level_file),
    ]
    section: list[tuple[str, str]] = [("pg1-path", str(target.pgdata))]
    if target.port is not None:
        section.append(("pg1-port", str(target.port)))
    if target.socket_dir:
        section.append(("pg1-socket-path", target.socket_dir))
    if target.user:
        section.append(("pg1-user", target.user))
    if target.database:
        section.append(("pg1-database", target.database))
    lines = [
        "# Written by stolon's pgbackrest backup method before every operation; edits are lost.",
        "# Its settings are backup.settings in the cluster spec (see stolon-backup-pgbackrest's README).",
        "[global]",
        *(_line(k, v) for k, v in glob),
        "",
        f"[{stanza}]",
        *(_line(k, v) for k, v in section),
    ]
    return "\n".join(lines) + "\n"


def _line(key: str, value: str) -> str:
    if _CONTROL.search(value) or value != value.strip():
        # never name the value: it may be the passphrase
        raise BackupConfigError(
            f"pgbackrest option {key}: the value has a control character or surrounding spaces: fix it"
        )
    return f"{key}={value}"
