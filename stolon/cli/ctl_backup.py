"""``stolonctl backup``: base backups and the backups in the repository.

``create`` writes a request into the cluster data (``cluster.status.backup``) for the
master's keeper, which runs it (docs/backup.md), and follows it, printing its phases and
the keeper's progress. ``list`` and ``delete`` run the cluster's backup method here, on
the machine where stolonctl runs: the repository and its credentials must be reachable
from it (tools run as the PostgreSQL OS user when stolonctl is root).

The backup settings in a spec given to ``init`` and ``update`` are checked with the
installed method (:func:`check_spec_backup`), and for ``initMode: pitr`` from a backup the
chosen backup must exist and be able to reach the recovery target: bad input fails with
one line and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stolon.backup.base import (
    BackupContext,
    BackupError,
    BackupInfo,
    BackupMethod,
    RecoveryTarget,
    select_backup,
)
from stolon.backup.registry import open_method
from stolon.cli.common import CliError, add_bool_flag, go_duration_seconds
from stolon.cli.ctlcontext import CtlContext
from stolon.keeper.activity import describe, human_bytes
from stolon.keeper.pgconfig import from_backup_method, recovery_target_of
from stolon.model import ClusterData
from stolon.model.cluster import (
    BACKUP_BY_STOLONCTL,
    BACKUP_COMPLETED,
    BACKUP_REQUESTED,
    PHASE_NORMAL,
    BackupRequest,
    BackupStatus,
)
from stolon.model.gotime import now_utc
from stolon.model.spec import INIT_MODE_PITR, ClusterSpec
from stolon.model.uid import new_uid
from stolon.plugins import StolonPluginManager
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.errors import PostgresError
from stolon.postgres.runas import resolve_pg_os_user

POLL_S = 0.5
#: compare-and-swap tries: the leader sentinel writes the cluster data every cycle
CAS_RETRIES = 10
#: extra wait beyond backup.timeout before ``create`` gives up following a request
WAIT_GRACE_S = 120.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="Base backups through the cluster's backup method")
    bsub = p.add_subparsers(dest="backup_command", metavar="COMMAND")
    p.set_defaults(func=lambda ctx: _usage(p))

    c = bsub.add_parser("create", help="Ask the master's keeper for a base backup and wait for it")
    add_bool_flag(c, "--wait", "wait until the backup completes or fails, showing its progress", default=True)
    c.add_argument(
        "--timeout",
        type=go_duration_seconds,
        default=0.0,
        metavar="DURATION",
        help="give up waiting after this time (default: the spec's backup.timeout plus 2m)",
    )
    c.set_defaults(func=cmd_create)

    ls = bsub.add_parser("list", help="List the base backups in the repository")
    ls.add_argument("-f", "--format", default="text", choices=("text", "json"), help="output format")
    ls.set_defaults(func=cmd_list)

    d = bsub.add_parser("delete", help="Delete old base backups (and the WAL only they need)")
    d.add_argument("--retain", type=int, required=True, metavar="N", help="keep the newest N backups")
    add_bool_flag(d, "--yes", "don't ask for confirmation", short="-y")
    d.set_defaults(func=cmd_delete)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 1


# -- running the method here -----------------------------------------------------------------


@contextmanager
def local_context(cluster_name: str) -> Iterator[BackupContext]:
    """A context for running a method on this machine: a temporary private work dir, the
    PostgreSQL OS user (``postgres`` when we are root), the local PostgreSQL binaries."""
    try:
        user = resolve_pg_os_user()
    except PostgresError as e:
        raise CliError(f"cannot run backup tools here: {e}") from None
    try:
        bins: PgBinaries | None = PgBinaries.find()
    except PostgresError:
        bins = None
    work = Path(tempfile.mkdtemp(prefix="stolonctl-backup-"))
    try:
        os.chmod(work, 0o700)
        user.chown(work)
        yield BackupContext(
            cluster_name=cluster_name,
            pgdata=work / "pgdata",
            pg_bin_dir=bins.bin_dir if bins else Path("/usr/bin"),
            pg_major=bins.version().major if bins else 0,
            os_user=user,
            work_dir=work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _method(pm: StolonPluginManager, spec: ClusterSpec) -> tuple[str, BackupMethod]:
    """The cluster's backup method (the ``backup`` section, else ``pitrConfig.fromBackup``)."""
    name, settings = "", None
    if spec.backup is not None:
        name, settings = spec.backup.method, spec.backup.settings
    elif spec.pitr_config is not None and spec.pitr_config.from_backup is not None:
        name, settings = from_backup_method(spec.pitr_config.from_backup, None)
    if not name:
        raise CliError(
            "the cluster spec has no backup section: configure one, e.g. stolonctl update --patch"
            ' \'{"backup": {"method": "directory", "settings": {"path": "/backups"}}}\''
        )
    try:
        return name, open_method(pm, name, settings)
    except BackupError as e:
        raise CliError(str(e)) from None


def _listed(ctx: CtlContext, method: BackupMethod) -> list[BackupInfo]:
    with local_context(ctx.args.cluster_name) as bctx:
        try:
            method.prepare(bctx)
            return method.list_backups(bctx)
        except (BackupError, PostgresError) as e:
            raise CliError(f"cannot list the backups: {e}") from None


def check_spec_backup(pm: StolonPluginManager, spec: ClusterSpec, cluster_name: str) -> None:
    """Check a spec's backup settings with the installed methods; for ``initMode: pitr``
    from a backup, check that the backup exists and can reach the recovery target."""
    try:
        if spec.backup is not None:
            open_method(pm, spec.backup.method, spec.backup.settings)
        pitr = spec.pitr_config
        if spec.init_mode != INIT_MODE_PITR or pitr is None or pitr.from_backup is None:
            return
        name, settings = from_backup_method(pitr.from_backup, spec.backup)
        method = open_method(pm, name, settings)
        kind, value = recovery_target_of(pitr.recovery_target_settings)
        target = RecoveryTarget(kind, value)
        if kind == "time":
            _ = target.time  # refuses an unreadable time
        with local_context(cluster_name) as bctx:
            method.prepare(bctx)
            backups = method.list_backups(bctx)
        select_backup(backups, pitr.from_backup.effective_backup_id, target)
    except (BackupError, PostgresError) as e:
        raise CliError(f"invalid cluster spec: {e}") from None


# -- commands ----------------------------------------------------------------------------------


def cmd_create(ctx: CtlContext) -> int:
    cd, _ = ctx.cluster_data()
    assert cd.cluster is not None and cd.cluster.spec is not None
    spec = cd.cluster.spec
    if spec.backup is None:
        _method(ctx.plugins, ClusterSpec())  # raises the "no backup section" error
    assert spec.backup is not None
    _method(ctx.plugins, spec)  # a clear error when the method can't be used here
    request_id = new_uid()
    made: list[BackupRequest] = []

    def add_request(work: ClusterData) -> None:
        # checked again on every try: the sentinel rewrites the cluster data every cycle
        assert work.cluster is not None
        st = work.cluster.status
        if st.phase != PHASE_NORMAL:
            raise CliError(f"the cluster is not ready for a backup (phase {st.phase or 'none'})")
        master = work.master_db()
        if master is None or master.spec is None:
            raise CliError("the cluster has no master to take a backup of")
        current = st.backup.request if st.backup is not None else None
        if current is not None and current.active:
            raise CliError(
                f"a backup is already {current.phase} (request {current.id} on keeper {current.keeper_uid}):"
                " wait for it to end"
            )
        req = BackupRequest(
            id=request_id,
            phase=BACKUP_REQUESTED,
            requested_by=BACKUP_BY_STOLONCTL,
            request_time=now_utc(),
            db_uid=master.uid,
            keeper_uid=master.spec.keeper_uid,
        )
        if st.backup is None:
            st.backup = BackupStatus()
        st.backup.request = req
        made[:] = [req]

    ctx.store.update_cluster_data(add_request, retries=CAS_RETRIES)
    req = made[0]
    ctx.out(f"backup {req.id} requested from keeper {req.keeper_uid}")
    if not ctx.args.wait:
        return 0
    limit = ctx.args.timeout or spec.backup.effective_timeout.seconds + WAIT_GRACE_S
    return wait(ctx, req.id, limit)


def wait(ctx: CtlContext, request_id: str, limit_s: float) -> int:
    """Follow backup request ``request_id`` until it ends; 0 when it completed."""
    deadline = time.monotonic() + limit_s
    last = ""
    while time.monotonic() < deadline:
        cd, _ = ctx.store.get_cluster_data()
        req = _request(cd)
        if req is None or req.id != request_id:
            raise CliError(f"backup request {request_id} is gone from the cluster data (replaced or reset)")
        line = req.phase
        if req.active:
            progress = _progress(ctx, req.keeper_uid)
            if progress:
                line = f"{req.phase}: {progress}"
        elif req.message:
            line = f"{req.phase}: {req.message}"
        if line != last:
            ctx.out(line)
            last = line
        if not req.active:
            if req.phase == BACKUP_COMPLETED:
                ctx.out(f"backup {req.backup_id} completed ({human_bytes(req.size)}), request {request_id}")
                return 0
            raise CliError(f"backup request {request_id} {req.phase}: {req.message}")
        time.sleep(POLL_S)
    raise CliError(f"gave up waiting for backup request {request_id} after {limit_s:g}s")


def _request(cd: ClusterData | None) -> BackupRequest | None:
    if cd is None or cd.cluster is None or cd.cluster.status.backup is None:
        return None
    return cd.cluster.status.backup.request


def _progress(ctx: CtlContext, keeper_uid: str) -> str:
    try:
        info = ctx.store.keepers_info().get(keeper_uid)
    except Exception:
        return ""
    if info is None or info.activity is None or info.activity.kind != "backup":
        return ""
    return describe(info.activity)


def cmd_list(ctx: CtlContext) -> int:
    cd, _ = ctx.cluster_data()
    assert cd.cluster is not None and cd.cluster.spec is not None
    name, method = _method(ctx.plugins, cd.cluster.spec)
    backups = _listed(ctx, method)
    if ctx.args.format == "json":
        ctx.out(json.dumps([b.to_obj() for b in backups], indent=2))
        return 0
    if not backups:
        ctx.out(f"no backups (method {name})")
        return 0
    rows = [("ID", "END TIME (UTC)", "START LSN", "END LSN", "TIMELINE", "SIZE")]
    for b in backups:
        obj = b.to_obj()
        rows.append(
            (
                b.id,
                b.end_time.strftime("%Y-%m-%d %H:%M:%S"),
                obj["startLSN"],
                obj["endLSN"],
                str(b.timeline),
                human_bytes(b.size),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        ctx.out("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_delete(ctx: CtlContext) -> int:
    a = ctx.args
    if a.retain < 1:
        raise CliError("--retain must be at least 1: the newest backup is never deleted")
    cd, _ = ctx.cluster_data()
    assert cd.cluster is not None and cd.cluster.spec is not None
    _name, method = _method(ctx.plugins, cd.cluster.spec)
    backups = _listed(ctx, method)
    doomed = backups[: -a.retain] if len(backups) > a.retain else []
    if not doomed:
        ctx.out(f"nothing to delete: {len(backups)} backup(s), keeping {a.retain}")
        return 0
    if not a.yes:
        ctx.out(
            f"These backups and the WAL only they need will be deleted: {', '.join(b.id for b in doomed)}"
        )
        if not ctx.confirm("Are you sure you want to continue? [yes/no] "):
            ctx.out("exiting")
            return 0
    with local_context(a.cluster_name) as bctx:
        try:
            method.prepare(bctx)
            deleted = method.delete_backups(bctx, a.retain)
        except (BackupError, PostgresError) as e:
            raise CliError(f"cannot delete backups: {e}") from None
    ctx.out(f"deleted {len(deleted)} backup(s): {', '.join(deleted) or '-'}")
    return 0
