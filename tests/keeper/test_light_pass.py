"""The keeper's light pass (stolon.keeper.daemon.light_pass): a wake-up on a cluster data
write that only moved the sentinel's heartbeat fields, before the period is over, stops
after the read; anything else is a whole cycle."""

from __future__ import annotations

import pytest

from stolon.keeper.daemon import light_pass
from stolon.model import Cluster, ClusterData, ClusterSpec

SAME = ClusterData.new(Cluster.new(ClusterSpec()))
OTHER = ClusterData.new(Cluster.new(ClusterSpec()))


@pytest.mark.parametrize(
    ("woken", "last", "cd", "now", "light"),
    [
        (True, (SAME, 100.0), SAME, 100.4, True),  # heartbeat-only write within the period
        (False, (SAME, 100.0), SAME, 100.4, False),  # the periodic cycle (or a first one)
        (True, (SAME, 100.0), OTHER, 100.4, False),  # anything else changed: a new object
        (True, (SAME, 100.0), SAME, 101.0, False),  # the period is over
        (True, (SAME, 100.0), SAME, 102.5, False),
        (True, None, SAME, 100.4, False),  # the last cycle did not complete
        (True, (None, 100.0), None, 100.4, True),  # still no cluster data
        (True, (None, 100.0), SAME, 100.4, False),  # the first cluster data
    ],
)
def test_light_pass(
    woken: bool,
    last: tuple[ClusterData | None, float] | None,
    cd: ClusterData | None,
    now: float,
    light: bool,
) -> None:
    assert light_pass(woken=woken, last=last, cd=cd, now=now, period=1.0) is light
