"""What the sentinel daemon learns from the published infos between two cycles.

The daemon watches the keepers' and proxies' infos. Each change it reads is sorted into

* a **heartbeat**: only the ``infoUID`` (or a progress counter: the WAL position, the
  archiver's counters, a base backup's progress) moved. It tells that the daemon is alive,
  which matters for failure detection only through *when* it happened, so the tracker just
  records the time, and the sentinel does not spend a cycle (and a cluster data write) on it;
* a **material change**: anything else (a PostgreSQL that became unhealthy, a new DB
  generation applied, a promotion reported, a proxy that applied a fencing generation, an
  info that appeared or disappeared): the sentinel decides again at once.

Per UID it remembers the monotonic time it first read the current ``infoUID``: the keeper's
last sign of life (``Observations.keeper_silence_since``). After a period in which the
daemon could not read the store, those times restart (:meth:`InfoTracker.restart`): a
keeper that could not publish while the store was down is not failed for it.

Clock-free: the caller passes the time. Untrusted input: a document that is too big or not
JSON is compared as bytes (any change of it is material; the cycle reports it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stolon.model.limits import MAX_INFO_BYTES

#: Fields of a keeper info that move without anything to decide on: the sentinel takes them
#: at its next periodic cycle. (path in the JSON document, as published)
KEEPER_PROGRESS_FIELDS: tuple[tuple[str, ...], ...] = (
    ("postgresState", "xLogPos"),
    ("postgresState", "olderWalFile"),
    ("postgresState", "archiver"),
    ("activity", "doneBytes"),
    ("activity", "totalBytes"),
)

#: How many UIDs whose info disappeared are remembered (their silence goes on).
MAX_GONE = 1000


@dataclass(frozen=True)
class _Seen:
    info_uid: str
    signature: object
    changed_at: float
    present: bool = True


def signature(data: bytes, progress_fields: tuple[tuple[str, ...], ...] = ()) -> tuple[str, object]:
    """``(infoUID, what must change for a decision to be worth it)`` of a raw info."""
    if len(data) > MAX_INFO_BYTES:
        return "", data
    try:
        obj: Any = json.loads(data)
    except (ValueError, RecursionError):
        return "", data
    if not isinstance(obj, dict):
        return "", data
    info_uid = obj.pop("infoUID", "")
    for path in progress_fields:
        parent: Any = obj
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return (info_uid if isinstance(info_uid, str) else repr(info_uid)), obj


class InfoTracker:
    """Infos of one kind (keepers or proxies), by UID."""

    def __init__(self, progress_fields: tuple[tuple[str, ...], ...] = ()) -> None:
        self.progress_fields = progress_fields
        self._seen: dict[str, _Seen] = {}
        self._restart = False

    def observe(self, infos: Mapping[str, bytes], now: float) -> tuple[bool, bool]:
        """Take a read of every info of the kind; return ``(changed, material)``: whether any
        info changed at all, and whether a change is more than a heartbeat."""
        changed = material = False
        for uid, data in infos.items():
            info_uid, sig = signature(data, self.progress_fields)
            prev = self._seen.get(uid)
            if prev is None or not prev.present:
                changed = material = True
                self._seen[uid] = _Seen(info_uid, sig, now)
                continue
            if prev.info_uid == info_uid and prev.signature == sig:
                continue
            changed = True
            material = material or prev.signature != sig
            changed_at = now if prev.info_uid != info_uid else prev.changed_at
            self._seen[uid] = _Seen(info_uid, sig, changed_at)
        for uid, prev in list(self._seen.items()):
            if uid not in infos and prev.present:
                changed = material = True
                self._seen[uid] = _Seen(prev.info_uid, None, prev.changed_at, present=False)
        if self._restart:
            self._restart = False
            self._seen = {
                uid: _Seen(s.info_uid, s.signature, now, s.present) for uid, s in self._seen.items()
            }
        gone = [uid for uid, s in self._seen.items() if not s.present]
        for uid in gone[: max(0, len(gone) - MAX_GONE)]:
            del self._seen[uid]
        return changed, material

    def restart(self) -> None:
        """The daemon lost sight of the store (a failed read, a watch resync, a new
        leadership): at the next successful read every silence starts again from then."""
        self._restart = True

    def silence_since(self) -> dict[str, float]:
        """UID → the monotonic time its info last changed (infos that disappeared too)."""
        return {uid: s.changed_at for uid, s in self._seen.items()}
