"""The ``barman`` backup method: Barman Cloud's CLI against S3-compatible object storage.

Object layout (Barman's own, so ``barman-cloud-*`` by hand sees the same repository)::

    <destinationUrl>/<serverName>/wals/<timeline+log>/<segment>[.gz|.bz2|...]
    <destinationUrl>/<serverName>/wals/<timeline>.history
    <destinationUrl>/<serverName>/base/<backup id>/backup.info, data.tar[.gz]

Every tool runs as PostgreSQL's OS user (``ctx.run``; PostgreSQL itself runs the archive
and restore commands). See :mod:`stolon_backup_barman.commands` for why archiving goes
through a fixed script, and :mod:`stolon_backup_barman.credentials` for credentials.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sysconfig
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stolon.backup.base import (
    BACKUP_ID_RE,
    BackupConfigError,
    BackupContext,
    BackupError,
    BackupInfo,
    BackupNotFoundError,
    Progress,
    StorageUnreachableError,
)
from stolon.backup.commands import archive_command as render_archive_command
from stolon.backup.files import write_private
from stolon.postgres.errors import BinaryNotFoundError, CommandError, CommandTimeoutError, PostgresError
from stolon.postgres.runas import CommandResult
from stolon_backup_barman import commands as cmd
from stolon_backup_barman.catalog import complete_backups, parse_backup_list, tool_error
from stolon_backup_barman.config import BarmanSettings
from stolon_backup_barman.credentials import CONFIG_FILE, CREDENTIALS_FILE, env_prefix, load_env_file

#: the tools' exit codes (barman.clients.cloud_cli, Barman 3.19)
EXIT_OPERATION = 1  # connected, but the operation failed (e.g. no such bucket, WAL, backup)
EXIT_NETWORK = 2  # the endpoint could not be reached
EXIT_CLI = 3  # bad command line

SPOOL_DIR = "wal-spool"
BACKUP_ID_FORMAT = "%Y%m%dT%H%M%S"  # barman-cloud-backup's id: its local time (we set TZ=UTC)
_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")
#: is $1 (a path, or a name looked up on PATH) something we can execute?
_FIND_TOOL = 'case $1 in */*) [ -f "$1" ] && [ -x "$1" ] ;; *) command -v "$1" >/dev/null ;; esac'
_NO_BUCKET = re.compile(r"^Bucket \S+ does not exist")  # `--test` (barman.cloud, 3.19)
_SYSTEM_ID = re.compile(r"^Database system identifier:\s*(\d+)\s*$", re.MULTILINE)


class BarmanMethod:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = BarmanSettings.parse(settings)

    # -- helpers -----------------------------------------------------------------------------
    def tool(self, name: str) -> str:
        """The executable for tool ``name``: in ``toolDir`` if set; else the name (found on
        PATH) when it is on our PATH; else next to this Python's scripts (``pip install
        "stolon[barman]"`` put it there); else the bare name (``check`` reports it)."""
        s = self.settings
        if s.tool_dir is not None:
            return str(s.tool_dir / name)
        if shutil.which(name):
            return name
        scripts = sysconfig.get_path("scripts")
        if scripts:
            candidate = Path(scripts) / name
            if os.access(candidate, os.X_OK):
                return str(candidate)
        return name

    def server_name(self, ctx: BackupContext) -> str:
        return self.settings.server_for(ctx.cluster_name)

    def _prefix(self, ctx: BackupContext) -> list[str]:
        return env_prefix(ctx.work_dir) if self.settings.env_file is not None else []

    def _shared(self, ctx: BackupContext) -> list[str]:
        """Options and positional arguments every tool starts with: ... URL SERVER."""
        s = self.settings
        return [
            *cmd.common_options(s.endpoint_url, s.addressing_style),
            s.destination_url,
            self.server_name(ctx),
        ]

    def _write_credentials(self, ctx: BackupContext) -> list[str]:
        """Write the AWS files for ``envFile`` into the work directory; the secret values
        (to scrub from tool output)."""
        if self.settings.env_file is None:
            return []
        files = load_env_file(self.settings.env_file, ctx.os_user)
        write_private(ctx.work_dir / CREDENTIALS_FILE, files.credentials, ctx.os_user)
        write_private(ctx.work_dir / CONFIG_FILE, files.config, ctx.os_user)
        return files.secrets

    def _run(
        self,
        ctx: BackupContext,
        tool: str,
        args: Sequence[str],
        *,
        what: str,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``tool`` with the credentials prefix and ``args``; tool failures become one-line
        :class:`BackupError` (subclass by exit code)."""
        scrub = self._write_credentials(ctx)
        argv = [*self._prefix(ctx), self.tool(tool), *args]
        try:
            return ctx.run(argv, timeout=timeout, env=env, secrets=scrub)
        except BinaryNotFoundError:
            raise self._missing_tool(ctx, tool) from None
        except CommandTimeoutError as e:
            raise BackupError(
                f"{what}: {tool} did not finish within {e.timeout:g}s and was stopped"
            ) from None
        except CommandError as e:
            message = tool_error(e.output) or f"exit status {e.returncode}"
            if e.returncode in (126, 127) and self._prefix(ctx):  # from env(1)
                raise self._missing_tool(ctx, tool) from None
            if e.returncode == EXIT_NETWORK:
                raise StorageUnreachableError(
                    f"{what}: cannot reach the object storage ({message}): check"
                    " backup.settings.endpointUrl and the network"
                ) from None
            if e.returncode == EXIT_OPERATION and ("NoSuchBucket" in message or _NO_BUCKET.search(message)):
                raise StorageUnreachableError(
                    f"{what}: the bucket of {self.settings.destination_url} does not exist: create it"
                ) from None
            raise BackupError(f"{what}: {tool} failed: {message}") from None

    def _missing_tool(self, ctx: BackupContext, tool: str) -> BackupConfigError:
        where = (
            f"in backup.settings.toolDir {self.settings.tool_dir}"
            if self.settings.tool_dir is not None
            else "on the PATH"
        )
        return BackupConfigError(
            f"{tool} is not installed {where} or OS user {ctx.os_user.name!r} cannot execute it:"
            ' install Barman Cloud (pip install "barman[cloud]" in a directory that user can read)'
            " or set backup.settings.toolDir"
        )

    # -- configuration -----------------------------------------------------------------------
    def check(self, ctx: BackupContext) -> str:
        self.prepare(ctx)
        for tool in cmd.TOOLS:
            path = self.tool(tool)
            res = ctx.run(["/bin/sh", "-c", _FIND_TOOL, "stolon-which", path], check=False)
            if res.returncode != 0:
                raise self._missing_tool(ctx, tool)
        version = self._run(ctx, cmd.LIST, ["--version"], what="barman-cloud version")
        m = _VERSION.search(version.stdout + version.stderr)
        self._run(ctx, cmd.LIST, ["--test", *self._shared(ctx)], what="checking the object storage")
        endpoint = f" via {self.settings.endpoint_url}" if self.settings.endpoint_url else ""
        return (
            f"barman-cloud {m.group(1) if m else '(unknown version)'},"
            f" {self.settings.destination_url} server {self.server_name(ctx)}{endpoint}"
        )

    def prepare(self, ctx: BackupContext) -> None:
        self.server_name(ctx)  # a cluster name that can't be a server name fails here
        self._write_credentials(ctx)
        write_private(ctx.work_dir / cmd.SCRIPT_FILE, cmd.ARCHIVE_SCRIPT, ctx.os_user)

    def ensure_repository(self, ctx: BackupContext) -> None:
        """S3 needs no directories; check the bucket is there and that the backups already
        under this server name (if any) are of this database system (two clusters under
        one name would mix their WAL)."""
        self._run(ctx, cmd.LIST, ["--test", *self._shared(ctx)], what="checking the object storage")
        mine = self._system_id(ctx)
        if not mine:
            return
        for b in self.list_backups(ctx):
            if b.system_id and b.system_id != mine:
                raise BackupConfigError(
                    f"backup.settings: {self.settings.destination_url} server {self.server_name(ctx)}"
                    f" holds backups of another database system ({b.system_id}, this one is {mine}):"
                    " use another serverName or destinationUrl"
                )

    def _system_id(self, ctx: BackupContext) -> str:
        try:
            res = ctx.run([str(ctx.pg_bin_dir / "pg_controldata"), str(ctx.pgdata)])
        except PostgresError:
            return ""
        m = _SYSTEM_ID.search(res.stdout)
        return m.group(1) if m else ""

    def archive_command(self, ctx: BackupContext) -> list[str]:
        argv = cmd.archive_argv(
            work_dir=ctx.work_dir,
            use_aws_files=self.settings.env_file is not None,
            restore_tool=self.tool(cmd.RESTORE),
            archive_tool=self.tool(cmd.ARCHIVE),
            compression=self.settings.compression,
            shared=self._shared(ctx),
        )
        if ctx.pg_major < 16:
            # %p is at most pg_wal/<24-char name>.partial, %f the name: expanded length
            longest = len(render_archive_command(argv)) + len("pg_wal/") + 2 * (24 + len(".partial")) - 4
            if longest > cmd.PRE16_ARCHIVE_COMMAND_MAX:
                raise BackupConfigError(
                    f"backup.settings: the archive command would be {longest} bytes, more than the"
                    f" {cmd.PRE16_ARCHIVE_COMMAND_MAX} PostgreSQL {ctx.pg_major} keeps:"
                    " shorten destinationUrl, endpointUrl or toolDir"
                )
        return argv

    def restore_command(self, ctx: BackupContext) -> list[str]:
        return cmd.restore_argv(
            self._prefix(ctx), self.tool(cmd.RESTORE), ctx.work_dir / SPOOL_DIR, self._shared(ctx)
        )

    # -- base backups ------------------------------------------------------------------------
    def _all_backups(self, ctx: BackupContext) -> list[dict[str, Any]]:
        res = self._run(ctx, cmd.LIST, ["--format", "json", *self._shared(ctx)], what="listing backups")
        return parse_backup_list(res.stdout)

    def list_backups(self, ctx: BackupContext) -> list[BackupInfo]:
        return complete_backups(self._all_backups(ctx))

    def create_backup(self, ctx: BackupContext, progress: Progress) -> BackupInfo:
        existing = {str(item.get("backup_id")) for item in self._all_backups(ctx)}
        # barman-cloud-backup names a backup after the second it starts: two in one second
        # would share an id (and objects). Start in a second no backup is named after.
        while datetime.now(UTC).strftime(BACKUP_ID_FORMAT) in existing:
            time.sleep(0.2)
        name = f"stolon-{datetime.now(UTC).strftime(BACKUP_ID_FORMAT)}-{secrets.token_hex(4)}"
        args = ["--immediate-checkpoint", "--name", name]
        option = cmd.compression_option(self.settings.compression)
        if option:
            args.append(option)
        progress(f"barman-cloud-backup to {self.settings.destination_url} ({name})", None, None)
        with ctx.libpq_env() as env:
            self._run(
                ctx,
                cmd.BACKUP,
                [*args, *self._shared(ctx)],
                what="base backup",
                timeout=ctx.timeout,
                env={**env, "TZ": "UTC"},
            )
        for item in self._all_backups(ctx):
            if item.get("backup_name") == name:
                if item.get("status") != "DONE":
                    raise BackupError(
                        f"base backup {item.get('backup_id')} ended with status {item.get('status')}:"
                        " see the keeper's log"
                    )
                (info,) = complete_backups([item])
                progress(f"backup {info.id} done ({info.size} bytes)", info.size, info.size)
                return info
        raise BackupError(
            f"barman-cloud-backup succeeded but backup {name!r} is not listed: list the backups"
        )

    def restore_backup(
        self, ctx: BackupContext, backup: BackupInfo, target_dir: Path, progress: Progress
    ) -> None:
        if not BACKUP_ID_RE.fullmatch(backup.id):
            raise BackupNotFoundError(f"backup id {backup.id!r} is not valid")
        if backup.id not in {b.id for b in self.list_backups(ctx)}:
            raise BackupNotFoundError(
                f"backup {backup.id} is not in {self.settings.destination_url} server"
                f" {self.server_name(ctx)}: see `stolonctl backup list`"
            )
        progress(f"barman-cloud-restore {backup.id} into {target_dir}", 0, backup.size)
        try:
            self._run(
                ctx,
                cmd.RESTORE_BACKUP,
                [*self._shared(ctx), backup.id, str(target_dir)],
                what=f"restoring backup {backup.id}",
                timeout=ctx.timeout,
            )
        except BackupError:
            # leave no half-restored data directory behind (as the owner, no link followed)
            ctx.run(["find", str(target_dir), "-mindepth", "1", "-delete"], check=False)
            raise
        progress(f"backup {backup.id} restored", backup.size, backup.size)

    def delete_backups(self, ctx: BackupContext, retain: int) -> list[str]:
        if retain < 1:
            raise BackupConfigError(f"retain must be at least 1 (got {retain})")
        before = [b.id for b in self.list_backups(ctx)]
        if len(before) <= retain:
            return []
        self._run(
            ctx,
            cmd.DELETE,
            ["--retention-policy", f"REDUNDANCY {retain}", *self._shared(ctx)],
            what="applying retention",
            timeout=ctx.timeout,
        )
        after = {b.id for b in self.list_backups(ctx)}
        return [i for i in before if i not in after]
