"""The ``pgbackrest`` backup method: stolon's :class:`~stolon.backup.base.BackupMethod` on top
of the ``pgbackrest`` command (Debian's package, 2.45) and a POSIX repository.

Every call first writes ``<work_dir>/pgbackrest.conf`` (:meth:`PgBackRestMethod.prepare`);
every command names it with ``--config`` and the stanza with ``--stanza``:

=====================  ==========================================================================
contract               pgBackRest
=====================  ==========================================================================
check                  ``version``; the repository directory is writable; ``info`` reads it
ensure_repository      ``stanza-create`` (idempotent: "already exists and is valid" exits 0)
archive_command        ``archive-push %p`` (tried twice; see :data:`ARCHIVE_SCRIPT`)
restore_command        ``archive-get %f %p`` (exit 1 when the archive has no such file)
create_backup          ``backup --type=full`` (waits until its last WAL segment is archived)
list_backups           ``info --output=json``
restore_backup         ``restore --set=<label> --type=preserve --pg1-path=<target>``
delete_backups         ``expire --repo1-retention-full=<retain>``
=====================  ==========================================================================

``--type=preserve`` is the restore type that writes no recovery settings when the target is
empty (``--type=none`` still creates ``recovery.signal``): the keeper writes them itself.
"""

from __future__ import annotations

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
from stolon.backup.files import ensure_private_dir, read_env_file, write_private
from stolon.postgres.errors import BinaryNotFoundError, CommandError, CommandTimeoutError, PostgresError
from stolon.postgres.runas import CommandResult
from stolon_backup_pgbackrest.config import (
    CONFIG_NAME,
    LOCK_DIR,
    LOG_DIR,
    SPOOL_DIR,
    Target,
    render_config,
)
from stolon_backup_pgbackrest.info import StanzaStatus, one_line, parse_info, tool_error
from stolon_backup_pgbackrest.options import CIPHER_PASS_KEY, Options, parse_options

#: found on PATH, like PostgreSQL finds it when it runs the archive/restore commands
PGBACKREST = "pgbackrest"
NOT_INSTALLED = "pgbackrest is not installed (not found on PATH): install it, e.g. apt-get install pgbackrest"

#: The archive and restore commands are fixed ``sh`` scripts taking the pgbackrest argv as
#: their arguments ($1 the binary, then its options and command). Both add
#: ``--pg1-path="$PWD"``: PostgreSQL runs them in the data directory of the instance that
#: archives or recovers (``%p`` is relative to it), which is not always ``ctx.pgdata`` (a
#: restored copy recovering through the command rendered for its source, a data directory
#: moved by the keeper); pgBackRest resolves ``%p`` against pg1-path and reads pg_control there.
#:
#: ``archive-push`` is tried a second time after a pause when it fails. With ``archive_mode =
#: always`` the master and its standbys push each segment at about the same moment, and
#: pgBackRest's temporary file in the repository is named after the segment and its
#: checksum: of two identical pushes racing, one can fail to rename it ("unable to move").
#: The second try finds the segment archived with the same checksum and succeeds; a
#: different segment under that name still fails (pgBackRest error 45).
ARCHIVE_SCRIPT = (
    'bin=$1; shift; "$bin" --pg1-path="$PWD" "$@" && exit 0; sleep 1; exec "$bin" --pg1-path="$PWD" "$@"'
)
RESTORE_SCRIPT = 'bin=$1; shift; exec "$bin" --pg1-path="$PWD" "$@"'


# pgBackRest error codes (pgBackRest's src/build/error/error.yaml)
ERR_FILE_INVALID = 28
ERR_ARCHIVE_MISMATCH = 44
ERR_LOCK_ACQUIRE = 50
ERR_BACKUP_MISMATCH = 51
ERR_PATH_OPEN = 53
ERR_FILE_MISSING = 55
ERR_BACKUP_SET_INVALID = 75
ERR_ARCHIVE_TIMEOUT = 82
ERR_CRYPTO = 95


class PgBackRestMethod:
    """See the module docstring; settings in :mod:`stolon_backup_pgbackrest.options`."""

    #: Only the master archives (``archive_mode = on``). pgBackRest's documentation
    #: recommends one archiver per stanza, and two pushes of one segment race on a temporary
    #: file opened without O_EXCL: a host dying in that window could leave a short segment
    #: under its final name. After a promotion the keeper pushes the previous timeline's
    #: segments still in the new master's pg_wal instead (see README.md).
    standby_archiving = False

    def __init__(self, settings: dict[str, Any]) -> None:
        self.options: Options = parse_options(settings)

    # -- configuration ---------------------------------------------------------------------

    def stanza(self, ctx: BackupContext) -> str:
        return self.options.stanza_for(ctx.cluster_name)

    def config_path(self, ctx: BackupContext) -> Path:
        return ctx.work_dir / CONFIG_NAME

    def prepare(self, ctx: BackupContext) -> None:
        """Write ``pgbackrest.conf`` (0600) and the lock/log/spool directories (0700), all
        PostgreSQL's OS user's, into the work directory."""
        stanza = self.stanza(ctx)
        for name in (LOCK_DIR, LOG_DIR, SPOOL_DIR):
            ensure_private_dir(ctx.work_dir / name, ctx.os_user)
        text = render_config(self.options, stanza, ctx.work_dir, _target(ctx), self._cipher_pass(ctx))
        write_private(self.config_path(ctx), text, ctx.os_user)

    def _cipher_pass(self, ctx: BackupContext) -> str | None:
        if self.options.cipher_type == "none":
            return None
        values = read_env_file(self.options.env_file, "backup.settings.envFile", owner=ctx.os_user)
        return values.get(CIPHER_PASS_KEY)

    def check(self, ctx: BackupContext) -> str:
        self.prepare(ctx)
        version = self.version(ctx)
        self._check_repository_dir(ctx)
        status = self._info(ctx)
        state = f"{len(status.backups)} backup(s)" if status.created else "stanza not created yet"
        return f"{version}, repository {self.options.repo_path}, stanza {status.name} ({state})"

    def version(self, ctx: BackupContext) -> str:
        """``pgBackRest 2.45``: what ``pgbackrest version`` prints."""
        try:
            res = ctx.run([PGBACKREST, "version"])
        except BinaryNotFoundError:
            raise BackupConfigError(NOT_INSTALLED) from None
        except PostgresError as e:
            raise BackupConfigError(f"pgbackrest does not run: {_detail(e)}") from None
        return res.stdout.strip() or "pgBackRest"

    def _check_repository_dir(self, ctx: BackupContext) -> None:
        repo = str(self.options.repo_path)
        res = ctx.run(["test", "-d", repo, "-a", "-w", repo, "-a", "-x", repo], check=False)
        if res.returncode != 0:
            raise StorageUnreachableError(
                f"backup.settings.repoPath: {repo} is not a directory that OS user {ctx.os_user.name!r}"
                " can write: create it and give it to that user (on every host, e.g. a shared mount)"
            )

    def ensure_repository(self, ctx: BackupContext) -> None:
        """``stanza-create``: creates the stanza, or checks that the existing one belongs to
        this database system."""
        self.prepare(ctx)
        self._check_repository_dir(ctx)
        self._pgbackrest(ctx, "stanza-create", connect=True)

    def archive_command(self, ctx: BackupContext) -> list[str]:
        return [
            "/bin/sh",
            "-c",
            ARCHIVE_SCRIPT,
            "stolon-pgbackrest-archive",
            *self._base_argv(ctx),
            "archive-push",
            "%p",
        ]

    def restore_command(self, ctx: BackupContext) -> list[str]:
        return [
            "/bin/sh",
            "-c",
            RESTORE_SCRIPT,
            "stolon-pgbackrest-restore",
            *self._base_argv(ctx),
            "archive-get",
            "%f",
            "%p",
        ]

    # -- base backups ----------------------------------------------------------------------

    def create_backup(self, ctx: BackupContext, progress: Progress) -> BackupInfo:
        self.prepare(ctx)
        self._check_repository_dir(ctx)
        status = self._info(ctx)
        if not status.created:
            # stanza-create takes the stanza's locks: only when it is missing, so that a
            # backup started while another runs fails on the backup lock with a clear message
            self._pgbackrest(ctx, "stanza-create", connect=True)
        before = {b.id for b in status.backups}
        stanza = self.stanza(ctx)
        progress(f"pgbackrest backup --type=full of stanza {stanza}", None, None)
        self._pgbackrest(ctx, "backup", "--type=full", timeout=ctx.timeout, connect=True)
        new = [b for b in self._info(ctx).backups if b.id not in before]
        if not new:
            raise BackupError(
                f"pgbackrest backup succeeded but stanza {stanza} lists no new backup:"
                f" check with pgbackrest --config={self.config_path(ctx)} info"
            )
        info = new[-1]
        progress(f"backup {info.id} done ({info.size} bytes in the repository)", info.size, info.size)
        return info

    def list_backups(self, ctx: BackupContext) -> list[BackupInfo]:
        self.prepare(ctx)
        return self._info(ctx).backups

    def restore_backup(
        self, ctx: BackupContext, backup: BackupInfo, target_dir: Path, progress: Progress
    ) -> None:
        self.prepare(ctx)
        stanza = self.stanza(ctx)
        listed = {b.id for b in self._info(ctx).backups}
        if backup.id not in listed:
            raise BackupNotFoundError(
                f"backup {backup.id} is not in stanza {stanza} of {self.options.repo_path}:"
                " see `stolonctl backup list`"
            )
        present = ctx.run(["find", str(target_dir), "-mindepth", "1", "-maxdepth", "1"], check=False)
        if present.returncode != 0 or present.stdout.strip():
            raise BackupError(
                f"cannot restore into {target_dir}: it is not an empty directory that OS user"
                f" {ctx.os_user.name!r} can read; nothing was changed"
            )
        progress(f"pgbackrest restore --set={backup.id} into {target_dir}", 0, backup.size)
        try:
            self._pgbackrest(
                ctx,
                "restore",
                f"--set={backup.id}",
                "--type=preserve",
                f"--pg1-path={target_dir}",
                timeout=ctx.timeout,
            )
        except BackupError:
            # pgBackRest restores pg_control last, so a partial copy cannot start; still, leave
            # the directory empty as it was given (it was empty: everything in it is ours)
            ctx.run(["find", str(target_dir), "-mindepth", "1", "-delete"], check=False)
            raise
        # the keeper writes the recovery configuration; nothing of the kind may be left here
        ctx.run(["rm", "-f", "--", str(target_dir / "recovery.signal"), str(target_dir / "standby.signal")])
        progress(f"backup {backup.id} restored into {target_dir}", backup.size, backup.size)

    def delete_backups(self, ctx: BackupContext, retain: int) -> list[str]:
        if retain < 1:
            raise BackupConfigError(f"retain must be at least 1 (got {retain})")
        self.prepare(ctx)
        before = self._info(ctx)
        if not before.created or not before.backups:
            return []
        self._pgbackrest(ctx, "expire", f"--repo1-retention-full={retain}")
        after = {b.id for b in self._info(ctx).backups}
        return [b.id for b in before.backups if b.id not in after]

    # -- running pgbackrest ----------------------------------------------------------------

    def _base_argv(self, ctx: BackupContext) -> list[str]:
        return [PGBACKREST, f"--config={self.config_path(ctx)}", f"--stanza={self.stanza(ctx)}"]

    def _info(self, ctx: BackupContext) -> StanzaStatus:
        res = self._pgbackrest(ctx, "info", "--output=json")
        status = parse_info(res.stdout, self.stanza(ctx))
        if not status.readable and status.undecryptable:
            fix = (
                f"check {CIPHER_PASS_KEY} in backup.settings.envFile"
                if self.options.cipher_type != "none"
                else "if the repository is encrypted, set backup.settings.cipherType and envFile"
            )
            raise BackupConfigError(
                f"pgbackrest cannot decrypt the repository {self.options.repo_path} ({status.describe()}): {fix}"
            )
        if not status.readable:
            raise StorageUnreachableError(
                f"pgbackrest cannot use the repository {self.options.repo_path}: {status.describe()}"
            )
        return status

    def _pgbackrest(
        self,
        ctx: BackupContext,
        command: str,
        *args: str,
        timeout: float | None = None,
        connect: bool = False,
    ) -> CommandResult:
        """Run ``pgbackrest <command>`` as PostgreSQL's OS user; ``connect``: with the libpq
        environment (password file) for commands that connect to ``ctx.server``."""
        argv = [*self._base_argv(ctx), command, *args]
        try:
            if connect:
                with ctx.libpq_env() as env:
                    return ctx.run(argv, env=env, timeout=timeout, secrets=[self._cipher_pass(ctx)])
            return ctx.run(argv, timeout=timeout, secrets=[self._cipher_pass(ctx)])
        except BinaryNotFoundError:
            raise BackupConfigError(NOT_INSTALLED) from None
        except CommandTimeoutError as e:
            raise BackupError(
                f"pgbackrest {command} did not finish within {e.timeout:g}s and was stopped:"
                " raise backup.timeout or look at the repository's speed"
            ) from None
        except CommandError as e:
            raise self._failure(ctx, command, e.output) from None

    def _failure(self, ctx: BackupContext, command: str, output: str) -> BackupError:
        """A one-line error for a failed command, with the fix when we know it."""
        stanza = self.stanza(ctx)
        err = tool_error(output)
        text = f"pgbackrest {command} failed: {one_line(output)}"
        if err is None:
            return BackupError(text)
        mismatch = err.code in (ERR_BACKUP_MISMATCH, ERR_ARCHIVE_MISMATCH) or (
            err.code == ERR_FILE_INVALID and "do not match" in err.message
        )
        if mismatch:
            return BackupError(
                f"{text}: stanza {stanza} in {self.options.repo_path} belongs to another database system"
                " (another cluster, or this one before a re-initialisation): set a new backup.settings.stanza"
                " or remove the old one with pgbackrest stanza-delete"
            )
        if err.code == ERR_LOCK_ACQUIRE:
            return BackupError(f"{text}: another pgbackrest command holds the stanza's lock; retry later")
        if err.code == ERR_FILE_MISSING and command != "restore":
            return BackupError(
                f"{text}: stanza {stanza} is not created yet (the master's keeper creates it once"
                " PostgreSQL runs with archiving)"
            )
        if err.code == ERR_PATH_OPEN:
            return StorageUnreachableError(text)
        if err.code == ERR_BACKUP_SET_INVALID:
            return BackupNotFoundError(f"{text}: see `stolonctl backup list`")
        if err.code == ERR_ARCHIVE_TIMEOUT:
            return BackupError(
                f"{text}: PostgreSQL did not archive the backup's last WAL segment through this method in"
                " time: check archive_command and pg_stat_archiver, or raise backup.settings.archiveTimeout"
            )
        if err.code == ERR_CRYPTO:
            return BackupConfigError(
                f"{text}: check backup.settings.cipherType and {CIPHER_PASS_KEY} in backup.settings.envFile"
            )
        return BackupError(text)


def _target(ctx: BackupContext) -> Target:
    srv = ctx.server
    if srv is None:
        return Target(pgdata=ctx.pgdata)
    return Target(
        pgdata=ctx.pgdata,
        port=srv.port,
        socket_dir=srv.host if srv.host.startswith("/") else None,
        user=srv.user,
        database=srv.database,
    )


def _detail(e: PostgresError) -> str:
    if isinstance(e, CommandError):
        return one_line(e.output)
    return str(e)
