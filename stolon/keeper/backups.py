"""The keeper's backup methods: built from the cluster spec through the plugin registry,
with their contexts and the archive/restore commands they render on this host.

Two purposes, each with its own work directory under ``<data-dir>/backup/``:

* ``archive``: the cluster's ``backup`` section. Every instance archives through it
  (``archive_mode = always``, its ``archive_command``) and standbys fetch WAL with its
  ``restore_command``; the master's keeper takes base backups with it.
* ``pitr``: ``pitrConfig.fromBackup`` (its own method and settings, or the ``backup``
  section's), used once, to restore a new cluster's first DB.

A method is built (and :meth:`~stolon.backup.base.BackupMethod.prepare` d) once per
distinct method + settings; a failure is kept as a one-line error, reported in the keeper
info and the log (once per change), and archiving is then left off rather than pointed at
a broken command.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stolon.backup.base import BackupContext, BackupError, BackupMethod, PgServer, standby_archiving
from stolon.backup.commands import archive_command, restore_command
from stolon.backup.files import ensure_private_dir
from stolon.backup.registry import open_method
from stolon.keeper.pgconfig import BackupCommands
from stolon.model.spec import ClusterSpec
from stolon.plugins import StolonPluginManager
from stolon.postgres.instance import Instance

log = logging.getLogger("stolon.keeper.backup")

BACKUP_DIR = "backup"
PURPOSE_ARCHIVE = "archive"
PURPOSE_PITR = "pitr"


@dataclass(frozen=True)
class MethodSetup:
    name: str
    method: BackupMethod
    ctx: BackupContext
    commands: BackupCommands


class KeeperBackups:
    def __init__(
        self,
        pm: StolonPluginManager,
        data_dir: Path,
        instance: Instance,
        cluster_name: str,
        pg_major: int,
    ) -> None:
        self.pm = pm
        self.data_dir = data_dir
        self.instance = instance
        self.cluster_name = cluster_name
        self.pg_major = pg_major
        self._cache: dict[tuple[str, str], MethodSetup | BackupError] = {}
        self._logged: dict[str, str] = {}
        #: the archive method's error for the current spec ("" when fine or unused)
        self.error = ""

    # -- contexts ---------------------------------------------------------------------------
    def context(self, purpose: str, *, timeout: float | None = None) -> BackupContext:
        inst = self.instance
        base = self.data_dir / BACKUP_DIR
        ensure_private_dir(base, inst.os_user)
        work = base / purpose
        ensure_private_dir(work, inst.os_user)
        su, repl = inst.superuser, inst.replication
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        return BackupContext(
            cluster_name=self.cluster_name,
            pgdata=inst.data_dir,
            pg_bin_dir=inst.binaries.bin_dir,
            pg_major=self.pg_major,
            os_user=inst.os_user,
            work_dir=work,
            server=PgServer(str(inst.socket_dir), inst.port, su.username, su.login_password),
            replication=PgServer(
                str(inst.socket_dir), inst.port, repl.username, repl.login_password, database="replication"
            ),
            **kwargs,
        )

    def _setup(self, purpose: str, name: str, settings: dict[str, Any] | None) -> MethodSetup:
        key = (purpose, json.dumps([name, settings or {}], sort_keys=True))
        cached = self._cache.get(key)
        if cached is None:
            try:
                method = open_method(self.pm, name, settings)
                ctx = self.context(purpose)
                method.prepare(ctx)
                cached = MethodSetup(
                    name,
                    method,
                    ctx,
                    BackupCommands(
                        name,
                        archive_command(method.archive_command(ctx)),
                        restore_command(method.restore_command(ctx)),
                        "always" if standby_archiving(method) else "on",
                    ),
                )
            except BackupError as e:
                cached = e
            except OSError as e:
                cached = BackupError(f"cannot prepare backup method {name!r}: {e}")
            self._cache = {k: v for k, v in self._cache.items() if k[0] != purpose}
            self._cache[key] = cached
        if isinstance(cached, BackupError):
            raise cached
        return cached

    # -- the cluster's backup section -------------------------------------------------------
    def archive_setup(self, spec: ClusterSpec | None) -> MethodSetup | None:
        """The ``backup`` section's method, or None when there is none or it can't be used
        (then :attr:`error` says why)."""
        b = spec.backup if spec is not None else None
        if b is None:
            self.error = ""
            return None
        try:
            setup = self._setup(PURPOSE_ARCHIVE, b.method, b.settings)
        except BackupError as e:
            self.error = str(e)
            self._log_once(
                PURPOSE_ARCHIVE, f"backup method {b.method!r} can't be used, WAL is not archived: {e}"
            )
            return None
        self.error = ""
        self._logged.pop(PURPOSE_ARCHIVE, None)
        return setup

    def commands(self, spec: ClusterSpec | None) -> BackupCommands | None:
        setup = self.archive_setup(spec)
        return setup.commands if setup is not None else None

    # -- pitrConfig.fromBackup --------------------------------------------------------------
    def pitr_setup(self, name: str, settings: dict[str, Any] | None) -> MethodSetup:
        return self._setup(PURPOSE_PITR, name, settings)

    def _log_once(self, key: str, message: str) -> None:
        if self._logged.get(key) != message:
            self._logged[key] = message
            log.error("%s", message)
