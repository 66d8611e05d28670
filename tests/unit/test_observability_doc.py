"""docs/observability.md lists every metric the daemons export and every span name the code
starts (so the reference can't drift from the code)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from stolon.keeper.daemon import KeeperMetrics
from stolon.proxy.metrics import proxy_metrics
from stolon.sentinel.daemon import SentinelMetrics

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")


def _families(registry: CollectorRegistry) -> set[str]:
    return {
        f.name + ("_total" if f.type == "counter" else "")
        for f in registry.collect()
        if f.name.startswith("stolon_")
    }


def test_every_metric_is_documented() -> None:
    names = (
        _families(KeeperMetrics("c").m.registry)
        | _families(SentinelMetrics("c").m.registry)
        | _families(proxy_metrics("c", [], lambda: 1.0).registry)
    )
    assert names
    missing = sorted(n for n in names if f"`{n}`" not in DOC)
    assert not missing, f"add to docs/observability.md: {missing}"


def test_every_span_is_documented() -> None:
    names: set[str] = set()
    for path in (ROOT / "stolon").rglob("*.py"):
        if "testing" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'start_as_current_span\(\s*"([a-z_.]+)"', text))
        names |= set(re.findall(r'^SPAN_[A-Z_]+ = "([a-z_.]+)"', text, re.M))
        names |= {f"keeper.{n}" for n in re.findall(r'self\._span\(\s*"([a-z_]+)"', text)}
    assert {"sentinel.decide", "sentinel.failover", "proxy.route_change", "keeper.promote"} <= names
    documented = set(re.findall(r"`([a-z_]+\.[a-z_.]+)`", DOC))
    for n in sorted(names):
        short = n.split(".", 1)[1]
        ok = n in documented or (n.startswith("keeper.") and f"`{short}`" in DOC)
        assert ok, f"span {n} is not in docs/observability.md"
