"""The check loop and the timeout checker (Go Stolon's ``ClusterChecker``).

Every ``proxyCheckInterval`` (measured from the end of the previous check) the checker
reads the cluster data, opens the listeners if they are closed, asks each listener's
policy where new connections may go, publishes this proxy's ``ProxyInfo`` and routes.
A separate timer of ``proxyTimeout`` is re-armed after every successful check; when it
fires, every listener routes to nothing (closing every connection) and, with
``--stop-listening``, stops listening until the next successful check.

Store calls are synchronous and bounded by ``--store-timeout``; they run in worker
threads, so a hung store never blocks the data path and the timer fires on time.

Two things are stricter than Go Stolon (docs/proxy.md has the reasons):

* Connections to destinations the new cluster data no longer allows are closed *before*
  the ProxyInfo with the new generation is published, and new destinations are routed to
  only *after* it was published.
* A check that took longer than ``proxyTimeout`` (a store that answered the read and then
  hung) does not route from the cluster data it read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry import trace

from stolon.model.cluster import NO_GENERATION, ClusterData, ClusterDataError
from stolon.model.infos import ProxyInfo
from stolon.model.spec import DEFAULT_PROXY_CHECK_INTERVAL, DEFAULT_PROXY_TIMEOUT
from stolon.model.uid import new_uid
from stolon.proxy.listener import Listener, ListenError
from stolon.proxy.policies import ClusterView, db_destination
from stolon.proxy.routing import Destination, describe
from stolon.specstate import StoredSpecCheck
from stolon.store.base import Watch
from stolon.telemetry import ATTR_DB, context_from

log = logging.getLogger("stolon.proxy")

SPAN_ROUTE_CHANGE = "proxy.route_change"
ATTR_PROXY_UID = "stolon.proxy.uid"
ATTR_LISTENER = "stolon.proxy.listener"
ATTR_POLICY = "stolon.proxy.policy"
ATTR_OLD_DESTINATION = "stolon.proxy.old_destination"
ATTR_NEW_DESTINATION = "stolon.proxy.new_destination"
ATTR_OLD_DB = "stolon.proxy.old_db_uid"
ATTR_GENERATION = "stolon.proxy.generation"
ATTR_CLOSED = "stolon.proxy.closed_connections"
ATTR_REASON = "stolon.proxy.reason"


class ProxyStore(Protocol):
    """The part of :class:`stolon.store.ClusterStore` the proxy uses."""

    def get_cluster_data(self) -> tuple[ClusterData | None, Any]: ...

    def put_proxy_info(self, info: ProxyInfo, ttl: float) -> None: ...


class CheckError(Exception):
    """A check that failed: the timeout timer is not re-armed."""

    def __init__(self, message: str, *, logged: bool = False) -> None:
        super().__init__(message)
        #: already logged (once per change) where it was found: don't log it every check
        self.logged = logged


class ClusterChecker:
    """Reads the cluster data, publishes ProxyInfo and routes the listeners."""

    def __init__(
        self,
        uid: str,
        store: ProxyStore,
        listeners: Sequence[Listener],
        *,
        stop_listening: bool = True,
        tracer: trace.Tracer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uid = uid
        self._clock = clock
        self.store = store
        self.listeners = list(listeners)
        self.stop_listening = stop_listening
        self.tracer = tracer or trace.get_tracer("stolon.proxy")
        self.check_interval_ns = DEFAULT_PROXY_CHECK_INTERVAL.ns
        self.proxy_timeout_ns = DEFAULT_PROXY_TIMEOUT.ns
        #: unix time of the last successful check (a metric)
        self.last_success: float | None = None
        self.generation: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._cd: ClusterData | None = None
        #: routes when the check in flight started (or when the timeout last changed them)
        self._check_before: dict[str, tuple[tuple[Destination, ...], int]] | None = None
        self.spec_check = StoredSpecCheck(log)

    @property
    def check_interval(self) -> float:
        return self.check_interval_ns / 1e9

    @property
    def proxy_timeout(self) -> float:
        return self.proxy_timeout_ns / 1e9

    # -- loops --------------------------------------------------------------------------------------
    async def run(self, watch: Watch | None = None) -> None:
        """Check now and then every ``proxyCheckInterval``, until cancelled; with a
        ``watch`` on the cluster data, also as soon as it changes (a new master is routed
        without waiting for the next check)."""
        self._arm_timer()
        try:
            while True:
                await self.check_once()
                if watch is None:
                    await asyncio.sleep(self.check_interval)
                else:
                    await asyncio.to_thread(watch.wait, self.check_interval)
        finally:
            self.cancel_timer()

    async def check_once(self) -> bool:
        """One check; re-arms the timeout timer when it succeeds."""
        try:
            await self.check()
        except CheckError as e:
            if not e.logged:
                log.warning("check function error: %s", e)
            return False
        self.last_success = time.time()
        self._arm_timer()
        return True

    def _arm_timer(self) -> None:
        self.cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(self.proxy_timeout, self._timed_out)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        log.info("check timeout timer fired")
        before = self._snapshot()
        started = time.time_ns()
        self._route_nowhere()
        self._record_route_changes(before, started, None, "check timeout")
        if self._check_before is not None:
            # a check is in flight: its span starts from what the timeout left
            self._check_before = self._snapshot()
        if self.stop_listening:
            for listener in self.listeners:
                if listener.close():
                    log.info(
                        "Stopping listening (listener %s on %s:%s)",
                        listener.name,
                        listener.address,
                        listener.port,
                    )

    # -- one check ------------------------------------------------------------------------------------
    async def check(self) -> None:
        self._check_before = self._snapshot()
        started_ns = time.time_ns()
        self._cd = None
        try:
            await self._check(self._clock())
        finally:
            before, self._check_before = self._check_before, None
            self._record_route_changes(before, started_ns, self._cd, "cluster data")

    async def _check(self, started: float) -> None:
        bad: ClusterDataError | None = None
        cd: ClusterData | None
        try:
            cd, _ = await asyncio.to_thread(self.store.get_cluster_data)
        except ClusterDataError as e:
            cd, bad = None, e
        except Exception as e:
            raise CheckError(f"cannot get cluster data: {e}") from e

        await self._start_listening()

        if bad is not None:
            self._route_nowhere()  # fail closed; the store logged it once per change
            raise CheckError(str(bad), logged=True)
        if cd is None:
            log.info("no clusterdata available, closing connections to master")
            self._route_nowhere()
            return
        self._cd = cd
        cluster = cd.cluster
        stored = self.spec_check.accept(cd)
        if stored is None or cluster is None:
            # Go Stolon's own rules refuse it: fail closed (logged once per change)
            self._route_nowhere()
            raise CheckError(f"clusterdata validation failed: {self.spec_check.error}", logged=True)
        spec = self.spec_check.defaulted(stored)
        cd_interval_ns = spec.proxy_check_interval.ns
        cd_timeout_ns = spec.proxy_timeout.ns
        # Publish the larger of the timeout in force and the new one, so that the sentinel
        # waits at least as long as our running timer may take to fire.
        proxy_timeout_ns = max(self.proxy_timeout_ns, cd_timeout_ns)

        view = ClusterView(cd, self.uid)
        wanted: dict[str, list[Destination]] = {}
        for listener in self.listeners:
            wanted[listener.name] = await _resolve_all(listener.policy.destinations(view) or ())
        # Close what the cluster data no longer allows before publishing our generation.
        for listener in self.listeners:
            listener.table.restrict(wanted[listener.name])

        proxy = cd.proxy
        if proxy is None:
            log.info("no proxy object available, closing connections to master")
            await self._publish(
                NO_GENERATION, proxy_timeout_ns, cd_interval_ns, cd_timeout_ns, required=False
            )
        else:
            master = (cd.dbs or {}).get(proxy.spec.master_db_uid)
            if master is None:
                log.info(
                    "no db object available, closing connections to master (db %r)", proxy.spec.master_db_uid
                )
                await self._publish(
                    proxy.generation, proxy_timeout_ns, cd_interval_ns, cd_timeout_ns, required=False
                )
            else:
                dest = db_destination(master)
                address = None if dest is None else await _resolve(dest)
                if address is None:
                    log.error(
                        "cannot resolve db address %r port %r (db %s)",
                        master.status.listen_address,
                        master.status.port,
                        master.uid,
                    )
                else:
                    log.info("master address %s", address)
                    # Without this publish the sentinel would not know that we route to the
                    # master, and would not wait for us before electing a new one.
                    await self._publish(
                        proxy.generation, proxy_timeout_ns, cd_interval_ns, cd_timeout_ns, required=True
                    )
                    if view.enabled:
                        log.info("proxying to master address %s", address)
                    else:
                        log.info(
                            "not proxying to master address since we aren't in the enabled proxies list"
                            " (address %s)",
                            address,
                        )

        elapsed = self._clock() - started
        if elapsed > proxy_timeout_ns / 1e9:
            raise CheckError(
                f"check took {elapsed:.1f}s, longer than proxyTimeout: not routing from stale cluster data"
            )
        for listener in self.listeners:
            listener.table.set(wanted[listener.name])

    async def _publish(
        self, generation: int, proxy_timeout_ns: int, interval_ns: int, timeout_ns: int, *, required: bool
    ) -> None:
        info = ProxyInfo(
            info_uid=new_uid(), uid=self.uid, generation=generation, proxy_timeout_ns=proxy_timeout_ns
        )
        try:
            await asyncio.to_thread(self.store.put_proxy_info, info, 2 * proxy_timeout_ns / 1e9)
        except Exception as e:
            if required:
                raise CheckError(f"failed to update proxyInfo: {e}") from e
            log.error("failed to update proxyInfo: %s", e)
            return
        self.generation = generation
        # Only a published ProxyInfo tells the sentinel which timeout we use.
        self.check_interval_ns = interval_ns
        self.proxy_timeout_ns = timeout_ns

    async def _start_listening(self) -> None:
        for listener in self.listeners:
            try:
                opened = await listener.open()
            except ListenError as e:
                raise CheckError(f"failed to start proxy: {e}") from None
            if opened:
                log.info(
                    "Starting proxying (listener %s on %s:%s, policy %s)",
                    listener.name,
                    listener.address,
                    listener.port,
                    listener.policy.name,
                )

    def _route_nowhere(self) -> None:
        for listener in self.listeners:
            listener.table.clear()

    # -- traces ---------------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, tuple[tuple[Destination, ...], int]]:
        return {
            listener.name: (listener.table.destinations, listener.table.closed_by_route_change)
            for listener in self.listeners
        }

    def _record_route_changes(
        self,
        before: dict[str, tuple[tuple[Destination, ...], int]],
        started_ns: int,
        cd: ClusterData | None,
        reason: str,
    ) -> None:
        """One span per listener whose destinations changed, child of the decision that
        caused it when the cluster data carries its trace context."""
        for listener in self.listeners:
            old, closed_before = before[listener.name]
            new = listener.table.destinations
            if old == new:
                continue
            log.info(
                "listener %s: route changed from %s to %s",
                listener.name,
                describe(old) or "nothing",
                describe(new) or "nothing",
            )
            attributes: dict[str, str | int] = {
                ATTR_PROXY_UID: self.uid,
                ATTR_LISTENER: listener.name,
                ATTR_POLICY: listener.policy.name,
                ATTR_OLD_DESTINATION: describe(old),
                ATTR_NEW_DESTINATION: describe(new),
                ATTR_DB: ",".join(sorted(d.db_uid for d in new)),
                ATTR_OLD_DB: ",".join(sorted(d.db_uid for d in old)),
                ATTR_CLOSED: listener.table.closed_by_route_change - closed_before,
                ATTR_REASON: reason,
            }
            parent = None
            if cd is not None and cd.proxy is not None:
                attributes[ATTR_GENERATION] = cd.proxy.generation
                parent = context_from(cd.proxy.trace_context)
            span = self.tracer.start_span(
                SPAN_ROUTE_CHANGE, context=parent, start_time=started_ns, attributes=attributes
            )
            span.end()


async def _resolve(dest: Destination) -> Destination | None:
    """``dest`` with its host resolved to an IP address, or ``None`` if it can't be."""
    if dest.is_resolved:
        return dest
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(dest.host, dest.port, type=socket.SOCK_STREAM)
    except OSError as e:
        log.error("cannot resolve db address %s (db %s): %s", dest, dest.db_uid, e)
        return None
    if not infos:
        return None
    host = str(infos[0][4][0])
    return Destination(dest.db_uid, host, dest.port)


async def _resolve_all(dests: Sequence[Destination]) -> list[Destination]:
    out = []
    for d in dests:
        r = await _resolve(d)
        if r is not None:
            out.append(r)
    return out
