"""The warnings ``stolonctl status`` lists: what keeps the cluster from being as the spec says.

- the stored cluster spec breaks a rule of ours (accepted as Go Stolon does, used as
  documented: clamped durations, left-out parameters...) or one of Go's (nothing acts on it);
- a keeper reports a configuration condition (an invalid parameter left out, a reload the
  server rejected, parameters waiting for a restart);
- the leader sentinel is fencing an old master and has failed to so far;
- a document in the store is malformed and ignored (an info, the cluster data).

Every string here may come from the store (published by any process that can write it):
control characters are escaped so that a line printed is one line, with no terminal escape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from stolon.model import ClusterData, KeeperInfo, ModelError, SentinelInfo

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n`` → ``\\x0a``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def spec_warnings(cd: ClusterData | None) -> list[str]:
    spec = cd.cluster.spec if cd is not None and cd.cluster is not None else None
    if spec is None:
        return []
    try:
        warnings = spec.validate_stored()
    except ModelError as e:
        return [f"cluster spec: INVALID, no component acts on it: {e}; fix it with `stolonctl update`"]
    return [f"cluster spec: {w}; fix it with `stolonctl update`" for w in warnings]


def keeper_warnings(infos: dict[str, KeeperInfo]) -> list[str]:
    out = []
    for uid in sorted(infos):
        state = infos[uid].postgres_state
        for c in (state.conditions or []) if state is not None else []:
            what = f" {c.parameter}" if c.parameter else ""
            out.append(f"keeper {uid}: {c.type}{what}: {c.message}")
    return out


def fencing_warnings(
    infos: dict[str, SentinelInfo], leader: str | None, now: datetime | None = None
) -> list[str]:
    info = infos.get(leader) if leader is not None else None
    f = info.fencing if info is not None else None
    if f is None:
        return []
    target = f"old master db {f.old_master_db} (keeper {f.old_master_keeper})"
    if f.fenced:
        return [f"fencing: {target} fenced, promoting db {f.new_master_db}"]
    line = f"fencing: {target} NOT fenced after {f.failures} attempt(s), db {f.new_master_db} waits"
    if f.detail:
        line += f"; last: {f.detail}"
    if f.next_attempt is not None:
        wait = (f.next_attempt - (now or datetime.now(UTC))).total_seconds()
        line += f"; next attempt in {max(0.0, wait):.1f}s"
    return [line]


def malformed_warnings(current: dict[str, str]) -> list[str]:
    return [current[k] for k in sorted(current)]


def collect(
    cd: ClusterData | None,
    keepers: dict[str, KeeperInfo],
    sentinels: dict[str, SentinelInfo],
    leader: str | None,
    malformed: dict[str, str],
) -> list[str]:
    lines = [
        *spec_warnings(cd),
        *keeper_warnings(keepers),
        *fencing_warnings(sentinels, leader),
        *malformed_warnings(malformed),
    ]
    return [printable(line) for line in lines]
