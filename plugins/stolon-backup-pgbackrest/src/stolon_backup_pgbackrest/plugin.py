"""The plugin module named by the ``stolon.backup`` entry point ``pgbackrest``.

Cheap to import: the method's modules are loaded when a method is built from settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import stolon
from stolon.hookspecs import BackupMethodSpec, MethodSpec
from stolon_backup_pgbackrest import METHOD_NAME

if TYPE_CHECKING:
    from stolon_backup_pgbackrest.method import PgBackRestMethod


def open_method(settings: dict[str, Any]) -> PgBackRestMethod:
    from stolon_backup_pgbackrest.method import PgBackRestMethod

    return PgBackRestMethod(settings)


@stolon.hookimpl
def stolon_backup_methods() -> Sequence[BackupMethodSpec]:
    return [
        MethodSpec(
            name=METHOD_NAME,
            factory=open_method,
            description="pgBackRest (archive-push/-get, full backups, restore, expire) with a POSIX repository",
            details={
                "tools": "pgbackrest (tested with 2.45)",
                "repository": "posix (local disk or shared mount)",
            },
        )
    ]
