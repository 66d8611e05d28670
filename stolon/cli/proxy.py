"""``stolon-proxy`` command line: Go Stolon's flags plus ``--listener``, ``STPROXY_*``
variables and their checks, building a :class:`~stolon.proxy.config.ProxyConfig`
(see :mod:`stolon.proxy` and docs/proxy.md).

Go Stolon's flags define the default listener, which routes with the ``master`` policy.
Each ``--listener`` adds one more, with any installed health policy::

    --listener policy=readonly,port=25433,max-lag=1MiB,balance=least-conn
    --listener name=reports,policy=readonly,address=0.0.0.0,port=25434,include-master=true

``policy`` and ``port`` are required; ``name`` (default: the policy name) and ``address``
(default: ``--listen-address``) are optional; every other key is a setting of the policy.
In the environment, ``STPROXY_LISTENER`` holds one or more specs separated by ``;``.

Every error is one line naming the flag (exit code 2), as Go's fatal flag checks are.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from stolon.cli.common import (
    CliError,
    add_bool_flag,
    add_log_flags,
    add_store_flags,
    add_version_flag,
    apply_env_defaults,
    env_name,
    go_duration_seconds,
    normalize_bool_flags,
    setup_logging,
    store_config_from_args,
)
from stolon.plugins import PluginError, StolonPluginManager, plugin_manager
from stolon.proxy.config import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_LISTENER,
    DEFAULT_POLICY,
    EVENT_LOOPS,
    MIN_HANDSHAKE_TIMEOUT,
    MIN_HOLD_TIMEOUT,
    ListenerConfig,
    ProxyConfig,
)
from stolon.proxy.daemon import ProxyDaemon, build_listeners, raise_nofile_limit, run_coroutine
from stolon.proxy.forwarder import ConnectionLimits, SocketOptions
from stolon.proxy.policies import PolicyError
from stolon.store import StoreError, open_store
from stolon.telemetry import setup_tracing, tracer

log = logging.getLogger("stolon.proxy")

ENV_PREFIX = "STPROXY"
_LISTENER_KEYS = ("name", "policy", "address", "port")


class _Parser(argparse.ArgumentParser):
    """argparse that ends with one line (``stolon-proxy: ...``) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        raise CliError(message, exit_code=2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="stolon-proxy",
        description="stolon proxy: routes client connections to the current master of a stolon cluster",
        epilog="Every flag --foo-bar can also be set with the environment variable STPROXY_FOO_BAR"
        " (STPROXY_LISTENER: specs separated by ';').",
    )
    add_store_flags(p)
    add_version_flag(p)
    g = p.add_argument_group("proxy options")
    g.add_argument("--listen-address", default="127.0.0.1", help="proxy listening address")
    g.add_argument("--port", default="5432", help="proxy listening port")
    add_bool_flag(g, "--stop-listening", "stop listening on store error (default true)", default=True)
    g.add_argument("--tcp-keepalive-idle", type=int, default=0, help="set tcp keepalive idle (seconds)")
    g.add_argument("--tcp-keepalive-count", type=int, default=0, help="set tcp keepalive probe count number")
    g.add_argument(
        "--tcp-keepalive-interval", type=int, default=0, help="set tcp keepalive interval (seconds)"
    )
    g.add_argument(
        "--listener",
        action="append",
        default=[],
        metavar="SPEC",
        help="an extra listener: policy=NAME,port=PORT[,name=NAME][,address=ADDR][,SETTING=VALUE...]"
        " (repeatable; e.g. policy=readonly,port=25433,max-lag=1MiB)",
    )
    g.add_argument(
        "--max-connections",
        type=int,
        default=0,
        help="client connections the proxy forwards at once, over every listener; one more is"
        " closed at once (default 0: no limit, as Go Stolon)",
    )
    g.add_argument(
        "--handshake-timeout",
        type=go_duration_seconds,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="DURATION",
        help="close a client connection PostgreSQL has sent nothing to within this time after"
        " accept (the dial plus the client's first message); 0 disables it (default 60s)",
    )
    g.add_argument(
        "--hold-connections-timeout",
        type=go_duration_seconds,
        default=0.0,
        metavar="DURATION",
        help="hold a new client connection up to this long while there is no master to route it"
        " to (a failover or switchover in progress), and forward it as soon as there is one;"
        " 0 closes it at once, as Go Stolon (default 0)",
    )
    g.add_argument(
        "--metrics-listen-address",
        default="",
        help='metrics listen address i.e "0.0.0.0:8080" (disabled by default)',
    )
    add_log_flags(g)
    g.add_argument(
        "--event-loop",
        default="auto",
        choices=EVENT_LOOPS,
        help="asyncio event loop: uvloop when installed (auto, the default), uvloop or asyncio",
    )
    return p


def parse_port(text: str, what: str) -> int:
    value = text.strip()
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise CliError(f"{what} {text!r} is not a valid port number (1-65535)", exit_code=2)
    return int(value)


def parse_listener(spec: str, default_address: str) -> ListenerConfig:
    """One ``--listener`` value; see the module docstring."""
    items: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise CliError(f"--listener {spec!r}: {part.strip()!r} is not KEY=VALUE", exit_code=2)
        if key in items:
            raise CliError(f"--listener {spec!r}: {key} given twice", exit_code=2)
        items[key] = value.strip()
    if not items.get("policy"):
        raise CliError(f"--listener {spec!r}: policy=NAME is required (e.g. policy=readonly)", exit_code=2)
    if "port" not in items:
        raise CliError(f"--listener {spec!r}: port=PORT is required", exit_code=2)
    port = parse_port(items["port"], f"--listener {spec!r}: port")
    settings = {k: v for k, v in items.items() if k not in _LISTENER_KEYS}
    return ListenerConfig(
        name=items.get("name") or items["policy"],
        policy=items["policy"],
        address=items.get("address", default_address),
        port=port,
        settings=settings,
    )


def _metrics_address(text: str) -> str:
    if not text:
        return ""
    _host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise CliError(f"--metrics-listen-address {text!r}: use HOST:PORT, e.g. 0.0.0.0:8080", exit_code=2)
    return text


def parse_config(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ProxyConfig:
    """Parse and validate the proxy's command line; :class:`CliError` on fatal input."""
    env = os.environ if env is None else env
    parser = build_parser()
    apply_env_defaults(parser, ENV_PREFIX, env, only=lambda a: a.dest != "listener")
    a: Any = parser.parse_args(normalize_bool_flags(argv))
    store = store_config_from_args(a, component="proxy")
    port = parse_port(a.port, "--port")
    for what, value in (
        ("idle", a.tcp_keepalive_idle),
        ("count", a.tcp_keepalive_count),
        ("interval", a.tcp_keepalive_interval),
    ):
        if value < 0:
            raise CliError(f"tcp keepalive {what} value must be greater or equal to 0", exit_code=2)
    if a.max_connections < 0:
        raise CliError(
            f"--max-connections {a.max_connections}: must be 0 (no limit) or a positive number", exit_code=2
        )
    if 0 < a.handshake_timeout < MIN_HANDSHAKE_TIMEOUT:
        raise CliError(
            f"--handshake-timeout {a.handshake_timeout:g}s: must be 0 (no limit) or at least 100ms",
            exit_code=2,
        )
    if a.hold_connections_timeout < 0 or 0 < a.hold_connections_timeout < MIN_HOLD_TIMEOUT:
        raise CliError(
            f"--hold-connections-timeout {a.hold_connections_timeout:g}s: must be 0 (off) or at least 100ms",
            exit_code=2,
        )
    specs: list[str] = list(a.listener)
    if not specs:
        specs = [s for s in env.get(env_name(ENV_PREFIX, "--listener"), "").split(";") if s.strip()]
    listeners = [ListenerConfig(DEFAULT_LISTENER, DEFAULT_POLICY, a.listen_address, port)]
    for spec in specs:
        listeners.append(parse_listener(spec, a.listen_address))
    seen: dict[str, ListenerConfig] = {}
    bound: dict[tuple[str, int], str] = {}
    for lc in listeners:
        if lc.name in seen:
            raise CliError(
                f"--listener: two listeners are named {lc.name!r}: give one a name=NAME", exit_code=2
            )
        seen[lc.name] = lc
        if (lc.address, lc.port) in bound:
            raise CliError(
                f"--listener {lc.name}: {lc.address}:{lc.port} is already used by listener"
                f" {bound[(lc.address, lc.port)]}",
                exit_code=2,
            )
        bound[(lc.address, lc.port)] = lc.name
    return ProxyConfig(
        store=store,
        listeners=tuple(listeners),
        stop_listening=bool(a.stop_listening),
        socket_options=SocketOptions(a.tcp_keepalive_idle, a.tcp_keepalive_count, a.tcp_keepalive_interval),
        metrics_listen_address=_metrics_address(a.metrics_listen_address),
        log_level="debug" if a.debug else a.log_level,
        event_loop=a.event_loop,
        max_connections=a.max_connections,
        handshake_timeout=a.handshake_timeout,
        hold_connections_timeout=a.hold_connections_timeout,
    )


def main(argv: Sequence[str] | None = None, plugins: StolonPluginManager | None = None) -> int:
    """Run a proxy; ``plugins`` defaults to the process's plugin manager."""
    try:
        config = parse_config(sys.argv[1:] if argv is None else argv)
    except CliError as e:
        print(f"stolon-proxy: {e}", file=sys.stderr)
        return e.exit_code
    setup_logging(config.log_level)
    pm = plugin_manager() if plugins is None else plugins
    try:
        listeners = build_listeners(
            config.listeners,
            config.socket_options,
            pm,
            limits=ConnectionLimits(
                config.max_connections, config.handshake_timeout, config.hold_connections_timeout
            ),
        )
        store = open_store(config.store, pm)
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
