"""The stolon-proxy process: listeners, the checker, metrics, signals and the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import resource
import signal
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from opentelemetry import trace

from stolon.metrics import Metrics
from stolon.model.uid import new_uid
from stolon.plugins import StolonPluginManager
from stolon.proxy.checker import ClusterChecker, ProxyStore
from stolon.proxy.config import ListenerConfig, ProxyConfig
from stolon.proxy.forwarder import ConnectionLimits, SocketOptions
from stolon.proxy.listener import Listener
from stolon.proxy.metrics import proxy_metrics
from stolon.proxy.policies import plugin_policy
from stolon.store.base import ChangeKind, StoreError, Watch

log = logging.getLogger("stolon.proxy")


def build_listeners(
    configs: Sequence[ListenerConfig],
    options: SocketOptions,
    plugins: StolonPluginManager,
    limits: ConnectionLimits | None = None,
) -> list[Listener]:
    """One :class:`Listener` per config, all sharing ``limits``, with its policy from
    ``plugins``; unknown policies or bad settings raise PolicyError."""
    shared = limits or ConnectionLimits()
    return [
        Listener(
            lc.name,
            lc.address,
            lc.port,
            plugin_policy(plugins, lc.policy, lc.settings),
            options,
            limits=shared,
        )
        for lc in configs
    ]


class ProxyDaemon:
    """Runs the checker until stopped, then closes everything."""

    def __init__(
        self,
        config: ProxyConfig,
        store: ProxyStore,
        listeners: Sequence[Listener],
        *,
        uid: str | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.config = config
        self.uid = uid or new_uid()
        self.store = store
        self.listeners = list(listeners)
        self.checker = ClusterChecker(
            self.uid, store, self.listeners, stop_listening=config.stop_listening, tracer=tracer
        )
        self.metrics: Metrics = proxy_metrics(
            config.store.cluster_name,
            self.listeners,
            lambda: self.checker.last_success,
            lambda: len(self.checker.spec_check.warnings),
        )

    def _watch(self) -> Watch | None:
        """A watch on the cluster data when the store offers one (a store that can't be
        reached now gives a watch that reports a resync once it can)."""
        make = getattr(self.store, "watch", None)
        if make is None:
            return None
        try:
            watch: Watch = make(frozenset({ChangeKind.CLUSTER_DATA}))
        except StoreError as e:
            log.warning("no change notification from the store, checking every interval: %s", e)
            return None
        return watch

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set (or SIGTERM/SIGINT when run in the main thread)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        log.info("proxy uid %s", self.uid)
        server = self.metrics.serve(self.config.metrics_listen_address)
        watch = self._watch()
        checker = loop.create_task(self.checker.run(watch), name="stolon-proxy-checker")
        try:
            await stop.wait()
            log.info("stopping")
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
            if watch is not None:
                watch.close()
            for listener in self.listeners:
                listener.close()
                listener.table.abort_all()
            if server is not None:
                server.shutdown()
                server.server_close()


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard one (Go's runtime does the same at
    start): each forwarded connection holds two descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


def loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The event loop to run on: uvloop when asked for or (``auto``) when importable."""
    if choice in ("auto", "uvloop"):
        try:
            # imported by name: uvloop is optional and may be absent where mypy runs
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if choice == "uvloop":
                raise RuntimeError(
                    "--event-loop uvloop: uvloop is not installed (pip install uvloop)"
                ) from None
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory, "uvloop"
    return None, "asyncio"


def run_coroutine(main: Coroutine[Any, Any, None], event_loop: str = "auto") -> None:
    factory, name = loop_factory(event_loop)
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
