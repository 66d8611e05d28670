"""Making a data directory follow another server: ``pg_basebackup`` and ``pg_rewind``.

Both read the password from a temporary ``PGPASSFILE`` (0600, owned by the PostgreSQL
user, deleted afterwards), never from argv or the environment, and both run with
``options='-c synchronous_commit=off'`` on the source: they write there (backup
start/stop records, pg_rewind's temporary objects) and, with synchronous replication on
and no standby connected, would otherwise hang.

``pg_basebackup`` is run **without** ``-R``: the keeper writes its own recovery settings
(standby.signal + postgresql.conf) before the first start, and postgresql.auto.conf,
where ``-R`` would write ``primary_conninfo``, is replaced at every start anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from stolon.postgres import datadir
from stolon.postgres.conninfo import ConnInfo, pgpass_line
from stolon.postgres.errors import DataDirError, InstanceRunningError
from stolon.postgres.instance import Instance
from stolon.postgres.parameters import stolon_name
from stolon.postgres.runas import run_command, secret_file

log = logging.getLogger(__name__)

SYNC_COMMIT_OFF = "-c synchronous_commit=off"


@dataclass(frozen=True)
class SourceServer:
    """The server to copy from, as a libpq TCP destination. The password stays out of
    every string built from this object."""

    host: str
    port: int | str
    user: str
    password: str | None = field(default=None, repr=False)
    sslmode: str = "prefer"

    def conninfo(self, **extra: str) -> ConnInfo:
        """Connection parameters without the password (it goes to the PGPASSFILE)."""
        params = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "sslmode": self.sslmode,
            "options": SYNC_COMMIT_OFF,
        }
        params.update(extra)
        return ConnInfo(params)


def basebackup(
    instance: Instance,
    source: SourceServer,
    *,
    db_uid: str,
    use_slot: bool = True,
    fast_checkpoint: bool = False,
    timeout: float = 3600.0,
) -> None:
    """Fill the (missing or empty) data directory with a copy of ``source``.

    ``pg_basebackup -X stream -D PGDATA -d <conninfo> [--slot stolon_<db_uid>]
    [--checkpoint=fast]``, as the replication user. ``application_name`` is
    ``stolon_<db_uid>``. The slot must exist on the source. The data directory must be
    missing or empty (:meth:`Instance.remove_data_dir` first). On failure it is removed
    (never leave a half copy that looks initialized).

    ``fast_checkpoint`` asks the source for an immediate checkpoint instead of a spread
    one (Go Stolon's behaviour): the copy starts sooner at the cost of an I/O burst.
    """
    if instance.is_running():
        raise InstanceRunningError("cannot take a base backup into a running instance")
    pgdata = instance.data_dir
    datadir.create_data_dir(pgdata, instance.os_user)  # must be missing or empty
    conninfo = source.conninfo(application_name=stolon_name(db_uid))
    argv = [
        instance.binaries.path("pg_basebackup"),
        "-X",
        "stream",
        "-D",
        str(pgdata),
        "-d",
        conninfo.to_string(),
        "--no-password",
        "-v",
    ]
    if use_slot:
        argv += ["--slot", stolon_name(db_uid)]
    if fast_checkpoint:
        argv.append("--checkpoint=fast")
    log.info("running pg_basebackup from %s:%s", source.host, source.port)
    try:
        with secret_file(
            pgpass_line(source.user, source.password or ""), instance.os_user, prefix="stolon-pgpass-"
        ) as passfile:
            run_command(
                argv,
                user=instance.os_user,
                timeout=timeout,
                env={"PGPASSFILE": str(passfile)},
                secrets=[source.password],
            )
    except BaseException:
        datadir.remove_data_dir(pgdata)
        raise
    log.info("pg_basebackup succeeded")


def rewind(
    instance: Instance,
    source: SourceServer,
    *,
    timeout: float = 3600.0,
    debug: bool = False,
) -> None:
    """``pg_rewind -D PGDATA --source-server=<conninfo>`` as the superuser.

    The source must be the current primary (pg_rewind creates temporary objects there),
    reached as a superuser with database ``postgres``. The instance must be stopped. The
    postgresql.auto.conf symlink is removed first (pg_rewind refuses symlinks it does not
    expect); the next start puts it back.

    The target must have ``wal_log_hints=on`` or data checksums, and the source must still
    have the WAL from the divergence point on. Errors raise (the keeper falls back to a
    full base backup).
    """
    if instance.is_running():
        raise InstanceRunningError("cannot rewind a running instance")
    pgdata = instance.data_dir
    if not datadir.is_initialized(pgdata):
        raise DataDirError(f"{pgdata} is not initialized; nothing to rewind")
    datadir.unblock_alter_system(pgdata)
    conninfo = source.conninfo(dbname="postgres")
    argv = [
        instance.binaries.path("pg_rewind"),
        "-D",
        str(pgdata),
        f"--source-server={conninfo.to_string()}",
    ]
    if debug:
        argv.append("--debug")
    log.info("running pg_rewind against %s:%s", source.host, source.port)
    with secret_file(
        pgpass_line(source.user, source.password or ""), instance.os_user, prefix="stolon-pgpass-"
    ) as passfile:
        run_command(
            argv,
            user=instance.os_user,
            timeout=timeout,
            env={"PGPASSFILE": str(passfile)},
            secrets=[source.password],
        )
    log.info("pg_rewind succeeded")
