"""stolon-proxy: the command line entry point (see :mod:`stolon.proxy` and docs/proxy.md)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from stolon.cli.common import CliError, setup_logging
from stolon.plugins import PluginError
from stolon.proxy.config import parse_config
from stolon.proxy.daemon import ProxyDaemon, build_listeners, raise_nofile_limit, run_coroutine
from stolon.proxy.forwarder import ConnectionLimits
from stolon.proxy.policies import PolicyError
from stolon.store import StoreError, open_store
from stolon.telemetry import setup_tracing, tracer

log = logging.getLogger("stolon.proxy")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(sys.argv[1:] if argv is None else argv)
    except CliError as e:
        print(f"stolon-proxy: {e}", file=sys.stderr)
        return e.exit_code
    setup_logging(config.log_level)
    try:
        listeners = build_listeners(
            config.listeners,
            config.socket_options,
            limits=ConnectionLimits(
                config.max_connections, config.handshake_timeout, config.hold_connections_timeout
            ),
        )
        store = open_store(config.store)
    except (PolicyError, PluginError, StoreError) as e:
        print(f"stolon-proxy: {e}", file=sys.stderr)
        return 1
    setup_tracing("proxy", config.store.cluster_name)
    limit = raise_nofile_limit()
    log.debug("open files limit: %d", limit)
    daemon = ProxyDaemon(config, store, listeners, tracer=tracer("proxy"))
    try:
        run_coroutine(daemon.run(), config.event_loop)
    except RuntimeError as e:
        print(f"stolon-proxy: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the metrics address is in use
        print(f"stolon-proxy: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
