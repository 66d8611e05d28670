"""stolonctl commands on the cluster spec: init, spec, update, promote."""

from __future__ import annotations

import argparse
from typing import Any

from stolon.cli import ctl_clusterdata
from stolon.cli.common import CliError, add_bool_flag
from stolon.cli.ctl_backup import check_spec_backup
from stolon.cli.ctlcontext import CtlContext
from stolon.model import Cluster, ClusterData, ClusterSpec, ModelError, gojson
from stolon.model.codec import load_json_object
from stolon.model.merge_patch import merge_patch
from stolon.model.spec import ROLE_MASTER, ROLE_STANDBY


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="Initialize a new cluster")
    p.add_argument("spec", nargs="?", help='cluster spec JSON (default {"initMode":"new"})')
    p.add_argument("-f", "--file", default="", help="file containing the new cluster spec (- for stdin)")
    add_bool_flag(p, "--yes", "don't ask for confirmation", short="-y")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("spec", help="Retrieve the current cluster specification")
    add_bool_flag(p, "--defaults", "also show default values")
    p.set_defaults(func=cmd_spec)

    p = sub.add_parser("update", help="Update a cluster specification")
    p.add_argument("spec", nargs="?", help="cluster spec JSON, or a merge patch with --patch")
    add_bool_flag(p, "--patch", "patch the current cluster specification instead of replacing it", short="-p")
    p.add_argument(
        "-f",
        "--file",
        default="",
        help="file containing a complete cluster specification or a patch (- for stdin)",
    )
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("promote", help="Promotes a standby cluster to a primary cluster")
    add_bool_flag(p, "--yes", "don't ask for confirmation", short="-y")
    p.set_defaults(func=cmd_promote)


def parse_spec(text: str, what: str = "cluster spec") -> ClusterSpec:
    """Strictly parse and validate a whole spec given by the user."""
    try:
        spec = ClusterSpec.from_obj(load_json_object(text, what), strict=True)
        spec.validate()
    except ModelError as e:
        raise CliError(f"invalid {what}: {e}") from None
    return spec


def cmd_init(ctx: CtlContext) -> int:
    a = ctx.args
    data = ctx.read_input(a.spec, a.file, "cluster spec", required=False)
    spec = parse_spec(data) if data is not None else ClusterSpec(init_mode="new")
    check_spec_backup(ctx.plugins, spec, a.cluster_name)
    if ctl_clusterdata.exists(ctx):
        ctx.out("WARNING: The current cluster data will be removed")
    ctx.out(
        "WARNING: The databases managed by the keepers will be overwritten depending on the"
        " provided cluster spec."
    )
    if not a.yes and not ctx.confirm("Are you sure you want to continue? [yes/no] "):
        ctx.out("exiting")
        return 0
    cd = ClusterData.new(Cluster.new(spec))
    # A deliberate overwrite (Go Stolon's init is a plain put), behind the confirmation.
    ctx.store.put_cluster_data(cd)
    return 0


#: Go's ClusterSpecNoDefaults / ClusterSpecDefaults (cmd/stolonctl/cmd/spec.go), in order
GO_SPEC_KEYS = (
    "sleepInterval",
    "requestTimeout",
    "convergenceTimeout",
    "initTimeout",
    "syncTimeout",
    "dbWaitReadyTimeout",
    "failInterval",
    "deadKeeperRemovalInterval",
    "proxyCheckInterval",
    "proxyTimeout",
    "maxStandbys",
    "maxStandbysPerSender",
    "maxStandbyLag",
    "synchronousReplication",
    "minSynchronousStandbys",
    "maxSynchronousStandbys",
    "additionalWalSenders",
    "additionalMasterReplicationSlots",
    "usePgrewind",
    "initMode",
    "mergePgParameters",
    "role",
    "newConfig",
    "pitrConfig",
    "existingConfig",
    "standbyConfig",
    "defaultSUReplAccessMode",
    "pgParameters",
    "pgHBA",
    "automaticPgRestart",
)
#: the Go slices and maps among them: omitempty leaves them out when empty, not only nil
_GO_COLLECTIONS = frozenset({"additionalMasterReplicationSlots", "pgParameters", "pgHBA"})


def spec_json(spec: ClusterSpec, defaults: bool) -> str:
    """What Go's ``stolonctl spec`` prints: ``json.MarshalIndent(…, "", "\\t")`` of
    ``ClusterSpecNoDefaults`` (every field omitempty: unset pointers, empty slices and maps
    are left out) or, with ``--defaults``, of ``ClusterSpecDefaults`` (every Go field, unset
    ones as ``null``). Keys of ours, and fields unknown to this version, follow Go's when
    they are set."""
    obj = (spec.with_defaults() if defaults else spec).to_obj()
    out: dict[str, Any] = {}
    for key in GO_SPEC_KEYS:
        value = obj.get(key)
        if defaults or not (value is None or (key in _GO_COLLECTIONS and not value)):
            out[key] = value
    out.update({k: v for k, v in obj.items() if k not in out and k not in GO_SPEC_KEYS and v is not None})
    return gojson.dumps(out, indent="\t", terminal_safe=True)


def cmd_spec(ctx: CtlContext) -> int:
    cd, _ = ctx.cluster_data()
    assert cd.cluster is not None and cd.cluster.spec is not None
    ctx.out(spec_json(cd.cluster.spec, bool(ctx.args.defaults)))
    return 0


def apply_spec_patch(current: ClusterSpec, patch_text: str) -> ClusterSpec:
    """The spec after an RFC 7386 merge patch, checked like user input.

    The patch itself is checked strictly (unknown fields, types); the stored spec it
    applies to is not, so fields written by a newer version survive.
    """
    try:
        patch = load_json_object(patch_text, "cluster spec patch")
        ClusterSpec.check_patch(patch)
        merged = merge_patch(current.to_obj(), patch)
        new = ClusterSpec.from_obj(merged)
        current.check_update(new)
    except ModelError as e:
        raise CliError(f"invalid cluster spec patch: {e}") from None
    return new


def cmd_update(ctx: CtlContext) -> int:
    a = ctx.args
    text = ctx.read_input(a.spec, a.file, "cluster spec")
    assert text is not None
    # Check the input once before touching the store, so bad input fails fast.
    new_whole = None if a.patch else parse_spec(text)

    def change(cd: ClusterData) -> None:
        assert cd.cluster is not None
        current = cd.cluster.spec or ClusterSpec()
        if a.patch:
            new = apply_spec_patch(current, text)
        else:
            assert new_whole is not None
            try:
                current.check_update(new_whole)
            except ModelError as e:
                raise CliError(f"cannot update cluster spec: {e}") from None
            new = new_whole
        if new.backup is not None and new.backup != current.backup:
            check_spec_backup(ctx.plugins, new, a.cluster_name)
        cd.cluster.spec = new

    # Fails clearly when there is no cluster data; the stored spec may be invalid: this
    # command is how it gets fixed (the new spec is checked strictly).
    ctx.cluster_data(require_valid_spec=False)
    ctx.store.update_cluster_data(change)
    return 0


def cmd_promote(ctx: CtlContext) -> int:
    cd, _ = ctx.cluster_data()
    assert cd.cluster is not None and cd.cluster.spec is not None
    if cd.cluster.def_spec().role == ROLE_MASTER:
        ctx.err("cluster spec role already set to master")
        return 0
    if not ctx.args.yes and not ctx.confirm("Are you sure you want to continue? [yes/no] "):
        ctx.out("exiting")
        return 0

    def change(cd: ClusterData) -> None:
        assert cd.cluster is not None and cd.cluster.spec is not None
        spec = cd.cluster.spec.copy()
        spec.role = ROLE_MASTER
        try:
            cd.cluster.spec.check_update(spec)
        except ModelError as e:
            raise CliError(f"cannot update cluster spec: {e}") from None
        cd.cluster.spec = spec

    ctx.store.update_cluster_data(change)
    return 0


__all__ = ["ROLE_STANDBY", "apply_spec_patch", "parse_spec", "register", "spec_json"]
