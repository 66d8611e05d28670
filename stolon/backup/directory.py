"""The built-in ``directory`` backup method: WAL and base backups in a directory (a local
disk or a network mount), with nothing but PostgreSQL's own tools and coreutils.

Settings (``backup.settings``)::

    {"path": "/var/lib/stolon-backups/c1", "compress": false}

Layout under ``path`` (created by :meth:`DirectoryMethod.ensure_repository`, owned by
PostgreSQL's OS user)::

    wal/<segment>                      archived WAL and timeline history files
    backups/<id>/base.tar[.gz]         pg_basebackup -F tar -X none (WAL comes from wal/)
    backups/<id>/backup_manifest       PostgreSQL 13+
    backups/<id>/stolon-backup.json    written last: a backup without it is incomplete

Archiving copies the segment to a temporary name, syncs it and renames it into place; a
segment already there with the same content is accepted, a different one refused. The
commands are a fixed ``sh`` script from this module with the paths as its arguments, so
nothing from the settings becomes shell code. Tablespaces are not supported (only
``base.tar`` is restored).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stolon
from stolon.backup.base import (
    BACKUP_ID_RE,
    BackupConfigError,
    BackupContext,
    BackupError,
    BackupInfo,
    BackupNotFoundError,
    Progress,
    StorageUnreachableError,
    one_line,
)
from stolon.backup.settings import Settings
from stolon.hookspecs import BackupMethodSpec, MethodSpec
from stolon.postgres.errors import PostgresError
from stolon.postgres.lsn import parse_lsn, strip_timeline, wal_file_name

NAME = "directory"
META = "stolon-backup.json"
#: pg_basebackup writes a backup_manifest (with the backup's WAL range) since PostgreSQL 13
MIN_PG_MAJOR = 13

#: archive one file: $1 source, $2 destination (refuse a different file already there; the
#: WAL directory is created if the repository was not prepared yet)
ARCHIVE_SCRIPT = (
    'set -e; src=$1; dst=$2; if [ -e "$dst" ]; then cmp -s "$src" "$dst" && exit 0;'
    ' echo "$dst is already archived with different content" >&2; exit 1; fi;'
    ' dir=$(dirname "$dst"); [ -d "$dir" ] || mkdir -p -m 0700 "$dir";'
    ' tmp="$dst.tmp.$$"; cp "$src" "$tmp"; sync "$tmp"; mv "$tmp" "$dst"; sync "$dir"'
)
#: fetch one file: $1 source in the archive, $2 destination
RESTORE_SCRIPT = 'exec cp "$1" "$2"'
#: write $2 into file $1 atomically
WRITE_SCRIPT = 'set -e; printf "%s\\n" "$2" > "$1.tmp"; sync "$1.tmp"; mv "$1.tmp" "$1"'

_SEGMENT = re.compile(r"[0-9A-F]{24}")


class DirectoryMethod:
    def __init__(self, settings: dict[str, Any]) -> None:
        s = Settings(NAME, settings, known=("path", "compress"))
        path = s.abs_path("path", required=True)
        assert path is not None
        self.path = path
        self.compress = s.boolean("compress", default=False)

    @property
    def wal_dir(self) -> Path:
        return self.path / "wal"

    @property
    def backups_dir(self) -> Path:
        return self.path / "backups"

    # -- configuration ---------------------------------------------------------------------
    def check(self, ctx: BackupContext) -> str:
        if ctx.pg_major and ctx.pg_major < MIN_PG_MAJOR:
            raise BackupConfigError(
                f"the directory method needs PostgreSQL {MIN_PG_MAJOR} or later (backup manifests);"
                f" this is {ctx.pg_major}: use another backup method"
            )
        try:
            ctx.run(["test", "-d", str(self.path), "-a", "-w", str(self.path), "-a", "-x", str(self.path)])
        except PostgresError:
            raise StorageUnreachableError(
                f"backup.settings.path: {self.path} is not a directory that OS user {ctx.os_user.name!r}"
                " can write: create it and give it to that user"
            ) from None
        return f"directory {self.path}"

    def prepare(self, ctx: BackupContext) -> None:
        """Nothing to write: the commands carry the paths."""

    def ensure_repository(self, ctx: BackupContext) -> None:
        self.check(ctx)
        try:
            ctx.run(["mkdir", "-p", "-m", "0700", str(self.wal_dir), str(self.backups_dir)])
        except PostgresError as e:
            raise StorageUnreachableError(
                f"cannot create the backup directories in {self.path}: {e}"
            ) from None

    def archive_command(self, ctx: BackupContext) -> list[str]:
        return ["/bin/sh", "-c", ARCHIVE_SCRIPT, "stolon-archive", "%p", f"{self.wal_dir}/%f"]

    def restore_command(self, ctx: BackupContext) -> list[str]:
        return ["/bin/sh", "-c", RESTORE_SCRIPT, "stolon-restore", f"{self.wal_dir}/%f", "%p"]

    # -- base backups ----------------------------------------------------------------------
    def create_backup(self, ctx: BackupContext, progress: Progress) -> BackupInfo:
        self.ensure_repository(ctx)
        start = datetime.now(UTC)
        backup_id = start.strftime("%Y%m%dT%H%M%SZ")
        while _exists_as(ctx, self.backups_dir / backup_id):
            time.sleep(1.0)
            start = datetime.now(UTC)
            backup_id = start.strftime("%Y%m%dT%H%M%SZ")
        dest = self.backups_dir / backup_id
        argv = [
            str(ctx.pg_bin_dir / "pg_basebackup"),
            "-D",
            str(dest),
            "-F",
            "tar",
            "-X",
            "none",
            "--checkpoint=fast",
            "-l",
            f"stolon {backup_id}",
            "--no-password",
            "-v",
        ]
        if self.compress:
            argv.append("-z")
        progress(f"pg_basebackup into {dest}", None, None)
        try:
            with ctx.libpq_env(replication=True) as env:
                res = ctx.run(argv, env=env, timeout=ctx.timeout)
        except PostgresError as e:
            ctx.run(["rm", "-rf", str(dest)], check=False)
            raise BackupError(f"pg_basebackup failed: {one_line(e)}") from None
        del res
        try:
            manifest = json.loads(ctx.run(["cat", str(dest / "backup_manifest")]).stdout)
            ranges = manifest["WAL-Ranges"]
            start_lsn = parse_lsn(ranges[0]["Start-LSN"])
            end_lsn = parse_lsn(ranges[-1]["End-LSN"])
            timeline = int(ranges[-1]["Timeline"])
        except (PostgresError, ValueError, KeyError, IndexError, TypeError) as e:
            ctx.run(["rm", "-rf", str(dest)], check=False)
            raise BackupError(
                f"cannot read the WAL range of the backup from its backup_manifest: {e}"
            ) from None
        end = datetime.now(UTC)
        size = _du(ctx, dest)
        info = BackupInfo(
            id=backup_id,
            start_time=start,
            end_time=end,
            start_lsn=start_lsn,
            end_lsn=end_lsn,
            timeline=timeline,
            size=size,
            pg_major=ctx.pg_major,
            details={"path": str(dest), "compressed": str(self.compress).lower()},
        )
        meta = json.dumps(info.to_obj(), indent=2, sort_keys=True)
        # written by the tool's user, last: a backup without it is incomplete
        ctx.run(["/bin/sh", "-c", WRITE_SCRIPT, "stolon-meta", str(dest / META), meta])
        progress(f"backup {backup_id} done ({size} bytes)", size, size)
        return info

    def list_backups(self, ctx: BackupContext) -> list[BackupInfo]:
        self.check(ctx)
        try:
            res = ctx.run(
                ["/bin/sh", "-c", 'for f in "$1"/*/' + META + '; do [ -f "$f" ] && cat "$f" && echo; done; true',
                 "stolon-list", str(self.backups_dir)],
            )  # fmt: skip
        except PostgresError as e:
            raise StorageUnreachableError(f"cannot read {self.backups_dir}: {one_line(e)}") from None
        out: list[BackupInfo] = []
        decoder = json.JSONDecoder()
        text = res.stdout.strip()
        pos = 0
        while pos < len(text):
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
            pos = end
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if isinstance(obj, dict):
                try:
                    out.append(BackupInfo.from_obj(obj))
                except BackupError:
                    continue
        return sorted(out, key=lambda b: (b.end_time, b.id))

    def restore_backup(
        self, ctx: BackupContext, backup: BackupInfo, target_dir: Path, progress: Progress
    ) -> None:
        if not BACKUP_ID_RE.fullmatch(backup.id):
            raise BackupNotFoundError(f"backup id {backup.id!r} is not valid")
        src = self.backups_dir / backup.id
        tar = src / ("base.tar.gz" if (backup.details or {}).get("compressed") == "true" else "base.tar")
        try:
            ctx.run(["test", "-f", str(src / META), "-a", "-f", str(tar)])
        except PostgresError:
            raise BackupNotFoundError(
                f"backup {backup.id} is not in {self.backups_dir}: see `stolonctl backup list`"
            ) from None
        progress(f"extracting {tar}", 0, backup.size)
        try:
            ctx.run(["tar", "-x", "-f", str(tar), "-C", str(target_dir)], timeout=ctx.timeout)
        except PostgresError as e:
            raise BackupError(f"extracting backup {backup.id} failed: {one_line(e)}") from None
        progress(f"backup {backup.id} extracted", backup.size, backup.size)

    def delete_backups(self, ctx: BackupContext, retain: int) -> list[str]:
        if retain < 1:
            raise BackupConfigError(f"retain must be at least 1 (got {retain})")
        backups = self.list_backups(ctx)
        doomed = backups[:-retain] if len(backups) > retain else []
        for b in doomed:
            ctx.run(["rm", "-rf", str(self.backups_dir / b.id)])
        if backups[-retain:]:
            oldest = min(backups[-retain:], key=lambda b: b.start_lsn)
            self._delete_wal_before(ctx, oldest)
        return [b.id for b in doomed]

    def _delete_wal_before(self, ctx: BackupContext, oldest: BackupInfo) -> None:
        """Remove WAL segments (any timeline) before the segment where ``oldest`` starts;
        history files are kept."""
        first = strip_timeline(wal_file_name(oldest.timeline, oldest.start_lsn))
        res = ctx.run(["ls", "-1", str(self.wal_dir)], check=False)
        if res.returncode != 0:
            return  # no WAL archived yet
        doomed = [
            name for name in res.stdout.split() if _SEGMENT.fullmatch(name) and strip_timeline(name) < first
        ]
        for i in range(0, len(doomed), 200):
            ctx.run(["rm", "-f", "--", *(str(self.wal_dir / n) for n in doomed[i : i + 200])])


def _exists_as(ctx: BackupContext, path: Path) -> bool:
    return ctx.run(["test", "-e", str(path)], check=False).returncode == 0


def _du(ctx: BackupContext, path: Path) -> int:
    res = ctx.run(["du", "-s", "-b", str(path)])
    try:
        return int(res.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def _factory(settings: dict[str, Any]) -> DirectoryMethod:
    return DirectoryMethod(settings)


class _Plugin:
    @stolon.hookimpl
    def stolon_backup_methods(self) -> list[BackupMethodSpec]:
        return [
            MethodSpec(
                name=NAME,
                factory=_factory,
                description="WAL and pg_basebackup tar backups in a directory (local disk or network mount)",
                details={"tools": "pg_basebackup, coreutils"},
            )
        ]


plugin = _Plugin()
