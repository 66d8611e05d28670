"""The keeper's reading of the cluster data, reusing the last one when nothing that concerns
the keeper changed.

The leader sentinel writes the cluster data every ``sleepInterval`` (Go Stolon does): at
rest only its heartbeat fields move — ``changeTime`` of the document, and each keeper's
``changeTime`` and ``status.lastHealthyTime`` — and the keeper reads none of them. Decoding
and validating the whole document again, re-planning on it and re-checking its spec each
time was a good part of an idle keeper's CPU.

:class:`ClusterDataMemo` parses a document only when it differs from the last one parsed in
something other than those fields (compared on the plain JSON value, which is cheap); when
only they moved, and their new values are valid times, it returns the previous
:class:`ClusterData` object itself. So the daemon can tell "nothing that concerns me
changed" by identity (``cd is last``) and skip the work that depends on the document alone.
A document that could not be used is never remembered: an unusable one raises as
:meth:`ClusterData.parse` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stolon.keeper.pgconfig import KeeperIdentity
from stolon.keeper.plan import LocalFacts
from stolon.model import ClusterData
from stolon.model.errors import ModelError
from stolon.model.gotime import parse_go_time
from stolon.model.limits import parse_json

#: the document's own heartbeat field
DOC_HEARTBEAT = "changeTime"
#: each keeper's heartbeat fields: (key in the keeper object, key in its status object)
KEEPER_HEARTBEAT = "changeTime"
KEEPER_STATUS_HEARTBEAT = "lastHealthyTime"


def without_heartbeats(obj: Any) -> tuple[dict[str, Any], list[Any]] | None:
    """``obj`` (a decoded cluster data document) without the sentinel's heartbeat fields,
    and the values taken out; None when ``obj`` is not shaped as a cluster data document
    (it is then parsed, and refused, as usual). ``obj`` is not modified."""
    if not isinstance(obj, dict):
        return None
    taken: list[Any] = []
    out = dict(obj)
    taken.append(out.pop(DOC_HEARTBEAT, None))
    keepers = out.get("keepers")
    if isinstance(keepers, dict):
        stripped: dict[str, Any] = {}
        for uid, keeper in keepers.items():
            if not isinstance(keeper, dict):
                return None
            k = dict(keeper)
            taken.append(k.pop(KEEPER_HEARTBEAT, None))
            status = k.get("status")
            if isinstance(status, dict):
                st = dict(status)
                taken.append(st.pop(KEEPER_STATUS_HEARTBEAT, None))
                k["status"] = st
            stripped[uid] = k
        out["keepers"] = stripped
    return out, taken


def valid_times(values: list[Any]) -> bool:
    """Whether every value is null or a time the model would accept."""
    for v in values:
        if v is None:
            continue
        if not isinstance(v, str):
            return False
        try:
            parse_go_time(v)
        except ValueError:
            return False
    return True


class ClusterDataMemo:
    """See the module docstring. One per reader (not thread-safe)."""

    def __init__(self) -> None:
        self._key: dict[str, Any] | None = None
        self._cd: ClusterData | None = None
        #: documents answered with the previous object (for tests and debugging)
        self.reused = 0

    @property
    def last(self) -> ClusterData | None:
        return self._cd

    def parse(self, data: bytes | str) -> ClusterData:
        try:
            obj = parse_json(data, "the cluster data")
        except ModelError:
            self._key = self._cd = None
            return ClusterData.parse(data)  # raises the same error, as ClusterDataError
        split = without_heartbeats(obj)
        if split is not None and self._cd is not None and split[0] == self._key and valid_times(split[1]):
            self.reused += 1
            return self._cd
        self._key = self._cd = None
        cd = ClusterData.parse(data)
        if split is not None:
            self._key, self._cd = split[0], cd
        return cd


@dataclass(frozen=True)
class PlanInputs:
    """What :func:`stolon.keeper.plan.plan` is a function of."""

    cd: ClusterData | None
    me: KeeperIdentity
    facts: LocalFacts


def reuse_plan(last: PlanInputs, now: PlanInputs) -> bool:
    """Whether the plan made on ``last`` stands for ``now`` (``plan`` is pure): the very
    same cluster data object (the memo gives a new one for any change but a heartbeat),
    and equal identity and local facts. Without cluster data the keeper always plans."""
    return now.cd is not None and now.cd is last.cd and now.me == last.me and now.facts == last.facts
