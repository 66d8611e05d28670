"""``stolonctl clusterdata read|write``: the raw cluster data document."""

from __future__ import annotations

import argparse

from stolon.cli.common import CliError, add_bool_flag
from stolon.cli.ctlcontext import CtlContext
from stolon.model import ClusterData, ModelError, gojson
from stolon.store.base import MalformedDataError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("clusterdata", help="Manage current cluster data")
    csub = p.add_subparsers(dest="clusterdata_command", metavar="COMMAND", required=True)
    r = csub.add_parser("read", help="Retrieve the current cluster data")
    add_bool_flag(r, "--pretty", "pretty print")
    r.set_defaults(func=cmd_read)
    w = csub.add_parser("write", help="Write cluster data")
    w.add_argument("-f", "--file", default="-", help="file containing the new cluster data (default: stdin)")
    add_bool_flag(w, "--yes", "don't ask for confirmation", short="-y")
    w.set_defaults(func=cmd_write)


def exists(ctx: CtlContext) -> bool:
    """Whether a cluster data key exists (readable or not: a malformed one can be replaced)."""
    try:
        return ctx.store.backend.get_cluster_data() is not None
    except MalformedDataError:
        return True


def cmd_read(ctx: CtlContext) -> int:
    """Go's readClusterdata: the cluster data is parsed and checked (format version, spec)
    like every command's, then re-encoded (``json.Marshal``, or ``MarshalIndent`` with
    ``--pretty``), not printed as stored. Fields unknown to this version are kept."""
    if not exists(ctx):
        raise CliError("no cluster clusterdata available")
    cd, _ = ctx.cluster_data()
    ctx.out(gojson.dumps(cd.to_obj(), indent="\t" if ctx.args.pretty else None, terminal_safe=True))
    return 0


def cmd_write(ctx: CtlContext) -> int:
    text = ctx.read_input(None, ctx.args.file, "cluster data")
    assert text is not None
    try:
        cd = ClusterData.parse(text)
        if cd.cluster is None or cd.cluster.spec is None:
            raise ModelError("cluster.spec", "is required")
        cd.cluster.spec.validate()
    except ModelError as e:
        raise CliError(f"invalid cluster data: {e}") from None
    if exists(ctx):
        if not ctx.args.yes:
            raise CliError("WARNING: cluster data already available use --yes to override")
        ctx.out("WARNING: The current cluster data will be removed")
    # Written as given (unknown fields included), a deliberate overwrite like Go Stolon's.
    ctx.store.backend.put_cluster_data(text.strip().encode())
    ctx.out("successfully wrote cluster data into the new store")
    return 0
