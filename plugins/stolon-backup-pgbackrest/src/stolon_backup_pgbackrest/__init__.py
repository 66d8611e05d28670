"""The ``pgbackrest`` backup method for stolon: pgBackRest with a POSIX repository.

The method is found through the ``stolon.backup`` entry point ``pgbackrest``
(:mod:`stolon_backup_pgbackrest.plugin`); :class:`stolon_backup_pgbackrest.method.PgBackRestMethod`
is the method, :mod:`stolon_backup_pgbackrest.options` reads its settings,
:mod:`stolon_backup_pgbackrest.config` renders the ``pgbackrest.conf`` it writes and
:mod:`stolon_backup_pgbackrest.info` reads ``pgbackrest info --output=json``.
"""

from __future__ import annotations

METHOD_NAME = "pgbackrest"

__all__ = ["METHOD_NAME"]
