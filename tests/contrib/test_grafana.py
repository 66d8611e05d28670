"""contrib/grafana: the dashboard is well formed, and every metric it queries is one the
daemons export: the names are collected from the keeper's, sentinel's and proxy's own
Prometheus registries, built in this process (not from grepping the sources)."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import CollectorRegistry

from stolon.keeper.daemon import KeeperMetrics
from stolon.proxy.metrics import proxy_metrics
from stolon.sentinel.daemon import SentinelMetrics

from .paths import CONTRIB

DASHBOARD = CONTRIB / "grafana" / "stolon-dashboard.json"
#: PromQL words that are not metric names
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "time", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "offset", "bool", "changes", "delta", "abs", "scalar",
}  # fmt: skip


def exported_names(registry: CollectorRegistry) -> set[str]:
    """The sample names a scrape shows for each family the registry collects, children or
    not yet (counters as ``_total``, as the exposition writes them)."""
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type in ("histogram", "summary"):
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "")}
        else:
            names.add(family.name)
        names |= {s.name for s in family.samples}
    return names


def daemon_metric_names() -> set[str]:
    return (
        exported_names(KeeperMetrics("c").m.registry)
        | exported_names(SentinelMetrics("c").m.registry)
        | exported_names(proxy_metrics("c", [], lambda: 1.0).registry)
    )


def metric_names(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that name series (labels, functions, Grafana
    variables, durations and keywords removed)."""
    text = re.sub(r'"[^"]*"', "", expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        after = text[m.end() :].lstrip()
        if after.startswith("(") or m.group(0) in PROMQL_WORDS:
            continue
        names.add(m.group(0))
    return names


def targets(dash: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for p in dash["panels"]:
        for child in [p, *p.get("panels", [])]:
            out += [(child["title"], t["expr"]) for t in child.get("targets", [])]
    return out


def test_the_parser_finds_names() -> None:
    expr = 'sum by (l) (rate(a_total{x="y"}[5m]) * on(instance) group_left() b{c=~"$cluster"}) - time()'
    assert metric_names(expr) == {"a_total", "b"}


def test_every_queried_metric_is_exported() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exported = daemon_metric_names()
    queried = {name for _, expr in targets(dash) for name in metric_names(expr)}
    assert queried, "no queries found"
    assert queried <= exported, f"not exported by any daemon: {sorted(queried - exported)}"


def test_dashboard_covers_the_topics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    queried = {name for _, expr in targets(dash) for name in metric_names(expr)}
    for needed in (
        "stolon_sentinel_db_healthy",  # keeper health
        "stolon_keeper_last_sync_success_seconds",
        "stolon_sentinel_db_lag_bytes",  # replication lag
        "stolon_sentinel_is_leader",  # sentinel leader
        "stolon_sentinel_master_changes_total",  # failovers
        "stolon_proxy_connections",  # proxy connections
        "stolon_keeper_archived_count",  # WAL archiving
        "stolon_keeper_archive_failed_count",
    ):
        assert needed in queried, needed


def test_dashboard_structure() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert "stolon_cluster_identifier" in variables["cluster"]["query"]["query"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for title, expr in targets(dash):
        # every query is narrowed to the chosen clusters through the identifier metric
        assert 'stolon_cluster_identifier{cluster_name=~"$cluster"}' in expr, title
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
