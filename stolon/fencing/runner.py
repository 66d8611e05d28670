"""The sentinel's fencing step: run the configured methods against an old master.

Called by the leader sentinel (:mod:`stolon.sentinel.daemon`) on the failover path, after
it wrote a decision with a ``FencingRequested`` reason and before the next decision. Methods
are tried in the spec's order until one succeeds; the whole attempt is bounded by
``fencing.timeout``: each method gets what is left, runs in a worker thread, and is given
up on (reported as timed out) when that time is over. Each method call is a span
``sentinel.fencing.method`` under a ``sentinel.fencing`` span, in the failover's trace.
Then the ``stolon_fencing_done`` hook is called with the outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from stolon.fencing.base import FencingAttempt, FencingOutcome, FencingTarget
from stolon.hookspecs import FencingMethodSpec
from stolon.model.spec import FencingMethod, FencingSpec

log = logging.getLogger("stolon.sentinel.fencing")

#: Extra time given to a method's thread beyond the timeout it was handed (it should honour it).
GRACE_S = 0.5

Notify = Callable[[FencingTarget, FencingOutcome], None]


class FencingRunner:
    def __init__(
        self,
        methods: Callable[[], Mapping[str, FencingMethodSpec]],
        tracer: trace.Tracer,
        notify: Notify | None = None,
    ) -> None:
        self._methods = methods
        self.tracer = tracer
        self._notify = notify

    def run(self, target: FencingTarget, spec: FencingSpec) -> FencingOutcome:
        timeout = spec.effective_timeout.seconds
        deadline = time.monotonic() + timeout
        attempts: list[FencingAttempt] = []
        with self.tracer.start_as_current_span("sentinel.fencing") as span:
            span.set_attribute("stolon.fencing.keeper_uid", target.keeper_uid)
            span.set_attribute("stolon.fencing.db_uid", target.db_uid)
            span.set_attribute("stolon.fencing.host", target.host)
            span.set_attribute("stolon.fencing.policy", spec.effective_policy)
            span.set_attribute("stolon.fencing.timeout_s", timeout)
            for method in spec.methods or []:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    attempts.append(
                        FencingAttempt(
                            method.name, False, f"not tried: fencing.timeout ({timeout:g}s) used up", 0.0
                        )
                    )
                    break
                attempt = self._one(method, target, remaining)
                attempts.append(attempt)
                if attempt.ok:
                    break
            outcome = FencingOutcome(target.db_uid, any(a.ok for a in attempts), tuple(attempts))
            span.set_attribute("stolon.fencing.fenced", outcome.fenced)
            if not outcome.fenced:
                span.set_status(Status(StatusCode.ERROR, outcome.detail))
        level = logging.INFO if outcome.fenced else logging.ERROR
        log.log(level, "fencing of db %s (keeper %s): %s", target.db_uid, target.keeper_uid, outcome.detail)
        if self._notify is not None:
            try:
                self._notify(target, outcome)
            except Exception:
                log.exception("a stolon_fencing_done hook failed (ignored)")
        return outcome

    def _one(self, method: FencingMethod, target: FencingTarget, timeout: float) -> FencingAttempt:
        start = time.monotonic()
        with self.tracer.start_as_current_span("sentinel.fencing.method") as span:
            span.set_attribute("stolon.fencing.method", method.name)
            span.set_attribute("stolon.fencing.keeper_uid", target.keeper_uid)
            span.set_attribute("stolon.fencing.db_uid", target.db_uid)
            span.set_attribute("stolon.fencing.timeout_s", timeout)
            ok, detail = self._call(method, target, timeout)
            span.set_attribute("stolon.fencing.ok", ok)
            span.set_attribute("stolon.fencing.detail", detail)
            if not ok:
                span.set_status(Status(StatusCode.ERROR, detail))
        return FencingAttempt(method.name, ok, detail, time.monotonic() - start)

    def _call(self, method: FencingMethod, target: FencingTarget, timeout: float) -> tuple[bool, str]:
        methods = self._methods()
        ms = methods.get(method.name)
        if ms is None:
            installed = ", ".join(sorted(methods)) or "none"
            return False, f"unknown fencing method {method.name!r} (installed: {installed})"
        try:
            fencer = ms.factory(dict(method.config or {}))
        except Exception as e:
            return False, f"invalid config: {e}"
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["detail"] = str(fencer.fence(target, timeout))
            except Exception as e:
                result["error"] = str(e) or type(e).__name__

        worker = threading.Thread(target=work, name=f"fencing-{method.name}", daemon=True)
        worker.start()
        worker.join(timeout + GRACE_S)
        if worker.is_alive():
            return False, f"timed out after {timeout:.1f}s"
        if "error" in result:
            return False, str(result["error"])
        return True, str(result.get("detail", ""))
