"""stolon-sentinel: watches every keeper, decides the cluster data and writes it.

Each cycle (Go Stolon's ``clusterSentinelCheck``; every ``sleepInterval``, and for the leader
also as soon as a change of the cluster data, a keeper info or a proxy info is worth a
decision, and when a keeper's silence reaches ``failInterval``: :meth:`Sentinel.wait_next`,
docs/failover.md "How the sentinel wakes"):

1. publish this sentinel's info; read the cluster data; none → create it from
   ``--initial-cluster-spec`` (create-only), or wait; unreadable → nothing (logged once);
2. read the keepers' and proxies' infos (each malformed one is left out);
3. non-leaders stop here; a leader that just gained the leadership runs a *first run*
   (every timer reset, stale infos ignored);
4. :func:`stolon.sentinel.decide.decide` (pure) computes the new cluster data and the
   events;
5. the events become an OpenTelemetry span (one per decision that changes something; the
   failover decision is its own span with every candidate), the span's trace context is
   stored in the DBs and proxy object the decision changed, and the new cluster data is
   written with a compare-and-swap that the store also conditions on still holding the
   leadership, so a paused ex-leader that wakes up can't overwrite it;
6. when the decision asks to fence an old master first (``FencingRequested``, fencing
   configured in the spec), the configured methods run now (:mod:`stolon.fencing.runner`,
   in the failover's trace) and the next cycle starts at once with their outcome in its
   observations: it promotes if the fencing policy allows (docs/fencing.md). Failed
   attempts are retried with an exponential back-off (:class:`FencingBackoff`, bounded
   by ``sleepInterval``), never in a loop without a pause; the leader publishes where
   fencing stands in its ``SentinelInfo`` (``stolonctl status`` shows it).

Timers use the monotonic clock; wall time only goes into persisted ``changeTime`` fields.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter

import stolon
from stolon import telemetry
from stolon.fencing.base import FencingOutcome, FencingTarget
from stolon.fencing.runner import FencingRunner
from stolon.metrics import Metrics
from stolon.model import (
    Cluster,
    ClusterData,
    ClusterDataError,
    ClusterSpec,
    FencingState,
    ModelError,
    SentinelInfo,
)
from stolon.model.spec import FencingSpec
from stolon.model.text import printable
from stolon.model.uid import new_uid
from stolon.plugins import StolonPluginManager
from stolon.sentinel import events as ev
from stolon.sentinel.decide import Decision, decide
from stolon.sentinel.health import failure_deadline
from stolon.sentinel.infotracker import KEEPER_PROGRESS_FIELDS, InfoTracker
from stolon.sentinel.memory import Memory
from stolon.sentinel.observations import Now, Observations
from stolon.specstate import StoredSpecCheck
from stolon.store import ClusterStore, open_store
from stolon.store.base import (
    ChangeKind,
    Changes,
    ConflictError,
    Election,
    InfoKind,
    NotLeaderError,
    Revision,
    StoreConfig,
    StoreError,
    Watch,
)

log = logging.getLogger("stolon.sentinel")

DEFAULT_SLEEP = 5.0
#: Go Stolon's sentinel election session TTL.
DEFAULT_ELECTION_TTL = 20.0

#: Events that only restate a steady cluster: no span for a cycle made of these alone.
STEADY_KINDS = frozenset(
    {
        ev.KeeperHealthy.kind,
        ev.DBHealthy.kind,
        ev.ProxiesWaiting.kind,
        ev.SyncStandbysWaiting.kind,
        ev.SpecPropagated.kind,
        ev.KeeperInfoRejected.kind,
    }
)
#: Election outcomes: each is its own ``sentinel.failover`` span with every candidate.
FAILOVER_KINDS = frozenset({ev.MasterElected.kind, ev.NoEligibleMaster.kind})
#: Events about the same election: events of its failover span.
FENCING_KINDS = frozenset({ev.FencingRequested.kind, ev.FencingChecked.kind})
#: How many distinct rejected keeper infos are remembered to log each only once.
MAX_REJECTIONS_REMEMBERED = 1000
#: Events logged as warnings.
WARNING_KINDS = frozenset({ev.NoEligibleMaster.kind, ev.UpdateError.kind, ev.SwitchoverCancelled.kind})


#: What the leader watches: everything its decision reads.
WATCHED = frozenset({ChangeKind.CLUSTER_DATA, ChangeKind.KEEPERS, ChangeKind.PROXIES})
#: After a change worth a cycle, how long to gather the changes that come with it (a new
#: cluster data makes every keeper and proxy react within a few milliseconds).
DEBOUNCE = 0.03
#: A failure deadline is acted on this long after it: "healthy" is "at most failInterval".
DEADLINE_MARGIN = 0.005
#: The longest a wait goes without checking for a stop request.
STOP_POLL = 0.5


#: First pause before fencing the same old master again after a failed attempt; it doubles
#: with each failure, up to ``sleepInterval``.
FENCING_BACKOFF_START = 0.25


@dataclass
class FencingBackoff:
    """When the next fencing attempt against one old master may run (monotonic seconds).

    A ``required`` method that fails at once (``/bin/false``) would otherwise be retried,
    with a cluster data write and a process spawn, as fast as the loop can go.
    """

    target: str = ""
    failures: int = 0
    not_before: float = 0.0

    def due(self, target: str, now: float) -> bool:
        if target != self.target:
            self.target, self.failures, self.not_before = target, 0, 0.0
        return now >= self.not_before

    def record(self, fenced: bool, now: float, cap: float) -> float:
        """Count an attempt's outcome; return the pause before the next one."""
        if fenced:
            self.failures, self.not_before = 0, 0.0
            return 0.0
        self.failures += 1
        delay = min(cap, FENCING_BACKOFF_START * float(2 ** (self.failures - 1)))
        self.not_before = now + delay
        return delay

    def reset(self) -> None:
        self.target, self.failures, self.not_before = "", 0, 0.0


@dataclass(frozen=True)
class SentinelConfig:
    store: StoreConfig
    initial_cluster_spec: ClusterSpec | None
    metrics_listen_address: str = ""
    election_ttl: float = DEFAULT_ELECTION_TTL
    uid: str = ""


def load_initial_spec(path: str) -> ClusterSpec:
    """``--initial-cluster-spec``: validated at start-up (Go Stolon's behaviour)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ModelError("", f"cannot read --initial-cluster-spec {path!r}: {e.strerror}") from None
    spec = ClusterSpec.loads(text, strict=True)
    spec.validate()
    return spec


class SentinelMetrics:
    def __init__(self, cluster_name: str) -> None:
        self.m = Metrics("sentinel", cluster_name)
        self.last_check = self.m.gauge(
            "stolon_sentinel_last_cluster_check_success_seconds",
            "Last time we successfully checked the cluster",
        )
        self.is_leader = self.m.gauge("stolon_sentinel_is_leader", "Set to 1 if the sentinel is the leader")
        self.leader_count = self.m.gauge(
            "stolon_sentinel_leader_count", "Number of times the sentinel became the leader"
        )
        self.spec_warnings = self.m.gauge(
            "stolon_cluster_spec_warnings",
            "Rules of ours the stored cluster spec breaks (used as documented; see stolonctl status)",
        )
        # ours: what the leader's decisions did, from the cluster data it wrote
        self.master_changes = Counter(
            "stolon_sentinel_master_changes",
            "Times this sentinel, as leader, made another DB the master (failover or switchover)",
            ["cause"],
            registry=self.m.registry,
        )
        self.db_healthy = self.m.gauge(
            "stolon_sentinel_db_healthy",
            "1 if the keeper's DB is healthy (leader's view)",
            ("keeper",),
        )
        self.db_lag = self.m.gauge(
            "stolon_sentinel_db_lag_bytes",
            "Master's WAL position minus the standby's, as the keepers reported them (leader's view)",
            ("keeper",),
        )
        self.fencing = self.m.counter(
            "stolon_sentinel_fencing",
            "Fencing runs against an old master, by result (fenced or failed)",
            ("result",),
        )

    def observe(self, prev: ClusterData, cd: ClusterData | None, switchover: bool) -> None:
        """After a write as leader (``cd``), or when not leading (``cd`` None: no series)."""
        self.db_healthy.clear()
        self.db_lag.clear()
        if cd is None or cd.cluster is None:
            return
        old = prev.cluster.status.master if prev.cluster is not None else ""
        new = cd.cluster.status.master
        if old and new and old != new:
            self.master_changes.labels("switchover" if switchover else "failover").inc()
        master = cd.master_db()
        for db in (cd.dbs or {}).values():
            if db.spec is None:
                continue
            self.db_healthy.labels(db.spec.keeper_uid).set(1 if db.status.healthy else 0)
            if master is not None and db.uid != master.uid and db.status.healthy:
                self.db_lag.labels(db.spec.keeper_uid).set(
                    max(0, master.status.xlog_pos - db.status.xlog_pos)
                )


class FencingOutcomeCounter:
    """The sentinel's own ``stolon_fencing_done`` implementation, registered in the plugin
    manager like a third-party one: it counts the outcomes in
    ``stolon_sentinel_fencing_total{result="fenced"|"failed"}``."""

    def __init__(self, metrics: SentinelMetrics) -> None:
        self.metrics = metrics

    @stolon.hookimpl
    def stolon_fencing_done(self, target: FencingTarget, outcome: FencingOutcome) -> None:
        self.metrics.fencing.labels("fenced" if outcome.fenced else "failed").inc()


class Sentinel:
    """The sentinel process: ``plugins`` gives it its store backend and fencing methods, and
    hears its ``stolon_fencing_done`` events."""

    def __init__(self, cfg: SentinelConfig, plugins: StolonPluginManager) -> None:
        self.cfg = cfg
        self.plugins = plugins
        self.uid = cfg.uid or new_uid()
        self.sleep = DEFAULT_SLEEP
        self.memory = Memory.empty()
        self.metrics = SentinelMetrics(cfg.store.cluster_name)
        self.fencing_counter = FencingOutcomeCounter(self.metrics)
        self.tracer = telemetry.tracer("sentinel")
        self._stop = threading.Event()
        self._seen_terms = 0
        self.store: ClusterStore | None = None
        self.election: Election | None = None
        #: old master DB UID → fencing outcome, handed to the next decision
        self.fencing_outcomes: dict[str, FencingOutcome] = {}
        #: trace context of the failover span that requested fencing (the promotion joins it)
        self._fencing_trace: dict[str, str] | None = None
        #: trace context of the last election, until the proxies are pointed at its master:
        #: the decision that points them (a later cycle) continues the failover's trace
        self._failover_trace: dict[str, str] | None = None
        self._run_now = False
        #: monotonic time the loop must wake up at (a fencing retry), if before the sleep ends
        self._wake_at: float | None = None
        #: keepers' and proxies' last signs of life, and what of their infos changed
        self.keeper_tracker = InfoTracker(KEEPER_PROGRESS_FIELDS)
        self.proxy_tracker = InfoTracker()
        #: whether this sentinel led in its last cycle (it then watches the store)
        self._leading = False
        self._watch: Watch | None = None
        #: the revision of the cluster data this sentinel last wrote (its own change is no news)
        self._written: Revision | None = None
        #: the last cycle changed nothing but steady facts: heartbeats need no cycle
        self._settled = False
        #: the cluster data of the last decision and its failInterval (failure deadlines)
        self._last_cd: ClusterData | None = None
        self._fail_interval = 0.0
        self.fencing_backoff = FencingBackoff()
        #: published in this sentinel's info while fencing is pending (ours)
        self.fencing_state: FencingState | None = None
        #: the monotonic clock of the decisions, deadlines and fencing back-off (tests
        #: replace it)
        self.clock = time.monotonic
        self.spec_check = StoredSpecCheck(log)
        #: (keeper uid, problem) of rejected keeper infos already logged
        self._rejected_logged: set[tuple[str, str]] = set()
        self.fencing_runner = FencingRunner(
            plugins.fencing_methods,
            self.tracer,
            lambda target, outcome: plugins.hook.stolon_fencing_done(target=target, outcome=outcome),
        )

    # -- one cycle ----------------------------------------------------------------------------
    def cycle(self) -> Decision | None:
        store, election = self.store, self.election
        assert store is not None and election is not None
        try:
            # First, so that a sentinel is seen alive (stolonctl status) even when the
            # cluster data can't be read.
            store.put_sentinel_info(
                SentinelInfo(uid=self.uid, fencing=self.fencing_state), ttl=2 * self.sleep
            )
        except StoreError as e:
            log.error("store error: %s", e)
            self._lost_sight()
            return None
        try:
            cd, rev = store.get_cluster_data()
        except ClusterDataError:
            return None  # unreadable: the store logged it (once); never overwritten from here
        except StoreError as e:
            log.error("cannot get cluster data: %s", e)
            self._lost_sight()
            return None
        if cd is None:
            self._create_cluster(store)
            return None
        spec = self.spec_check.accept(cd)
        self.metrics.spec_warnings.set(len(self.spec_check.warnings))
        if spec is None or cd.cluster is None:
            return None
        d = cd.cluster.def_spec().d()
        self.sleep = d.sleep_interval.seconds or DEFAULT_SLEEP
        try:
            raw_keepers = store.raw_infos(InfoKind.KEEPER)
            raw_proxies = store.raw_infos(InfoKind.PROXY)
        except StoreError as e:
            log.error("store error: %s", e)
            self._lost_sight()
            return None
        read_at = self.clock()
        self.keeper_tracker.observe(raw_keepers, read_at)
        self.proxy_tracker.observe(raw_proxies, read_at)
        keepers_info = store.keepers_info(raw_keepers)
        proxies_info = store.proxies_info(raw_proxies)
        lead = election.leadership()
        self.metrics.is_leader.set(1 if lead is not None else 0)
        self.metrics.leader_count.set(election.times_elected)
        if lead is None:
            self.fencing_state = None  # only the leader fences
            self.metrics.observe(cd, None, switchover=False)
            self._leading = False
            return None
        self._leading = True
        first_run = lead.term != self._seen_terms
        if first_run:
            log.info("sentinel leadership acquired (term %d): first run, timers reset", lead.term)
            self._seen_terms = lead.term
            self.fencing_outcomes = {}
            self.fencing_backoff.reset()
            # silences count from when this sentinel leads (as the first run's timers)
            self.keeper_tracker.restart()
            self.keeper_tracker.observe(raw_keepers, read_at)
        now = Now(mono=self.clock(), wall=datetime.now(UTC))
        observations = Observations(
            keepers_info,
            proxies_info,
            first_run,
            fencing=dict(self.fencing_outcomes),
            keeper_silence_since=self.keeper_tracker.silence_since(),
        )
        decision = decide(cd, observations, self.memory, now, new_uid=new_uid, pick_index=secrets.randbelow)
        self.memory = decision.memory
        self._settled = False
        self._last_cd = decision.cluster_data or cd
        self._fail_interval = d.fail_interval.seconds
        for rejected in decision.of(ev.KeeperInfoRejected):
            self._log_rejected(rejected)
        fencing_requests = decision.of(ev.FencingRequested)
        if not fencing_requests:
            self.fencing_outcomes = {}
            self.fencing_backoff.reset()
            self.fencing_state = None
        if decision.cluster_data is None:
            log.error("cluster update failed: %s", decision.error)
            return decision
        new_cd = self._trace(cd, decision)
        if not lead.is_valid():
            log.warning("leadership expired during the cycle: not writing the cluster data")
            return decision
        try:
            self._written = store.cas_cluster_data(new_cd, rev, leadership=lead)
        except NotLeaderError as e:
            log.warning("not writing the cluster data: %s", e)
            return decision
        except ConflictError as e:
            log.warning("cluster data changed meanwhile, retrying next cycle: %s", e)
            return decision
        except StoreError as e:
            log.error("failed to write the cluster data: %s", e)
            return decision
        self.metrics.last_check.set(time.time())
        self.metrics.observe(cd, new_cd, switchover=bool(decision.of(ev.SwitchoverPromoted)))
        self._settled = all(event.kind in STEADY_KINDS for event in decision.events)
        if fencing_requests and spec.fencing is not None:
            self._fence_when_due(fencing_requests[-1], spec.fencing)
        return decision

    def _fence_when_due(self, request: ev.FencingRequested, spec: FencingSpec) -> None:
        """Fence now, or (after failed attempts) when the back-off allows: the loop then
        wakes up for it, never sooner."""
        backoff = self.fencing_backoff
        now = self.clock()
        if not backoff.due(request.old_master_db, now):
            self._wake_at = backoff.not_before
            log.debug(
                "fencing of db %s: next attempt in %.2fs", request.old_master_db, backoff.not_before - now
            )
            return
        outcome = self._fence(request, spec)
        after = self.clock()
        delay = backoff.record(outcome.fenced, after, self.sleep)
        wall = datetime.now(UTC)
        self.fencing_state = FencingState(
            old_master_db=request.old_master_db,
            old_master_keeper=request.old_master_keeper,
            new_master_db=request.new_master_db,
            fenced=outcome.fenced,
            failures=backoff.failures,
            detail=outcome.detail[-300:],
            last_attempt=wall,
            next_attempt=None if outcome.fenced else wall + timedelta(seconds=delay),
        )
        if not outcome.fenced:
            log.warning(
                "fencing of db %s failed %d time(s): next attempt in %.2fs",
                request.old_master_db,
                backoff.failures,
                delay,
            )

    # -- fencing ------------------------------------------------------------------------------
    def _fence(self, request: ev.FencingRequested, spec: FencingSpec) -> FencingOutcome:
        """Run the configured fencing methods against the old master, in the failover's trace;
        the outcome goes to the next decision, which runs without waiting."""
        target = FencingTarget(
            cluster_name=self.cfg.store.cluster_name,
            keeper_uid=request.old_master_keeper,
            db_uid=request.old_master_db,
            host=request.host,
            port=request.port,
        )
        parent = telemetry.context_from(self._fencing_trace)
        token = otel_context.attach(parent) if parent is not None else None
        try:
            self.fencing_runner.tracer = self.tracer
            outcome = self.fencing_runner.run(target, spec)
        finally:
            if token is not None:
                otel_context.detach(token)
        self.fencing_outcomes = {request.old_master_db: outcome}
        self._run_now = True
        return outcome

    def _create_cluster(self, store: ClusterStore) -> None:
        spec = self.cfg.initial_cluster_spec
        if spec is None:
            log.info("no cluster data available, waiting for it to appear")
            return
        cd = ClusterData.new(Cluster.new(spec))
        try:
            store.create_cluster_data(cd)
            log.info("cluster data created from the initial cluster spec")
        except ConflictError:
            pass
        except StoreError as e:
            log.error("cannot create the cluster data: %s", e)

    def _log_rejected(self, reason: ev.KeeperInfoRejected) -> None:
        """A rejected info is logged once (per UID and problem), not every cycle."""
        key = (reason.keeper_uid, reason.why)
        if key in self._rejected_logged:
            return
        if len(self._rejected_logged) >= MAX_REJECTIONS_REMEMBERED:
            self._rejected_logged.clear()
        self._rejected_logged.add(key)
        log.warning("ignoring the info of keeper %r: %s", reason.keeper_uid, reason.why)

    # -- tracing ------------------------------------------------------------------------------
    def _trace(self, prev: ClusterData, decision: Decision) -> ClusterData:
        """Turn the decision's events into spans; return the cluster data to write: the
        decision's, or a copy of it with the trace context stamped on what changed (the
        decision itself is never modified)."""
        new_cd = decision.cluster_data
        assert new_cd is not None
        for event in decision.events:
            if not isinstance(event, ev.KeeperInfoRejected):  # logged by cycle(), once
                _log_event(event)
        if all(event.kind in STEADY_KINDS for event in decision.events):
            return new_cd
        # The decision that acts on a fencing outcome continues the trace that requested it;
        # the one that points the proxies at an elected master continues the election's.
        parent = None
        if decision.of(ev.FencingChecked):
            parent = telemetry.context_from(self._fencing_trace)
        elif decision.of(ev.ProxiesPointed) and not decision.of(ev.MasterElected):
            parent = telemetry.context_from(self._failover_trace)
        if decision.of(ev.ProxiesPointed):
            self._failover_trace = None
        if not decision.of(ev.FencingRequested) and not decision.of(ev.FencingChecked):
            self._fencing_trace = None
        with self.tracer.start_as_current_span("sentinel.decide", context=parent) as span:
            span.set_attribute("stolon.sentinel.uid", self.uid)
            span.set_attribute(telemetry.ATTR_CLUSTER, self.cfg.store.cluster_name)
            elections = [x for x in decision.events if x.kind in FAILOVER_KINDS]
            for event in decision.events:
                if event.kind in FAILOVER_KINDS:
                    self._failover_span(event, decision)
                elif event.kind not in FENCING_KINDS or not elections:
                    span.add_event(event.kind, event.attributes())
            carrier = telemetry.current_carrier()
        return with_trace_context(prev, decision, carrier)

    def _failover_span(self, event: ev.Event, decision: Decision) -> None:
        """One span per election: every candidate, the verdict, and the fencing that gates
        the promotion (events)."""
        with self.tracer.start_as_current_span("sentinel.failover") as span:
            attrs = event.attributes()
            for key, value in attrs.items():
                span.set_attribute(f"stolon.failover.{key}", value)
            span.add_event(event.kind, attrs)
            requested = decision.of(ev.FencingRequested)
            checked = decision.of(ev.FencingChecked)
            for fencing in [*checked, *requested]:
                span.add_event(fencing.kind, fencing.attributes())
            if checked:
                span.set_attribute("stolon.failover.fenced", checked[-1].fenced)
                span.set_attribute("stolon.failover.fencing_policy", checked[-1].policy)
            if isinstance(event, ev.NoEligibleMaster):
                verdict = "no eligible master"
                span.set_status(Status(StatusCode.ERROR, verdict))
            elif checked and not checked[-1].promote:
                verdict = "not promoted: fencing the old master failed (policy required)"
                span.set_status(Status(StatusCode.ERROR, verdict))
            elif requested:
                verdict = "promotion waits for fencing the old master"
            else:
                verdict = "master elected"
            span.set_attribute("stolon.failover.verdict", verdict)
            if isinstance(event, ev.MasterElected) and not decision.of(ev.ProxiesPointed):
                # the proxies are pointed at the new master by a later decision
                self._failover_trace = telemetry.current_carrier()
            if requested:
                # the fencing run and the next decision join this trace
                self._fencing_trace = telemetry.current_carrier()

    # -- process ------------------------------------------------------------------------------
    def run(self) -> int:
        telemetry.setup_tracing("sentinel", self.cfg.store.cluster_name)
        try:
            self.metrics.m.serve(self.cfg.metrics_listen_address)
        except OSError as e:
            log.critical("metrics http server error: %s", e)
            return 1
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        try:
            self.loop()
        finally:
            self.close()
        return 0

    def start(self) -> None:
        """Open the store and start campaigning (:meth:`run` does it; tests call it to run a
        sentinel on a thread of their own)."""
        pm = self.plugins
        if not pm.is_registered(self.fencing_counter):
            pm.register(self.fencing_counter, name=f"sentinel:{self.uid}:fencing-metrics")
        self.store = open_store(self.cfg.store, pm)
        self.election = self.store.election(self.uid, self.cfg.election_ttl)
        log.info("sentinel uid %s: trying to acquire sentinels leadership", self.uid)
        self.election.start()

    def loop(self) -> None:
        """A cycle every ``sleepInterval``, and as soon as something worth a decision happens
        (:meth:`wait_next`), until :meth:`stop`."""
        try:
            while not self._stop.is_set():
                try:
                    self.cycle()
                except Exception:
                    log.exception("unexpected error in the sentinel cycle")
                if self._run_now:
                    self._run_now = False  # a fencing outcome is waiting for its decision
                    continue
                self.wait_next()
        finally:
            self._close_watch()

    def next_wait(self) -> float:
        """Seconds from now until the next cycle at the latest (:meth:`next_due`)."""
        now = self.clock()
        return max(0.0, min(self.sleep, self.next_due(now) - now))

    def next_due(self, since: float) -> float:
        """The monotonic time of the next cycle at the latest, for a wait that started at
        ``since``: ``sleepInterval`` later, or sooner for a fencing retry or a failure
        deadline."""
        due = since + self.sleep
        if self._wake_at is not None:
            due = min(due, self._wake_at)
        deadline = self.failure_deadline()
        if deadline is not None:
            due = min(due, deadline + DEADLINE_MARGIN)
        return due

    def failure_deadline(self) -> float | None:
        """When the next keeper or DB that is healthy crosses ``failInterval`` of silence
        (leader only; :func:`stolon.sentinel.health.failure_deadline`)."""
        if not self._leading or self._last_cd is None:
            return None
        return failure_deadline(
            self._last_cd, self.memory, self.keeper_tracker.silence_since(), self._fail_interval
        )

    def wait_next(self) -> None:
        """Until the next cycle is due: ``sleepInterval`` after this one, a keeper's failure
        deadline, a fencing retry, or (leader only) a change of the cluster data, a keeper
        info or a proxy info that is worth a decision (:meth:`absorb`), then
        :data:`DEBOUNCE` more so that a burst of changes costs one cycle."""
        start = self.clock()
        try:
            while not self._stop.is_set():
                left = self.next_due(start) - self.clock()
                if left <= 0:
                    return
                watch = self._leader_watch()
                if watch is None:
                    self._stop.wait(min(left, STOP_POLL))
                    continue
                changes = watch.wait(min(left, STOP_POLL))
                if changes and self.absorb(changes):
                    more = watch.wait(DEBOUNCE)
                    if more:
                        self.absorb(more)
                    return
        finally:
            self._wake_at = None

    def absorb(self, changes: Changes) -> bool:
        """Read what the watch says changed; whether it is worth a cycle now. A keeper or
        proxy heartbeat only moves that daemon's last sign of life (and so the failure
        deadline); the cluster data this sentinel wrote itself is no news."""
        store = self.store
        assert store is not None
        if changes.resync:
            self._lost_sight()
            return True
        now = self.clock()
        run = False
        try:
            if changes.touches(ChangeKind.CLUSTER_DATA):
                stored = store.backend.get_cluster_data()
                run = run or stored is None or stored.revision != self._written
            for kind, tracker in (
                (ChangeKind.KEEPERS, self.keeper_tracker),
                (ChangeKind.PROXIES, self.proxy_tracker),
            ):
                if changes.touches(kind):
                    info_kind = InfoKind.KEEPER if kind == ChangeKind.KEEPERS else InfoKind.PROXY
                    changed, material = tracker.observe(store.raw_infos(info_kind), now)
                    # Until the cluster is settled (an election to retry, a first run), any
                    # sign of life may be the one the decision waits for.
                    run = run or material or (changed and not self._settled)
        except StoreError:
            self._lost_sight()
            return True  # the cycle reports it
        return run

    def _lost_sight(self) -> None:
        self.keeper_tracker.restart()
        self.proxy_tracker.restart()

    def _leader_watch(self) -> Watch | None:
        """The watch on what the leader decides from, open while this sentinel leads."""
        if not self._leading or self.store is None:
            self._close_watch()
            return None
        if self._watch is None:
            self._watch = self.store.watch(WATCHED)
        return self._watch

    def _close_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def stop(self) -> None:
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()  # a wait in progress returns

    def close(self) -> None:
        """Resign the leadership, close the store and leave the plugin manager."""
        pm = self.plugins
        if pm.is_registered(self.fencing_counter):
            pm.unregister(self.fencing_counter)
        if self.election is not None:
            self.election.resign()
        if self.store is not None:
            self.store.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("got signal %s, stopping", signal.Signals(signum).name)
        self._stop.set()


def with_trace_context(prev: ClusterData, decision: Decision, carrier: dict[str, str]) -> ClusterData:
    """A copy of the decision's cluster data whose DBs with a new generation, and proxy
    object if its generation changed, carry ``carrier`` (W3C trace context): the keepers'
    and proxies' spans of that change join the decision's trace."""
    assert decision.cluster_data is not None
    out = decision.cluster_data.copy()
    bumped = {x.db_uid for x in decision.of(ev.DBGenerationBumped)}
    for uid, db in (out.dbs or {}).items():
        if uid in bumped:
            db.trace_context = dict(carrier)
    if out.proxy is not None and prev.proxy is not None and out.proxy.generation != prev.proxy.generation:
        out.proxy.trace_context = dict(carrier)
    return out


def _log_event(event: ev.Event) -> None:
    level = logging.DEBUG if event.kind in STEADY_KINDS else logging.INFO
    if event.kind in WARNING_KINDS or (isinstance(event, ev.FencingChecked) and not event.promote):
        level = logging.WARNING
    if log.isEnabledFor(level):
        log.log(level, "%s %s", event.kind, _short(event.attributes()))


def _short(attrs: dict[str, Any]) -> str:
    """``k=v`` pairs for a log line; values are escaped (they may come from the store)."""
    return " ".join(f"{k}={printable(str(v))}" for k, v in attrs.items())
