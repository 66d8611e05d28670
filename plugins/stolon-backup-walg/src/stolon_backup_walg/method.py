"""The ``walg`` backup method: stolon's :class:`~stolon.backup.base.BackupMethod` over WAL-G's CLI.

Every call runs ``wal-g --config <work_dir>/walg.json <command>`` as PostgreSQL's OS user;
the config file (0600, the PostgreSQL user's) holds the storage, the compression,
``WALG_PREVENT_WAL_OVERWRITE=true`` and the credentials, so nothing secret is ever in argv
or in the cluster data. The connection for ``backup-push`` comes from the keeper per call
(``PGHOST``/``PGPORT``/``PGUSER``/``PGPASSFILE`` in the environment, which WAL-G prefers
over its config file).

WAL-G prints backup names only in its log, so :meth:`WalgMethod.create_backup` finds the
new backup by listing before and after. Retention is ``delete retain FULL N --confirm``:
WAL-G deletes the backups and the WAL older than the N-th newest full backup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stolon.backup.base import (
    BackupConfigError,
    BackupContext,
    BackupError,
    BackupInfo,
    BackupNotFoundError,
    Progress,
    StorageUnreachableError,
)
from stolon.backup.files import read_env_file, write_private
from stolon.postgres.errors import BinaryNotFoundError, CommandError, CommandTimeoutError, PostgresError
from stolon.postgres.runas import CommandResult, OSUser
from stolon_backup_walg.output import error_line, parse_backup_list, parse_version
from stolon_backup_walg.settings import WalgSettings, config_document, parse_settings

CONFIG_NAME = "walg.json"
LATEST = "LATEST"


class WalgMethod:
    def __init__(self, settings: Mapping[str, Any] | None) -> None:
        self.settings: WalgSettings = parse_settings(settings)
        self._secrets: list[str] = []

    # -- configuration -------------------------------------------------------------------------

    def config_path(self, ctx: BackupContext) -> Path:
        return ctx.work_dir / CONFIG_NAME

    def credentials(self, owner: OSUser) -> list[tuple[str, dict[str, str]]]:
        """Credentials from this host: the envFile (``owner``'s: the tools' OS user), then
        the named keeper variables."""
        out: list[tuple[str, dict[str, str]]] = []
        s = self.settings
        if s.env_file is not None:
            where = "backup.settings.envFile"
            out.append((f"{where} ({s.env_file})", read_env_file(str(s.env_file), where, owner=owner)))
        if s.env_from_keeper:
            values: dict[str, str] = {}
            for name in s.env_from_keeper:
                value = os.environ.get(name)
                if value is None:
                    raise BackupConfigError(
                        f"backup.settings.envFromKeeper: {name} is not set in the environment of this"
                        " process: export it where the keeper (or stolonctl) starts, or remove it from the list"
                    )
                values[name] = value
            out.append(("backup.settings.envFromKeeper", values))
        return out

    def prepare(self, ctx: BackupContext) -> None:
        """Write ``walg.json`` into ``ctx.work_dir`` (0600, unchanged content not rewritten)."""
        credentials = self.credentials(ctx.os_user)
        doc = config_document(self.settings, ctx.pgdata, credentials)
        self._secrets = [v for _source, values in credentials for v in values.values() if len(v) >= 4]
        write_private(self.config_path(ctx), json.dumps(doc, indent=2) + "\n", ctx.os_user)

    def _walg(self, ctx: BackupContext, *args: str) -> list[str]:
        return [self.settings.walg_path, "--config", str(self.config_path(ctx)), *args]

    def _run(
        self,
        ctx: BackupContext,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        on_timeout: type[BackupError] = BackupError,
    ) -> CommandResult:
        """Run ``wal-g <args>``; WAL-G's own failure comes back as :class:`CommandError`, a
        timeout as ``on_timeout``."""
        try:
            return ctx.run(self._walg(ctx, *args), timeout=timeout, env=env, secrets=self._secrets)
        except BinaryNotFoundError:
            raise self._not_installed() from None
        except CommandTimeoutError as e:
            raise on_timeout(
                f"wal-g {args[0]} did not finish within {e.timeout:g}s and was stopped"
                f" ({error_line(e.output)}): check that {self.settings.storage} is reachable"
            ) from None

    def _not_installed(self) -> BackupConfigError:
        return BackupConfigError(
            f"cannot run {self.settings.walg_path}: install WAL-G on this host"
            " (https://github.com/wal-g/wal-g/releases) where PostgreSQL's user can run it,"
            " or set backup.settings.walgPath"
        )

    def check(self, ctx: BackupContext) -> str:
        self.prepare(ctx)
        try:
            version = parse_version(ctx.run([self.settings.walg_path, "--version"]).stdout)
        except BinaryNotFoundError:
            raise self._not_installed() from None
        except PostgresError as e:
            raise BackupConfigError(
                f"{self.settings.walg_path} --version failed ({error_line(str(e))}): check the WAL-G installation"
            ) from None
        prefix = self.settings.file_prefix
        if prefix is not None:
            try:
                ctx.run(["test", "-d", str(prefix), "-a", "-w", str(prefix), "-a", "-x", str(prefix)])
            except PostgresError:
                raise StorageUnreachableError(
                    f"backup.settings.filePrefix: {prefix} is not a directory that OS user"
                    f" {ctx.os_user.name!r} can write: create it and give it to that user"
                ) from None
        try:
            self._run(ctx, ["backup-list", "--json"], on_timeout=StorageUnreachableError)
        except CommandError as e:
            raise self._unreachable(e) from None
        return f"wal-g {version}, {self.settings.storage}"

    def _unreachable(self, e: CommandError) -> StorageUnreachableError:
        return StorageUnreachableError(
            f"WAL-G cannot use the repository {self.settings.storage}: {error_line(e.output)}:"
            " check backup.settings (filePrefix/s3Prefix, s3Endpoint) and the credentials"
        )

    def ensure_repository(self, ctx: BackupContext) -> None:
        """WAL-G creates its folders on the first upload: checking the storage is enough."""
        self.check(ctx)

    def archive_command(self, ctx: BackupContext) -> list[str]:
        return self._walg(ctx, "wal-push", "%p")

    def restore_command(self, ctx: BackupContext) -> list[str]:
        return self._walg(ctx, "wal-fetch", "%f", "%p")

    # -- base backups --------------------------------------------------------------------------

    def list_backups(self, ctx: BackupContext) -> list[BackupInfo]:
        self.prepare(ctx)
        try:
            res = self._run(ctx, ["backup-list", "--json", "--detail"], on_timeout=StorageUnreachableError)
        except CommandError as e:
            raise self._unreachable(e) from None
        return parse_backup_list(res.stdout)

    def create_backup(self, ctx: BackupContext, progress: Progress) -> BackupInfo:
        before = {b.id for b in self.list_backups(ctx)}
        started = datetime.now(UTC)
        progress(f"wal-g backup-push of {ctx.pgdata} to {self.settings.storage}", None, None)
        try:
            with ctx.libpq_env() as env:
                self._run(
                    ctx,
                    ["backup-push", "--full", str(ctx.pgdata)],
                    timeout=ctx.timeout,
                    env={**env, "PGDATA": str(ctx.pgdata)},
                )
        except CommandError as e:
            raise BackupError(f"wal-g backup-push failed: {error_line(e.output)}") from None
        after = self.list_backups(ctx)
        new = [b for b in after if b.id not in before or b.start_time >= started]
        if not new:
            raise BackupError(
                f"wal-g backup-push exited successfully but no new backup is listed in {self.settings.storage}:"
                " check WAL-G's storage settings"
            )
        info = max(new, key=lambda b: (b.start_time, b.end_lsn))
        progress(f"backup {info.id} done ({info.size} bytes)", info.size, info.size)
        return info

    def restore_backup(
        self, ctx: BackupContext, backup: BackupInfo, target_dir: Path, progress: Progress
    ) -> None:
        name = LATEST if backup.id.lower() == "latest" else backup.id
        if name != LATEST and backup.id not in {b.id for b in self.list_backups(ctx)}:
            raise BackupNotFoundError(
                f"backup {backup.id} is not in the WAL-G repository {self.settings.storage}:"
                " see `stolonctl backup list`"
            )
        self.prepare(ctx)
        progress(f"wal-g backup-fetch {name} into {target_dir}", 0, backup.size or None)
        try:
            self._run(ctx, ["backup-fetch", str(target_dir), name], timeout=ctx.timeout)
        except BaseException as e:
            # never leave a half-restored data directory (the target was empty)
            ctx.run(["find", str(target_dir), "-mindepth", "1", "-delete"], check=False)
            if isinstance(e, CommandError):
                raise BackupError(f"wal-g backup-fetch {name} failed: {error_line(e.output)}") from None
            raise
        # the keeper writes the recovery configuration itself
        ctx.run(["rm", "-f", "--", str(target_dir / "recovery.signal"), str(target_dir / "standby.signal")])
        progress(f"backup {name} restored into {target_dir}", backup.size, backup.size)

    def delete_backups(self, ctx: BackupContext, retain: int) -> list[str]:
        if retain < 1:
            raise BackupConfigError(f"retain must be at least 1 (got {retain})")
        before = self.list_backups(ctx)
        if len(before) <= retain:
            return []
        try:
            self._run(ctx, ["delete", "retain", "FULL", str(retain), "--confirm"], timeout=ctx.timeout)
        except CommandError as e:
            raise BackupError(f"wal-g delete retain FULL {retain} failed: {error_line(e.output)}") from None
        after = {b.id for b in self.list_backups(ctx)}
        return [b.id for b in before if b.id not in after]
