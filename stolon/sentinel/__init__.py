"""The sentinel's decision logic: one pure function per cycle.

:func:`decide` takes the stored cluster data, what the store reported this cycle
(:class:`Observations`), the leader's :class:`Memory` and the time (:class:`Now`), and returns
a :class:`Decision`: the new cluster data, the new memory and the structured events
(:mod:`stolon.sentinel.events`). The daemon (store I/O, leadership, telemetry) lives
elsewhere. docs/sentinel-decisions.md lists where the algorithm deliberately differs from Go Stolon.
"""

from stolon.sentinel.decide import Decision, decide
from stolon.sentinel.memory import (
    ConvergenceTimer,
    DBReport,
    KeeperInfoSeen,
    Memory,
    ProxyInfoSeen,
    SwitchoverClock,
)
from stolon.sentinel.observations import Now, Observations
from stolon.sentinel.proxies import active_proxies

__all__ = [
    "ConvergenceTimer",
    "DBReport",
    "Decision",
    "KeeperInfoSeen",
    "Memory",
    "Now",
    "Observations",
    "ProxyInfoSeen",
    "SwitchoverClock",
    "active_proxies",
    "decide",
]
