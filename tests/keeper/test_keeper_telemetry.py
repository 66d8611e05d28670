"""Keeper spans (joined to the sentinel's trace through the cluster data) and metrics."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from stolon.model import ClusterSpec
from stolon.netutil import free_port

from .harness import TestCluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("logs_on_failure")]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def spans_in(text: str) -> list[dict[str, Any]]:
    """The JSON spans ConsoleSpanExporter printed into a keeper log."""
    out: list[dict[str, Any]] = []
    depth, start = 0, -1
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                try:
                    obj = json.loads(text[start : i + 1])
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict) and "context" in obj and "name" in obj:
                    out.append(obj)
    return out


def test_spans_and_metrics(cluster: TestCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    s = cluster.sentinel
    s.init(ClusterSpec.from_obj({"initMode": "new", "sleepInterval": "1s"}))
    mport = free_port()
    k0 = cluster.keeper("keeper0", "--metrics-listen-address", f"127.0.0.1:{mport}").start()
    s.wait_keeper("keeper0")
    # the DB and the trace context of the decision that made it, in one write
    s.set_db(
        "db0", "keeper0", role="master", init_mode="new",
        trace_context={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"},
    )  # fmt: skip
    s.wait_converged("db0")
    metrics = wait_for(
        "metrics",
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode(),
        20,
    )
    assert 'stolon_keeper_local_role{role="master"} 1.0' in metrics
    assert 'stolon_keeper_target_role{role="master"} 1.0' in metrics
    assert 'stolon_cluster_identifier{cluster_name="' in metrics and 'component="keeper"' in metrics
    assert "stolon_keeper_last_sync_success_seconds" in metrics
    assert "stolon_keeper_sleep_interval 1.0" in metrics
    # a parameter change: a reload, whose span names the DB (not the keeper) as its DB
    s.set_db("db0", "keeper0", role="master", pg_parameters={"work_mem": "8MB"})
    wait_for("work_mem applied", lambda: k0.query("show work_mem") == [("8MB",)], 30)
    k0.stop()  # flushes the span processor
    spans = {sp["name"]: sp for sp in spans_in(k0.output())}
    initdb = spans["keeper.initdb"]
    assert initdb["attributes"]["stolon.db.uid"] == "db0"
    assert initdb["attributes"]["stolon.keeper.uid"] == "keeper0"
    # the span joined the trace whose context the sentinel put in the cluster data
    assert initdb["context"]["trace_id"] == "0x" + TRACE_ID
    assert initdb["parent_id"] == "0x" + PARENT_SPAN
    assert spans["keeper.reload"]["attributes"]["stolon.db.uid"] == "db0"
    assert "secret" not in k0.output().lower().replace("password_encryption", "")
