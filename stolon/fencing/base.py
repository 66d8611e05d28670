"""What a fencing method is given and returns (no I/O here: the pure sentinel decision
imports :class:`FencingOutcome`).

A ``stolon.fencing`` plugin provides :class:`stolon.hookspecs.MethodSpec` objects whose
``factory`` takes the method's ``config`` from the cluster spec and returns a
:class:`Fencer`. The leader sentinel calls :meth:`Fencer.fence` on the failover path, in a
worker thread bounded by the spec's ``fencing.timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class FencingError(Exception):
    """The method could not make sure the old master is fenced; the message says why."""


@dataclass(frozen=True)
class FencingTarget:
    """The old master to fence: its keeper, its DB and the address it published."""

    cluster_name: str
    keeper_uid: str
    db_uid: str
    host: str
    port: str


class Fencer(Protocol):
    def fence(self, target: FencingTarget, timeout: float) -> str:
        """Make sure ``target`` can no longer accept writes (power it off, cut it off the
        network, stop PostgreSQL over ssh...), within ``timeout`` seconds.

        Return a short detail for logs and traces; raise :class:`FencingError` (or any
        exception) when that could not be ensured. Returning means success.
        """
        ...


@dataclass(frozen=True)
class FencingAttempt:
    """One method's try: ``ok`` with its detail, or the failure."""

    method: str
    ok: bool
    detail: str
    duration_s: float


@dataclass(frozen=True)
class FencingOutcome:
    """The result of fencing the old master DB ``db_uid``: ``fenced`` when one method
    succeeded (methods are tried in order until one does)."""

    db_uid: str
    fenced: bool
    attempts: tuple[FencingAttempt, ...] = ()

    @property
    def detail(self) -> str:
        if not self.attempts:
            return "no fencing method was run"
        return "; ".join(f"{a.method}: {'ok' if a.ok else 'failed'} ({a.detail})" for a in self.attempts)
