"""``stolonctl switchover``: ask the leader sentinel for a planned master change.

The request is checked here against the stored cluster data with the sentinel's rule
(:mod:`stolon.sentinel.eligibility`; what only a running sentinel knows, a fresh report and
recent streaming, is left to it) so that a bad one fails at once with a one-line error, then
written with a compare-and-swap as ``cluster.status.switchover``. The sentinel carries it
out (docs/switchover.md); ``--wait`` follows its phases.
"""

from __future__ import annotations

import argparse
import time

from stolon.cli.common import CliError, add_bool_flag, go_duration_seconds
from stolon.cli.ctlcontext import CtlContext
from stolon.model import ClusterData, Duration, Switchover
from stolon.model.cluster import (
    PHASE_NORMAL,
    SWITCHOVER_COMPLETED,
    SWITCHOVER_REQUESTED,
)
from stolon.model.gotime import now_utc
from stolon.model.spec import ROLE_STANDBY
from stolon.model.text import printable
from stolon.model.uid import new_uid
from stolon.sentinel.eligibility import (
    Terms,
    explain,
    explain_by_keeper,
    switchover_candidates,
    switchover_refusals,
)

DEFAULT_TIMEOUT_S = 60.0
POLL_S = 0.5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "switchover",
        help="Planned master change without losing a commit: the master is stopped cleanly and a"
        " standby that received all of its WAL is promoted",
    )
    p.add_argument(
        "--to",
        dest="target",
        default="",
        metavar="KEEPER_UID",
        help="the keeper whose standby becomes master (default: the sentinel picks the eligible"
        " standby with the most WAL)",
    )
    p.add_argument(
        "--timeout",
        default=DEFAULT_TIMEOUT_S,
        type=go_duration_seconds,
        metavar="DURATION",
        help="cancel the switchover (the old master starts again) if the new master is not"
        " promoted within this time (default 1m0s)",
    )
    add_bool_flag(p, "--wait", "wait until the switchover completes or is cancelled, showing its phases")
    add_bool_flag(p, "--yes", "don't ask for confirmation", short="-y")
    p.set_defaults(func=cmd_switchover)


def check_request(cd: ClusterData, target_keeper: str) -> str:
    """Why a switchover can't be requested now ("" when it can), from the cluster data."""
    if cd.cluster is None or cd.cluster.spec is None:
        return "the cluster data has no cluster spec"
    st = cd.cluster.status
    if st.phase != PHASE_NORMAL:
        return f"the cluster is not ready for a switchover (phase {st.phase or 'none'})"
    if cd.cluster.spec.role == ROLE_STANDBY:
        return "a standby cluster can't switch over (its master follows a remote primary)"
    sw = st.switchover
    if sw is not None and sw.active:
        target = sw.target_keeper or "chosen by the sentinel"
        return f"a switchover is already running (id {sw.id}, phase {sw.phase}, target keeper {target})"
    master = cd.master_db()
    if master is None or master.spec is None:
        return "the cluster has no master"
    terms = Terms.of(master, cd.cluster.spec)
    if target_keeper:
        if target_keeper not in (cd.keepers or {}):
            return (
                f"keeper doesn't exist: {target_keeper!r} is not in the cluster data (see `stolonctl status`)"
            )
        if master.spec.keeper_uid == target_keeper:
            return f"keeper {target_keeper} already runs the master"
        db = cd.db_of_keeper(target_keeper)
        if db is None:
            return f"keeper {target_keeper} is not eligible: it has no database assigned"
        why = switchover_refusals(cd, terms, db)
        if why:
            return f"keeper {target_keeper} is not eligible: {explain(why)}"
        return ""
    ok, refused = switchover_candidates(cd, terms)
    if not ok:
        return f"no standby is eligible: {explain_by_keeper(refused)}"
    return ""


def cmd_switchover(ctx: CtlContext) -> int:
    a = ctx.args
    if a.timeout <= 0:
        raise CliError("--timeout must be positive")
    cd, _ = ctx.cluster_data()
    problem = check_request(cd, a.target)
    if problem:
        raise CliError(problem)
    assert cd.cluster is not None
    master = cd.master_db()
    assert master is not None and master.spec is not None
    to = f"the standby of keeper {a.target}" if a.target else "the eligible standby with the most WAL"
    if not a.yes:
        ctx.out(
            f"The master (keeper {printable(master.spec.keeper_uid)}) will be shut down cleanly and {to} promoted;"
            " client connections are closed during the switch."
        )
        if not ctx.confirm("Are you sure you want to continue? [yes/no] "):
            ctx.out("exiting")
            return 0
    sw = Switchover(
        id=new_uid(),
        phase=SWITCHOVER_REQUESTED,
        target_keeper=a.target,
        timeout=Duration(int(a.timeout * 1e9)),
        request_time=now_utc(),
        master_db=master.uid,
    )

    def request(fresh: ClusterData) -> None:
        # The leader sentinel rewrites the cluster data every sleepInterval (and several
        # times around a failover or a previous switchover), so the compare-and-swap is
        # retried on a fresh read; the request is checked again on it, and refused if the
        # master is no longer the one the user confirmed.
        problem = check_request(fresh, a.target)
        if problem:
            raise CliError(problem)
        now = fresh.master_db()
        if now is None or now.uid != master.uid or fresh.cluster is None:
            raise CliError(
                "the master changed while the switchover was being requested: check"
                " `stolonctl status` and request it again"
            )
        fresh.cluster.status.switchover = sw

    ctx.store.update_cluster_data(request)
    ctx.out(f"switchover {sw.id} requested")
    if not a.wait:
        return 0
    return wait(ctx, sw.id, a.timeout + 60.0)


def wait(ctx: CtlContext, sw_id: str, limit_s: float) -> int:
    """Follow switchover ``sw_id`` until it ends; 0 when it completed."""
    deadline = time.monotonic() + limit_s
    last = ""
    while time.monotonic() < deadline:
        cd, _ = ctx.store.get_cluster_data()
        sw = cd.cluster.status.switchover if cd is not None and cd.cluster is not None else None
        if sw is None or sw.id != sw_id:
            raise CliError(f"switchover {sw_id} is gone from the cluster data (replaced or reset)")
        line = printable(f"{sw.phase}: {sw.message}" if sw.message else sw.phase)
        if line != last:
            ctx.out(line)
            last = line
        if not sw.active:
            if sw.phase == SWITCHOVER_COMPLETED:
                keeper = sw.target_keeper
                ctx.out(f"switchover {sw_id} completed: keeper {printable(keeper)} runs the master")
                return 0
            raise CliError(f"switchover {sw_id} {sw.phase}: {sw.message}")
        time.sleep(POLL_S)
    raise CliError(f"gave up waiting for switchover {sw_id} after {limit_s:g}s")
