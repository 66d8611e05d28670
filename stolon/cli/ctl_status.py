"""``stolonctl status``: sentinels, proxies, keepers and the replication tree.

The text form is Go Stolon's byte for byte (its renderText: headers, messages, and its
``tabwriter`` flushed after every row, see :mod:`stolon.cli.tabwriter`); our own sections
(switchover, activity, backups, warnings) come after everything Go prints. Unlike Go
Stolon, it also works when there is no cluster data yet, printing what the store holds.

Every string from the store (UIDs, addresses) is printed through
:func:`stolon.model.text.printable`: anyone who can publish an info must not be able to
move the cursor, recolour or retitle the terminal, or forge lines. The JSON form is escaped as
Go's encoder escapes it, and characters that could drive a terminal as well
(:mod:`stolon.model.gojson`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from stolon.cli import status_warnings
from stolon.cli.common import CliError
from stolon.cli.ctlcontext import CtlContext
from stolon.cli.tabwriter import TabWriter, table
from stolon.keeper.activity import describe, human_bytes
from stolon.model import ClusterData, KeeperInfo, ModelError, gojson
from stolon.model.cron import CronError, CronSchedule
from stolon.model.text import printable


@dataclass
class SentinelRow:
    uid: str
    leader: bool


@dataclass
class ProxyRow:
    uid: str
    generation: int


@dataclass
class KeeperRow:
    uid: str
    listen_address: str
    healthy: bool
    pg_healthy: bool
    pg_wanted_generation: int
    pg_current_generation: int


@dataclass
class ClusterRow:
    available: bool = False
    master_keeper_uid: str = ""
    master_db_uid: str = ""


@dataclass
class SwitchoverRow:
    """A switchover in progress (ours; ``stolonctl switchover``, docs/switchover.md)."""

    id: str
    phase: str
    target_keeper: str
    requested: str
    message: str = ""


@dataclass
class ArchivingRow:
    keeper: str
    last_archived_wal: str = ""
    last_archived_time: str = ""
    failed_count: int = 0
    last_failed_wal: str = ""
    last_failed_time: str = ""
    method_error: str = ""


@dataclass
class BackupSection:
    method: str = ""
    schedule: str = ""
    next_scheduled: str = ""
    last_request: dict[str, Any] | None = None
    archiving: list[ArchivingRow] = field(default_factory=list)


@dataclass
class ActivityRow:
    keeper: str
    kind: str
    since: str
    detail: str


@dataclass
class Status:
    sentinels: list[SentinelRow] = field(default_factory=list)
    proxies: list[ProxyRow] = field(default_factory=list)
    keepers: list[KeeperRow] = field(default_factory=list)
    cluster: ClusterRow = field(default_factory=ClusterRow)
    #: ours: backups and WAL archiving (when the spec has a backup section or WAL is archived)
    backup: BackupSection | None = None
    #: ours: long work in progress on keepers (restores, base backups, resyncs)
    activities: list[ActivityRow] = field(default_factory=list)
    #: ours: a switchover in progress
    switchover: SwitchoverRow | None = None
    #: ours: see stolon.cli.status_warnings
    warnings: list[str] = field(default_factory=list)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="Display the current cluster status")
    p.add_argument("-f", "--format", default="text", help="output format: text or json")
    p.set_defaults(func=cmd_status)


def collect(ctx: CtlContext) -> tuple[Status, ClusterData | None]:
    store = ctx.store
    leader = store.get_leader()
    status = Status()
    sentinels = store.sentinels_info()
    for uid in sorted(sentinels):
        status.sentinels.append(SentinelRow(uid, leader is not None and uid == leader))
    for uid, pi in sorted(store.proxies_info().items()):
        status.proxies.append(ProxyRow(pi.uid or uid, pi.generation))
    keepers_info = store.keepers_info()
    try:
        cd, _ = store.get_cluster_data()
    except ModelError as e:
        raise CliError(f"cannot read the stored cluster data: {e}") from None
    status.warnings = status_warnings.collect(cd, keepers_info, sentinels, leader, store.malformed.current())
    if cd is None:
        return status, None
    for kuid in sorted(cd.keepers or {}):
        keeper = (cd.keepers or {})[kuid]
        db = cd.db_of_keeper(kuid)
        row = KeeperRow(kuid, "(no db assigned)", keeper.status.healthy, False, 0, 0)
        if db is not None:
            row.pg_healthy = db.status.healthy
            row.pg_wanted_generation = db.generation
            row.pg_current_generation = db.status.current_generation
            row.listen_address = "(unknown)"
            if db.status.listen_address:
                row.listen_address = f"{db.status.listen_address}:{db.status.port}"
        status.keepers.append(row)
    if cd.cluster is not None and cd.dbs is not None:
        status.cluster.available = True
        sw = cd.cluster.status.switchover
        if sw is not None and sw.active:
            target = sw.target_keeper
            if not target and sw.target_db:
                tdb = (cd.dbs or {}).get(sw.target_db)
                target = tdb.spec.keeper_uid if tdb is not None and tdb.spec is not None else ""
            status.switchover = SwitchoverRow(sw.id, sw.phase, target, _time(sw.request_time), sw.message)
        master = cd.master_db()
        if master is not None and master.spec is not None:
            status.cluster.master_db_uid = master.uid
            status.cluster.master_keeper_uid = master.spec.keeper_uid
    _collect_backups(status, cd, keepers_info)
    return status, cd


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _collect_backups(status: Status, cd: ClusterData, infos: Mapping[str, KeeperInfo]) -> None:
    for uid in sorted(infos):
        act = infos[uid].activity
        if act is not None and act.kind:
            status.activities.append(ActivityRow(uid, act.kind, _time(act.since), describe(act)))
    spec = cd.cluster.spec if cd.cluster is not None else None
    section = spec.backup if spec is not None else None
    bst = cd.cluster.status.backup if cd.cluster is not None else None
    rows = []
    for uid in sorted(infos):
        info = infos[uid]
        arch = info.postgres_state.archiver if info.postgres_state is not None else None
        if arch is None and not info.backup_error:
            continue
        row = ArchivingRow(uid, method_error=info.backup_error)
        if arch is not None:
            row.last_archived_wal = arch.last_archived_wal
            row.last_archived_time = _time(arch.last_archived_time)
            row.failed_count = arch.failed_count
            row.last_failed_wal = arch.last_failed_wal
            row.last_failed_time = _time(arch.last_failed_time)
        rows.append(row)
    if section is None and not rows and (bst is None or bst.request is None):
        return
    sec = BackupSection(archiving=rows)
    if section is not None:
        sec.method = section.method
        sec.schedule = section.schedule
        if section.schedule:
            try:
                nxt = CronSchedule.parse(section.schedule).next_after(datetime.now(UTC))
            except CronError:
                nxt = None
            sec.next_scheduled = _time(nxt)
    if bst is not None and bst.request is not None:
        sec.last_request = bst.request.to_obj()
    status.backup = sec


def tree_lines(cd: ClusterData, dbuid: str, level: int = 0, prefix: str = "", tail: bool = True) -> list[str]:
    """Go Stolon's printTree: the master and its followers, recursively (no deeper than the
    number of DBs, so a follower loop in a bad document cannot recurse forever)."""
    dbs = cd.dbs or {}
    db = dbs.get(dbuid)
    if db is None or db.spec is None or level > len(dbs):
        return []
    line = prefix + (("└─" if tail else "├─") if level > 0 else "") + printable(db.spec.keeper_uid)
    if cd.cluster is not None and dbuid == cd.cluster.status.master:
        line += " (master)"
    lines = [line]
    followers = db.spec.followers or []
    for i, f in enumerate(followers):
        last = i == len(followers) - 1
        child_prefix = prefix + (("  " if level > 0 else "") if tail else "│ ")
        lines += tree_lines(cd, f, level + 1, child_prefix, last)
    return lines


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def render_text(ctx: CtlContext, status: Status, cd: ClusterData | None) -> None:
    out = ctx.out
    # Go's renderText: one tabwriter over stdout, flushed after each row (so only the header
    # and the first row are aligned together); the keeper rows end with a tab.
    tw = TabWriter(ctx.stdout.write, 0, 8, 1, "\t")
    out("=== Active sentinels ===")
    out()
    if not status.sentinels:
        out("No active sentinels")
    else:
        tw.write("ID\tLEADER\n")
        for s in status.sentinels:
            tw.write(f"{printable(s.uid)}\t{_go_bool(s.leader)}\n")
            tw.flush()
    out()
    out("=== Active proxies ===")
    out()
    if not status.proxies:
        out("No active proxies")
    else:
        tw.write("ID\n")
        for p in status.proxies:
            tw.write(f"{printable(p.uid)}\n")
            tw.flush()
    out()
    out("=== Keepers ===")
    out()
    if not status.keepers:
        out("No keepers available")
        out()
    else:
        tw.write("UID\tHEALTHY\tPG LISTENADDRESS\tPG HEALTHY\tPG WANTEDGENERATION\tPG CURRENTGENERATION\n")
        for k in status.keepers:
            tw.write(
                f"{printable(k.uid)}\t{_go_bool(k.healthy)}\t{printable(k.listen_address)}"
                f"\t{_go_bool(k.pg_healthy)}\t{k.pg_wanted_generation}\t{k.pg_current_generation}\t\n"
            )
            tw.flush()
    if not status.cluster.master_keeper_uid:
        out("No cluster available")
    else:
        out()
        out("=== Cluster Info ===")
        out()
        out(f"Master Keeper: {printable(status.cluster.master_keeper_uid)}")
    if cd is not None and status.cluster.master_db_uid:
        out()
        out("===== Keepers/DB tree =====")
        out()
        for line in tree_lines(cd, status.cluster.master_db_uid):
            out(line)
    out()
    # -- ours, after everything Go prints ------------------------------------------------------
    if status.switchover is not None:
        sw = status.switchover
        out("=== Switchover ===")
        out()
        line = f"{sw.phase}: to keeper {sw.target_keeper or '(best standby)'}, requested {sw.requested} UTC"
        out(printable(line + (f" ({sw.message})" if sw.message else "")))
        out()
    if status.activities:
        out("=== Activity ===")
        out()
        for a in status.activities:
            out(printable(f"{a.keeper}: {a.detail} (since {a.since} UTC)"))
        out()
    if status.backup is not None:
        _render_backup(ctx, status.backup)
    if status.warnings:
        out("=== Warnings ===")
        out()
        for line in status.warnings:
            out(f"WARNING: {line}")  # escaped by stolon.cli.status_warnings
        out()


def _render_backup(ctx: CtlContext, b: BackupSection) -> None:
    out = ctx.out
    out("=== Backups ===")
    out()
    out(f"Method: {printable(b.method or '(none)')}")
    if b.schedule:
        out(printable(f"Schedule: {b.schedule} (UTC), next {b.next_scheduled or 'never'}"))
    req = b.last_request
    if req:
        line = f"Last backup request: {req.get('id', '')} {req.get('phase', '')}"
        line += f", requested by {req.get('requestedBy', '?')} from keeper {req.get('keeperUID', '?')}"
        if req.get("backupID"):
            line += f", backup {req['backupID']} ({human_bytes(int(req.get('size', 0)))})"
        if req.get("message"):
            line += f": {req['message']}"
        out(printable(line))
    if b.archiving:
        out()
        rows = [
            [
                "KEEPER",
                "LAST ARCHIVED WAL",
                "ARCHIVED AT (UTC)",
                "FAILURES",
                "LAST FAILED WAL",
                "FAILED AT (UTC)",
            ]
        ]
        for a in b.archiving:
            rows.append(
                [
                    printable(a.keeper),
                    printable(a.last_archived_wal or "-"),
                    printable(a.last_archived_time or "-"),
                    str(a.failed_count),
                    printable(a.last_failed_wal or "-"),
                    printable(a.last_failed_time or "-"),
                ]
            )
        for line in table(rows):
            out(line)
        for a in b.archiving:
            if a.method_error:
                out(printable(f"{a.keeper}: backup method error: {a.method_error}"))
    out()


def cmd_status(ctx: CtlContext) -> int:
    fmt = ctx.args.format
    if fmt not in ("text", "json", ""):
        raise CliError(f"unrecognised output format {fmt!r}: use text or json")
    status, cd = collect(ctx)
    if fmt == "json":
        ctx.out(gojson.dumps(asdict(status), indent="\t", terminal_safe=True))
    else:
        render_text(ctx, status, cd)
    return 0
