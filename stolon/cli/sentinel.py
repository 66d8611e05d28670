"""``stolon-sentinel`` command line: Go Stolon's flags and ``STSENTINEL_*`` variables."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from stolon.cli.common import (
    CliError,
    add_log_flags,
    apply_env_defaults,
    daemon_parser,
    go_duration_seconds,
    normalize_bool_flags,
    setup_logging,
    store_config_from_args,
)
from stolon.model import ModelError
from stolon.plugins import StolonPluginManager, plugin_manager

ENV_PREFIX = "STSENTINEL"


def build_parser() -> argparse.ArgumentParser:
    p, g = daemon_parser(
        "stolon-sentinel",
        "stolon sentinel: elects a leader that decides the cluster data",
        ENV_PREFIX,
        "sentinel options",
    )
    g.add_argument(
        "--initial-cluster-spec",
        default="",
        help="a file providing the initial cluster specification, used only at cluster initialization",
    )
    g.add_argument(
        "--metrics-listen-address", default="", help="metrics listen address (disabled by default)"
    )
    g.add_argument(
        "--election-ttl",
        default=20.0,
        type=go_duration_seconds,
        metavar="DURATION",
        help="leader election session TTL (default 20s, Go Stolon's fixed value): how long a dead"
        " leader keeps the leadership",
    )
    add_log_flags(g)
    return p


def main(argv: Sequence[str] | None = None, plugins: StolonPluginManager | None = None) -> int:
    """Run a sentinel; ``plugins`` defaults to the process's plugin manager."""
    setup_logging("info")
    parser = build_parser()
    apply_env_defaults(parser, ENV_PREFIX)
    try:
        a = parser.parse_args(normalize_bool_flags(sys.argv[1:] if argv is None else argv))
        store = store_config_from_args(a, component="sentinel")
        spec = None
        if a.initial_cluster_spec:
            from stolon.sentinel.daemon import load_initial_spec

            try:
                spec = load_initial_spec(a.initial_cluster_spec)
            except ModelError as e:
                raise CliError(f"invalid --initial-cluster-spec: {e}") from None
    except CliError as e:
        print(f"stolon-sentinel: {e}", file=sys.stderr)
        return e.exit_code
    level = "debug" if a.debug else a.log_level
    logging.getLogger().setLevel({"warn": "WARNING"}.get(level, level.upper()))
    from stolon.sentinel.daemon import Sentinel, SentinelConfig

    cfg = SentinelConfig(
        store=store,
        initial_cluster_spec=spec,
        metrics_listen_address=a.metrics_listen_address,
        election_ttl=a.election_ttl,
    )
    return Sentinel(cfg, plugin_manager() if plugins is None else plugins).run()


if __name__ == "__main__":
    sys.exit(main())
