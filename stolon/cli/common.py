"""What every stolon command shares: Go Stolon's common flags, their environment variables,
errors that end a command with one line, and opening the store.

Environment form (Go Stolon's ``flagutil.SetFlagsFromEnv``): every flag ``--foo-bar`` can be
given as ``<PREFIX>_FOO_BAR``; the variable is used only when the flag is not on the
command line and the variable is not empty. Go gives every flag its variable, so an alias
has one too (``--id``, the keeper's deprecated name of ``--uid``: ``STKEEPER_ID``); when
both are set, the canonical name's wins, as in Go (it visits ``id`` before ``uid``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from stolon import __version__
from stolon.model.duration import DurationError, parse_go_duration
from stolon.store.base import DEFAULT_STORE_PREFIX, StoreConfig

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class CliError(Exception):
    """Ends a command: the message is printed as one line and the exit code is non-zero."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def die(message: str) -> NoReturn:
    raise CliError(message)


# -- flag value types (argparse ``type=``) ----------------------------------------------------
def go_duration_seconds(text: str) -> float:
    """A Go duration flag ("5s", "1m") as seconds."""
    try:
        ns = parse_go_duration(text.strip())
    except DurationError:
        raise argparse.ArgumentTypeError(
            f'invalid duration {text!r}: use a Go duration such as "5s" or "1m30s"'
        ) from None
    if ns < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must not be negative")
    return ns / 1e9


def go_bool(text: str) -> bool:
    """A Go bool flag value (strconv.ParseBool)."""
    value = text.strip()
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}: use true or false")


def log_level(text: str) -> str:
    if text not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"invalid log level {text!r}: use debug, info, warn or error")
    return text


#: Long names of every Go-style bool flag, for :func:`normalize_bool_flags`.
BOOL_FLAGS: set[str] = set()


def add_bool_flag(group: Any, flag: str, help_text: str, default: bool = False, short: str = "") -> None:
    """A Go-style bool flag: ``--flag``, ``--flag=true`` or ``--flag=false``.

    Like Go's pflag, the flag never takes the next word as its value (``--patch '{...}'``
    keeps the JSON as an argument); ``--flag=false`` is rewritten before parsing.
    """
    BOOL_FLAGS.add(flag)
    names = [short, flag] if short else [flag]
    action = group.add_argument(*names, action="store_true", default=default, help=help_text)
    group.add_argument("--no-" + flag[2:], dest=action.dest, action="store_false", help=argparse.SUPPRESS)


def normalize_bool_flags(argv: Sequence[str]) -> list[str]:
    """Rewrite ``--flag=VALUE`` of bool flags into ``--flag`` / ``--no-flag``."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if eq and name in BOOL_FLAGS:
            try:
                out.append(name if go_bool(value) else "--no-" + name[2:])
            except argparse.ArgumentTypeError as e:
                raise CliError(f"{name}: {e}", exit_code=2) from None
            continue
        out.append(arg)
    return out


# -- common store flags --------------------------------------------------------------------------
def add_store_flags(parser: argparse.ArgumentParser) -> None:
    """Go Stolon's common store flags."""
    g = parser.add_argument_group("store options")
    g.add_argument("--cluster-name", default="", help="cluster name")
    g.add_argument(
        "--store-backend",
        default="",
        help="store backend type (embedded, etcdv3; see `stolonctl plugins`)",
    )
    g.add_argument(
        "--store-endpoints",
        default="",
        help="a comma-delimited list of store endpoints (use https scheme for tls communication);"
        " for the embedded store, the path of its database file"
        " (default for etcdv3: http://127.0.0.1:2379)",
    )
    g.add_argument(
        "--store-timeout",
        default=5.0,
        type=go_duration_seconds,
        metavar="DURATION",
        help="store request timeout (default 5s)",
    )
    g.add_argument("--store-prefix", default=DEFAULT_STORE_PREFIX, help="the store base prefix")
    g.add_argument(
        "--store-cert-file",
        default="",
        help="certificate file for client identification to the store",
    )
    g.add_argument("--store-key", default="", help="private key file for client identification to the store")
    g.add_argument(
        "--store-ca-file",
        default="",
        help="verify certificates of HTTPS-enabled store servers using this CA bundle",
    )
    add_bool_flag(g, "--store-skip-tls-verify", "skip store certificate verification (insecure!!!)")
    g.add_argument(
        "--kube-resource-kind",
        default="",
        help="the k8s resource kind to be used to store stolon clusterdata and do sentinel leader election"
        ' (only "configmap" is supported, the default)',
    )


def daemon_parser(
    prog: str, description: str, env_prefix: str, group_title: str
) -> tuple[argparse.ArgumentParser, Any]:
    """A daemon's parser as Go Stolon's keeper and sentinel have it: the epilog naming the
    ``<env_prefix>_FOO_BAR`` variables, the common store flags, ``--version``, and the
    group (``group_title``) the daemon adds its own flags to, which it returns."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"Every flag --foo-bar can also be set with the environment variable {env_prefix}_FOO_BAR.",
    )
    add_store_flags(parser)
    add_version_flag(parser)
    return parser, parser.add_argument_group(group_title)


def add_log_flags(group: Any) -> None:
    """The daemons' logging flags: ``--log-level``, ``--log-color`` and the deprecated
    ``--debug``."""
    group.add_argument(
        "--log-level", default="info", type=log_level, help="debug, info (default), warn or error"
    )
    add_bool_flag(group, "--log-color", "enable color in log output")
    add_bool_flag(group, "--debug", "enable debug logging (deprecated: use --log-level=debug)")


def add_kube_client_flags(parser: argparse.ArgumentParser) -> None:
    """stolonctl's kubectl-like flags (Go Stolon has them on stolonctl only; the daemons use
    ``$KUBECONFIG``, ``~/.kube/config`` or their pod's service account)."""
    g = parser.add_argument_group("kubernetes options")
    g.add_argument("--kubeconfig", default="", help="path to kubeconfig file. Overrides $KUBECONFIG")
    g.add_argument("--kube-context", default="", help="name of the kubeconfig context to use")
    g.add_argument("--kube-namespace", default="", help="name of the kubernetes namespace to use")


def store_config_from_args(args: argparse.Namespace, component: str = "") -> StoreConfig:
    """Validate the common store flags (Go's ``CheckCommonConfig``) and build the config.

    ``component`` names the daemon opening the store (``keeper``, ``sentinel``, ``proxy``;
    empty for stolonctl); it goes to the backend in ``options["component"]``.
    """
    if not args.cluster_name:
        die("--cluster-name is required (or set the environment variable for it)")
    if not args.store_backend:
        die("--store-backend is required: use embedded or etcdv3 (see `stolonctl plugins`)")
    endpoints = tuple(e.strip() for e in args.store_endpoints.split(",") if e.strip())
    options = {
        key: value
        for key in ("kube_resource_kind", "kubeconfig", "kube_context", "kube_namespace")
        if (value := getattr(args, key, ""))
    }
    if component:
        options["component"] = component
    if args.store_backend == "kubernetes":
        kind = options.get("kube_resource_kind", "")
        if kind not in ("", "configmap"):
            die(f"wrong kubernetes resource kind {kind!r}: --kube-resource-kind supports configmap only")
        if component and not os.environ.get("POD_NAME"):
            die(
                "POD_NAME is not set: with the kubernetes backend each daemon publishes its state in its"
                " own pod; set POD_NAME from the downward API (valueFrom: fieldRef: metadata.name)"
            )
    return StoreConfig(
        backend=args.store_backend,
        cluster_name=args.cluster_name,
        endpoints=endpoints,
        prefix=args.store_prefix,
        timeout=args.store_timeout,
        cert_file=args.store_cert_file,
        key_file=args.store_key,
        ca_file=args.store_ca_file,
        skip_tls_verify=bool(args.store_skip_tls_verify),
        options=options,
    )


# -- environment ---------------------------------------------------------------------------------
def env_name(prefix: str, option: str) -> str:
    return f"{prefix}_{option.lstrip('-').replace('-', '_').upper()}"


def apply_env_defaults(
    parser: argparse.ArgumentParser,
    prefix: str,
    env: Mapping[str, str] | None = None,
    only: Callable[[argparse.Action], bool] | None = None,
) -> None:
    """Make ``<PREFIX>_FOO_BAR`` the default of ``--foo-bar`` when set and non-empty.

    A default only applies when the flag is absent from the command line, which is the
    precedence Go Stolon has. Values go through the flag's own type check, so a bad
    variable gets the same error as a bad flag (argparse names the flag).
    """
    env = os.environ if env is None else env
    for action in parser._actions:
        long_opts = [o for o in action.option_strings if o.startswith("--")]
        if not long_opts or action.dest in ("help", "version") or action.help == argparse.SUPPRESS:
            continue
        if only is not None and not only(action):
            continue
        # the canonical name's variable first, then each alias's (Go binds every flag)
        names = [env_name(prefix, o) for o in long_opts]
        name = next((n for n in names if env.get(n, "") != ""), names[0])
        value = env.get(name, "")
        if value == "":
            continue
        if action.type is None and isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            converted: Any = go_bool(value)
        elif callable(action.type):
            try:
                converted = action.type(value)
            except (argparse.ArgumentTypeError, ValueError) as e:
                parser.error(f"environment variable {name}: {e}")
        else:
            converted = value
        action.default = converted


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version``, printing what cobra's default version template prints for Go Stolon's
    commands (``Version: cmd.Version``): ``<command> version <version>``, on stdout, exit 0."""
    parser.add_argument(
        "--version",
        action="version",
        version=f"{parser.prog} version {__version__}",
        help=f"version for {parser.prog}",
    )


def setup_logging(level: str = "info", stream: Any = None) -> None:
    logging.basicConfig(
        level=LOG_LEVELS.get(level, logging.INFO),
        stream=stream or sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("stevedore").setLevel(logging.WARNING)


def split_csv(values: Sequence[str] | str) -> list[str]:
    """Comma-separated values, from one string or repeated flags (``-t a,b -t c``)."""
    if isinstance(values, str):
        values = [values]
    return [v.strip() for item in values for v in item.split(",") if v.strip()]
