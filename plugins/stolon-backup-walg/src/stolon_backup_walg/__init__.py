"""stolon's WAL-G backup method (``stolon.backup`` entry point ``walg``).

Archives WAL with ``wal-g wal-push``, restores it with ``wal-g wal-fetch``, takes base backups
with ``wal-g backup-push``, lists them with ``wal-g backup-list --json --detail``, restores
with ``wal-g backup-fetch`` and applies retention with ``wal-g delete retain FULL N``. See
the distribution's README for settings, credentials and the WAL-G facts it relies on.
"""

from __future__ import annotations

METHOD_NAME = "walg"

__all__ = ["METHOD_NAME"]
