"""Keeper self-fencing: a master cut off from the store stops taking writes.

The sentinel declares a keeper failed ``failInterval`` after the last change of its info it
saw, then elects a new master. A master whose keeper cannot reach the store keeps running:
clients that reach it directly (not through stolon-proxy) would go on writing to a server
that is about to be replaced, and in asynchronous mode those acknowledged writes are lost.
So the master's keeper makes its PostgreSQL refuse writes when the store has not confirmed
for ``selfFencingTimeout`` (which is shorter than ``failInterval``) that it is the master,
and lifts that only when the store confirms it again. Go Stolon has no such thing: see
docs/self-fencing.md.

"Confirmed" is two facts, both needed: our keeper info was written (the sentinel keeps
seeing us) and a read of the cluster data names our DB as the master. Times are those at
which the store call *started* (a write that returned may have landed at any moment of
the call, and the sentinel's clock starts from when it saw it). A read that names another
master while we run as one fences at once.

:func:`verdict` is the pure rule; :class:`SelfFence` runs it: a probe thread reads the
cluster data on its own store connection (the keeper's main loop may sit in a long step),
a watchdog thread fences and unfences at the deadline, and the publisher and the main loop
report their successful store calls to it.

The same deadline is the *lease* that the ``stolon_lease`` PostgreSQL module checks at
commit time (stolon/postgres/lease.py; :func:`lease_ns` is the rule): the watchdog writes
it whenever it changes, so that a server resumed after a pause refuses the commits that
run before the fence lands.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from stolon import telemetry
from stolon.keeper.cdmemo import ClusterDataMemo
from stolon.model import ClusterData, ClusterDataError
from stolon.model.cluster import ROLE_MASTER
from stolon.postgres import lease
from stolon.postgres.errors import PostgresError
from stolon.store import ClusterStore
from stolon.store.base import StoreError

log = logging.getLogger(__name__)

#: the watchdog's longest sleep: it also wakes at the deadline and on every report
MAX_TICK = 1.0


class Action(enum.Enum):
    NOTHING = "nothing"
    FENCE = "fence"
    UNFENCE = "unfence"
    #: the server is no longer a master: forget the fence (the next config write drops it)
    FORGET = "forget"


@dataclass(frozen=True)
class Contact:
    """What the store last told this keeper (monotonic start times of the calls)."""

    #: the last successful write of our keeper info
    wrote_at: float | None = None
    #: the last successful read of the cluster data that named our DB as the master
    confirmed_at: float | None = None
    #: the last successful read of the cluster data that named another DB as the master
    superseded_at: float | None = None

    @property
    def superseded(self) -> bool:
        """The latest answer of the store names another master."""
        return self.superseded_at is not None and (
            self.confirmed_at is None or self.superseded_at > self.confirmed_at
        )


def confirmed_since(c: Contact, since: float) -> float:
    """Since when the store has confirmed us: the older of the two facts (``since``, when
    the server became a master under this keeper, stands for a fact not yet seen)."""
    wrote = c.wrote_at if c.wrote_at is not None else since
    read = c.confirmed_at if c.confirmed_at is not None else since
    return min(max(wrote, since), max(read, since))


def verdict(now: float, c: Contact, *, timeout: float, master_since: float | None, fenced: bool) -> Action:
    """What to do now.

    ``timeout`` is the self-fencing timeout in seconds (0: off); ``master_since`` the
    monotonic time since which the local server runs as a master (None: it does not).
    """
    if master_since is None:
        return Action.FORGET if fenced else Action.NOTHING
    if timeout <= 0:
        return Action.UNFENCE if fenced else Action.NOTHING
    cut_off = c.superseded or now - confirmed_since(c, master_since) > timeout
    if cut_off:
        return Action.NOTHING if fenced else Action.FENCE
    return Action.UNFENCE if fenced else Action.NOTHING


def deadline(c: Contact, *, timeout: float, master_since: float | None) -> float | None:
    """When :func:`verdict` turns to fencing if nothing new is reported (None: never)."""
    if master_since is None or timeout <= 0 or c.superseded:
        return None
    return confirmed_since(c, master_since) + timeout


def lease_ns(c: Contact, *, timeout: float, master_since: float | None) -> int:
    """The master lease (``CLOCK_MONOTONIC`` nanoseconds) the local server may commit
    writes until: the fencing :func:`deadline` while it runs as a master; revoked (0) when
    it does not or another master is named; never lapsing when self-fencing is off."""
    if timeout <= 0:
        return lease.FAR_FUTURE_NS
    due = deadline(c, timeout=timeout, master_since=master_since)
    return lease.REVOKED_NS if due is None else max(1, lease.to_ns(due))


def reading(cd: ClusterData | None, keeper_uid: str) -> bool | None:
    """What a read of the cluster data says about us: True, our DB is the master; False,
    another DB is (ours is not); None, neither (no cluster data, no master yet)."""
    if cd is None or cd.cluster is None or not cd.cluster.status.master:
        return None
    master = cd.cluster.status.master
    db = cd.db_of_keeper(keeper_uid)
    if db is not None and db.uid == master:
        return db.spec is not None and db.spec.role == ROLE_MASTER
    return False


class SelfFence:
    """Runs :func:`verdict` for one keeper.

    ``set_fence(on)`` makes the local server refuse writes or lifts that (it raises
    :class:`PostgresError` when it can't); ``open_store`` gives the probe its own store
    connection. The keeper's main loop calls :meth:`configure` (timeout, sleep interval)
    and :meth:`local_master` after each cycle, the publisher :meth:`wrote`.

    ``write_lease(ns)``, when given, replaces the lease file (:func:`lease_ns`); it is
    called by the watchdog whenever the value changes (once :meth:`configure` has said
    what the timeout is), and by :meth:`becoming_master` before the keeper promotes or
    starts its server as a master.
    """

    def __init__(
        self,
        keeper_uid: str,
        set_fence: Callable[[bool], None],
        open_store: Callable[[], ClusterStore],
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool, str], None] | None = None,
        write_lease: Callable[[int], None] | None = None,
    ) -> None:
        self.keeper_uid = keeper_uid
        self._set_fence = set_fence
        self._open_store = open_store
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._contact = Contact()
        self._master_since: float | None = None
        self._timeout = 0.0
        self._probe_every = 1.0
        #: when the last successful read of the cluster data (by anyone) started
        self._last_read: float | None = None
        self.fenced = False
        #: a fence may be in the server's configuration: set before every attempt to
        #: fence (one that fails half-way may have written it), cleared once a lift or a
        #: forget has gone through
        self.residue = False
        self._write_lease = write_lease
        #: the lease value last written (None: unknown, written at the next pass)
        self._lease_written: int | None = None
        #: serializes computing + writing the lease (the watchdog, a promotion)
        self._lease_lock = threading.Lock()
        self._configured = False
        self._lease_warned = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- reports ----------------------------------------------------------------------------
    def configure(self, timeout: float, sleep_interval: float) -> None:
        with self._lock:
            changed = timeout != self._timeout or not self._configured
            self._configured = True
            self._timeout = timeout
            self._probe_every = max(0.1, min(sleep_interval, timeout / 3 if timeout > 0 else sleep_interval))
        if changed:
            self._wake.set()

    def local_master(self, running_as_master: bool) -> None:
        """Whether the local server runs as a master (from the keeper's last look at it)."""
        with self._lock:
            if running_as_master and self._master_since is None:
                self._master_since = self._clock()
            elif not running_as_master:
                self._master_since = None
        self._wake.set()

    @property
    def timeout(self) -> float:
        """The self-fencing timeout in seconds (0: off, or not known yet)."""
        with self._lock:
            return self._timeout

    def becoming_master(self) -> None:
        """The keeper is about to promote its server or start it as a master (the store
        named it master in the read this cycle planned on): it counts as a master from now
        on, and a fresh lease is written before the server takes its first write."""
        with self._lock:
            if self._master_since is None:
                self._master_since = self._clock()
        self.renew_lease(force=True)
        self._wake.set()

    def wrote(self, started_at: float) -> None:
        with self._lock:
            if self._contact.wrote_at is None or started_at > self._contact.wrote_at:
                self._contact = Contact(started_at, self._contact.confirmed_at, self._contact.superseded_at)
        self._wake.set()

    def read(self, started_at: float, cd: ClusterData | None) -> None:
        """A successful read of the cluster data, started at ``started_at``."""
        self._note_read(started_at)
        says = reading(cd, self.keeper_uid)
        if says is None:
            return
        with self._lock:
            c = self._contact
            if says and (c.confirmed_at is None or started_at > c.confirmed_at):
                self._contact = Contact(c.wrote_at, started_at, c.superseded_at)
            elif not says and (c.superseded_at is None or started_at > c.superseded_at):
                self._contact = Contact(c.wrote_at, c.confirmed_at, started_at)
        self._wake.set()

    def read_unusable(self, started_at: float) -> None:
        """A read that found the cluster data unusable (malformed: logged and skipped by
        every component). No sentinel can elect another master while it is so (electing one
        means writing a usable document, which the next read sees), so it confirms what the
        last usable read said: a master stays unfenced — one bad document must not stop
        writes — and a superseded one stays fenced."""
        self._note_read(started_at)
        with self._lock:
            c = self._contact
            if not c.superseded and c.confirmed_at is not None and started_at > c.confirmed_at:
                self._contact = Contact(c.wrote_at, started_at, c.superseded_at)
        self._wake.set()

    def _note_read(self, started_at: float) -> None:
        with self._lock:
            if self._last_read is None or started_at > self._last_read:
                self._last_read = started_at

    def probe_due(self, now: float) -> float:
        """Seconds until the probe should read the cluster data itself: ``every`` after the
        last read by anyone (the keeper's cycle reads it on every change and every period;
        the probe only covers a main loop busy with a long step), 0 when due now."""
        with self._lock:
            last, every = self._last_read, self._probe_every
        return 0.0 if last is None else max(0.0, last + every - now)

    # -- threads ----------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._probe, "selffence-probe"), (self._watchdog, "selffence-watchdog")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _probe(self) -> None:
        store: ClusterStore | None = None
        # the reading of a document that only heartbeats changed is the same object
        memo = ClusterDataMemo()
        try:
            while not self._stop.is_set():
                with self._lock:
                    active = self._timeout > 0 and self._master_since is not None
                    every = self._probe_every
                wait = every
                if active:
                    wait = self.probe_due(self._clock())
                if active and wait <= 0:
                    wait = every
                    if store is None:
                        try:
                            store = self._open_store()
                        except StoreError as e:
                            log.warning("self-fencing probe: cannot open the store: %s", e)
                    if store is not None:
                        started = self._clock()
                        try:
                            cd, _ = store.get_cluster_data(parse=memo.parse)
                        except ClusterDataError:
                            self.read_unusable(started)
                        except StoreError as e:
                            log.debug("self-fencing probe: cannot read the cluster data: %s", e)
                        else:
                            self.read(started, cd)
                self._stop.wait(max(wait, 0.01))
        finally:
            if store is not None:
                store.close()

    def renew_lease(self, *, force: bool = False) -> None:
        """Write the lease if it changed since the last write (or ``force``)."""
        if self._write_lease is None:
            return
        with self._lease_lock:
            with self._lock:
                if not self._configured:
                    return
                value = lease_ns(self._contact, timeout=self._timeout, master_since=self._master_since)
                master = self._master_since is not None
            if value == self._lease_written and not force:
                return
            try:
                self._write_lease(value)
            except (OSError, PostgresError) as e:
                # e.g. no data directory yet (not initialised); retried at the next pass
                if master and not self._lease_warned:
                    self._lease_warned = True
                    log.warning("cannot write the master lease (commits may be refused; retried): %s", e)
                else:
                    log.debug("cannot write the master lease: %s", e)
                self._lease_written = None
                return
            if self._lease_warned:
                self._lease_warned = False
                log.info("master lease written again")
            self._lease_written = value

    def _watchdog(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            # the lease first: a revocation lands before the (slower) fence
            self.renew_lease()
            self.check()
            with self._lock:
                due = deadline(self._contact, timeout=self._timeout, master_since=self._master_since)
            wait = MAX_TICK if due is None else min(MAX_TICK, max(0.0, due - self._clock()) + 0.01)
            self._wake.wait(wait)

    def check(self) -> Action:
        """Run the rule once and act on it (the watchdog calls it; tests may too)."""
        with self._lock:
            now = self._clock()
            c, since, timeout = self._contact, self._master_since, self._timeout
            action = verdict(now, c, timeout=timeout, master_since=since, fenced=self.fenced)
            if action is Action.NOTHING and self.residue and not self.fenced:
                # a fence that failed half-way: retried while it is due, but lifted (or
                # forgotten) as a real one would be
                lift = verdict(now, c, timeout=timeout, master_since=since, fenced=True)
                if lift in (Action.UNFENCE, Action.FORGET):
                    action = lift
        if action is Action.NOTHING:
            return action
        if action is Action.FORGET:
            # no longer a master: the fence leaves the configuration now, or a later
            # promotion of this server would start it refusing writes with nobody to lift it
            try:
                self._set_fence(False)
            except PostgresError as e:
                log.warning("self-fencing: cannot drop the fence of a former master (retried): %s", e)
                return Action.NOTHING
            was_fenced = self.fenced
            self.fenced = self.residue = False
            log.info("self-fence dropped: the server no longer runs as a master")
            if was_fenced and self._on_change is not None:
                self._on_change(False, "no longer a master")
            return action
        on = action is Action.FENCE
        if on:
            self.residue = True
        if on:
            silence = now - confirmed_since(c, since) if since is not None else 0.0
            why = (
                "the store names another master"
                if c.superseded
                else f"the store has not confirmed this master for {silence:.1f}s (selfFencingTimeout {timeout:g}s)"
            )
        else:
            why = (
                "the store confirms this keeper's DB is the master"
                if timeout > 0
                else "self-fencing turned off"
            )
        attributes: dict[str, str | float] = {
            "stolon.keeper.uid": self.keeper_uid,
            "stolon.self_fence.reason": why,
            "stolon.self_fence.timeout_s": timeout,
        }
        name = "keeper.self_fence" if on else "keeper.self_unfence"
        with telemetry.tracer("keeper").start_as_current_span(name, attributes=attributes):
            try:
                self._set_fence(on)
            except PostgresError as e:
                log.error("self-fencing: cannot %s the database: %s", "fence" if on else "unfence", e)
                return Action.NOTHING
        self.fenced = on
        if not on:
            self.residue = False
        if on:
            log.warning("self-fenced: PostgreSQL refuses writes: %s", why)
        else:
            log.info("self-fence lifted: %s", why)
        if self._on_change is not None:
            self._on_change(on, why)
        return action
