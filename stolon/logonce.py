"""Log a recurring problem once per change, not once per cycle.

The daemons loop every ``sleepInterval``: a malformed document in the store, or a stored spec
with a value we only accept with a warning, would otherwise write the same line every cycle
(and a document that changes every cycle would still be logged each time it changes, which is
what an operator wants to see). :class:`OncePerChange` keys each problem by what it is about
(``key``) and by the state that makes it a problem (e.g. a digest of the document): the line
is written when the state of a key changes, and once more when the problem goes away.
"""

from __future__ import annotations

import hashlib
import logging
import threading


def digest(data: bytes | str) -> str:
    """A short fingerprint of a document, to tell "the same bad document" from a new one."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


class OncePerChange:
    """Per-key memory of the last problem logged (thread-safe)."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, *, enabled: bool = True) -> None:
        self.logger = logger
        self.level = level
        #: False: remember the problems (for :attr:`current`) but log nothing (stolonctl)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._state: dict[str, tuple[str, str]] = {}

    def report(self, key: str, state: str, message: str) -> bool:
        """Record that ``key`` has a problem in ``state``; log ``message`` if that is new.
        Returns whether it was logged (or would have been)."""
        with self._lock:
            new = self._state.get(key, ("", ""))[0] != state
            self._state[key] = (state, message)
        if new and self.enabled:
            self.logger.log(self.level, "%s", message)
        return new

    def clear(self, key: str, message: str | None = None) -> None:
        """``key`` has no problem any more; log ``message`` if it had one."""
        with self._lock:
            had = self._state.pop(key, None)
        if had is not None and message and self.enabled:
            self.logger.info("%s", message)

    def clear_missing(self, prefix: str, present: set[str]) -> None:
        """Forget the keys under ``prefix`` that are not in ``present`` (e.g. an info that
        expired), silently."""
        with self._lock:
            for key in [k for k in self._state if k.startswith(prefix) and k not in present]:
                del self._state[key]

    def current(self) -> dict[str, str]:
        """Key → message of every problem not cleared."""
        with self._lock:
            return {k: msg for k, (_state, msg) in self._state.items()}
