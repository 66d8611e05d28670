"""The chaos matrix's bounded subset for CI (the whole matrix: ``benchmarks/chaos.py``).

One cluster on real etcd, synchronous replication (3 keepers, 2 sentinels, 1 proxy, a
writer through the proxy, a writer connected straight to the master, the 100 ms prober),
one round each of node loss, freeze-and-return and store outage. Counts only, never
timings: no acknowledged row lost (either writer), no sample in which writes through the
proxy landed on two instances, and, in the freeze row (self-fencing on, its default), no
sample in which two instances accepted direct writes. docs/reliability.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stolon.testing.chaos import ChaosCluster, RoundResult, run_round
from stolon.testing.chaos_faults import BY_NAME
from stolon.testing.pgsandbox import find_binaries_or_skip, pg_os_user_or_skip
from stolon.testing.requirements import tool_missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosCluster]:
    find_binaries_or_skip()
    pg_os_user_or_skip()
    try:
        from stolon_store_etcd.testing import find_etcd_binary

        find_etcd_binary()
    except Exception as e:  # the plugin or the binary is missing
        tool_missing("etcd", f"the chaos subset needs etcd: {e}")
    with ChaosCluster(synchronous=True, store="etcd") as cc:
        yield cc


def _round(cc: ChaosCluster, fault: str) -> RoundResult:
    try:
        return run_round(cc, BY_NAME[fault], 1)
    except BaseException:
        print(cc.logs(4000))
        raise


def _no_loss(r: RoundResult) -> None:
    assert r.acked_proxy > 0 and r.acked_direct > 0, r
    assert (r.lost_proxy, r.lost_direct) == (0, 0), f"acknowledged rows lost: {r}"
    assert r.double_proxy == 0, f"writes through the proxy landed on two instances: {r}"


def test_node_loss(chaos: ChaosCluster) -> None:
    r = _round(chaos, "node-loss")
    _no_loss(r)
    assert "->" in r.notes["master"], r  # a failover happened


def test_freeze_and_return(chaos: ChaosCluster) -> None:
    r = _round(chaos, "freeze")
    _no_loss(r)
    assert r.double_direct == 0, f"two instances accepted direct writes: {r}"


def test_store_outage(chaos: ChaosCluster) -> None:
    r = _round(chaos, "store-down")
    _no_loss(r)
    assert r.double_direct == 0, f"two instances accepted direct writes: {r}"
