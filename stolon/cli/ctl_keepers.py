"""stolonctl commands on keepers: failkeeper, removekeeper."""

from __future__ import annotations

import argparse

from stolon.cli.common import CliError
from stolon.cli.ctlcontext import CtlContext
from stolon.model import ClusterData


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "failkeeper",
        help='Force keeper as "temporarily" failed: the sentinel computes a new cluster data'
        " considering it failed, then restores its state to the real one",
    )
    p.add_argument("keeper_uid", metavar="KEEPER_UID")
    p.set_defaults(func=cmd_failkeeper)

    p = sub.add_parser("removekeeper", help="Removes keeper from cluster data")
    p.add_argument("keeper_uid", metavar="KEEPER_UID")
    p.set_defaults(func=cmd_removekeeper)


def _missing(uid: str) -> CliError:
    return CliError(f"keeper doesn't exist: {uid!r} is not in the cluster data (see `stolonctl status`)")


def cmd_failkeeper(ctx: CtlContext) -> int:
    uid = ctx.args.keeper_uid
    ctx.cluster_data()  # the stored spec is checked (and its warnings printed) once

    def fail(cd: ClusterData) -> None:
        keeper = (cd.keepers or {}).get(uid)
        if keeper is None:
            raise _missing(uid)
        keeper.status.force_fail = True

    # Go Stolon makes one attempt; the sentinel rewrites the cluster data every
    # sleepInterval, so a conflict is retried on a fresh read (docs/compatibility.md).
    ctx.store.update_cluster_data(fail)
    return 0


def cmd_removekeeper(ctx: CtlContext) -> int:
    uid = ctx.args.keeper_uid
    ctx.cluster_data()

    def remove(cd: ClusterData) -> None:
        if uid not in (cd.keepers or {}):
            raise _missing(uid)
        db = cd.db_of_keeper(uid)
        if db is not None:
            master = cd.cluster.status.master if cd.cluster is not None else ""
            if db.uid == master:
                raise CliError(
                    "keeper assigned db is the current cluster master db: fail over first"
                    " (`stolonctl failkeeper`), then remove it"
                )
            assert cd.dbs is not None
            del cd.dbs[db.uid]
        assert cd.keepers is not None
        del cd.keepers[uid]

    ctx.store.update_cluster_data(remove)  # retried on a conflict, as failkeeper
    return 0
