"""The inputs of a sentinel cycle besides the cluster data and the memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stolon.fencing.base import FencingOutcome
from stolon.model.infos import KeeperInfo, ProxyInfo


@dataclass(frozen=True)
class Now:
    """The time of a cycle, read once by the caller.

    ``mono`` is monotonic seconds (``time.monotonic()`` or CLOCK_BOOTTIME); every timer in the
    memory is on this clock and only differences of it are used. ``wall`` is a timezone-aware
    UTC datetime, used only for the persisted fields (``changeTime``, ``lastHealthyTime``) and
    for the dead keeper removal, which compares against a persisted ``lastHealthyTime``.
    """

    mono: float
    wall: datetime

    def after(self, seconds: float) -> Now:
        """The time ``seconds`` later on both clocks (tests and simulations)."""
        return Now(self.mono + seconds, self.wall + timedelta(seconds=seconds))


@dataclass(frozen=True)
class Observations:
    """What the leader sentinel read from the store this cycle.

    ``keepers_info`` and ``proxies_info`` are keyed by keeper / proxy UID, as the store
    returns them. ``first_run`` is true on the first cycle after (re)gaining leadership: the
    memory is then reset and the keeper infos are only recorded (as Go does).
    ``fencing``: old master DB UID → the outcome of the fencing the previous cycle requested
    (a ``FencingRequested`` event), run by the daemon between the two cycles.
    ``keeper_silence_since``: keeper UID → the monotonic time since which the daemon has seen
    no change of that keeper's info: when it first read the current ``infoUID`` (from a
    watch, between cycles, or in this cycle's read), or when it last regained sight of the
    store, whichever is later. A keeper's error timer starts there, so it is failed exactly
    ``failInterval`` after its last sign of life, not after the cycle that sampled it
    (docs/failover.md). A keeper missing here is treated as first seen ``now`` (Go's timing).
    """

    keepers_info: Mapping[str, KeeperInfo] = field(default_factory=dict)
    proxies_info: Mapping[str, ProxyInfo] = field(default_factory=dict)
    first_run: bool = False
    fencing: Mapping[str, FencingOutcome] = field(default_factory=dict)
    keeper_silence_since: Mapping[str, float] = field(default_factory=dict)
