"""Smoke tests of the benchmarks (issue 12 items 5 and 6): they run end to end, print their
table and write figures that make sense. No figure is compared with a target here (speed
targets belong to the benchmarks, not to timed assertions): the lead runs the real thing.

- cost.py's decide() part: pure, a few seconds;
- failover.py: one round of a node loss with the tight spec on the embedded store, --quick
  (real keepers, sentinels, proxy and PostgreSQL; about 35 s on an idle machine);
- failover.py with Patroni + HAProxy side by side: only when ``STOLON_BENCH_PATRONI=1`` (it
  installs Patroni into /opt/stolon-bench/patroni on first use and needs haproxy and etcd);
- lease_overhead.py: one short round of each configuration (skipped without the
  stolon_lease module).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COST = ROOT / "benchmarks" / "cost.py"
FAILOVER = ROOT / "benchmarks" / "failover.py"
LEASE = ROOT / "benchmarks" / "lease_overhead.py"
PATRONI_ENV = "STOLON_BENCH_PATRONI"


def run(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 0, (
        f"{script.name} exited with {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    return res


def test_cost_decide_part(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    res = run(COST, "--decide-only", "--keepers", "100", "--iterations", "3", "--json", str(out), timeout=120)
    assert "decide() with 100 keepers" in res.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    cases = {r["case"]: r for r in report["decide"]}
    assert set(cases) == {"steady, asynchronous", "steady, synchronous", "master failed (election)"}
    for r in cases.values():
        assert r["keepers"] == 100
        assert 0 < r["median_ms"] <= r["max_ms"]
    # the inputs are what they claim: steady keeps db000, the election picks the best standby
    assert cases["steady, asynchronous"]["outcome"].startswith("master db000")
    assert cases["master failed (election)"]["outcome"].startswith("master db001")


def failover_rounds(out: Path) -> list[dict[str, Any]]:
    rounds: list[dict[str, Any]] = json.loads(out.read_text())["rounds"]
    return rounds


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_failover_one_tight_node_loss(tmp_path: Path) -> None:
    out = tmp_path / "failover.json"
    res = run(
        FAILOVER, "--scenario", "node-loss", "--spec", "tight", "--mode", "async", "--rounds", "1",
        "--patroni", "no", "--quick", "--json", str(out), timeout=230,
    )  # fmt: skip
    assert "node-loss        async tight" in res.stdout
    [r] = failover_rounds(out)
    assert r["system"] == "stolon" and r["ok"], r
    assert r["old"] != r["new"] and r["new"] != "?", r
    assert r["gap"] > 0 and isinstance(r["lost"], int), r


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_failover_patroni_side_by_side(tmp_path: Path) -> None:
    if os.environ.get(PATRONI_ENV) != "1":
        pytest.skip(
            f"Patroni side by side runs only with {PATRONI_ENV}=1 (installs Patroni into /opt/stolon-bench,"
            " needs haproxy and etcd; too slow for CI)"
        )
    out = tmp_path / "failover.json"
    run(
        FAILOVER, "--scenario", "node-loss", "--spec", "tight", "--mode", "async", "--rounds", "1",
        "--store", "etcd", "--patroni", "yes", "--quick", "--json", str(out), timeout=880,
    )  # fmt: skip
    rounds = failover_rounds(out)
    assert {r["system"] for r in rounds} == {"stolon", "patroni"}
    for r in rounds:
        assert r["ok"] and r["old"] != r["new"] and r["gap"] > 0, r


def test_lease_overhead(tmp_path: Path) -> None:
    """lease_overhead.py runs its three configurations (skipped without the module)."""
    from stolon.testing.pgsandbox import find_binaries_or_skip, lease_module_or_skip

    lease_module_or_skip(find_binaries_or_skip())
    out = tmp_path / "lease.json"
    res = run(LEASE, "--commits", "50", "--rounds", "1", "--json", str(out), timeout=180)
    assert "check cost" in res.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    assert set(report["median_us"]) == {"without", "loaded, off", "checking", "select, checking"}
    assert all(v > 0 for v in report["median_us"].values())
