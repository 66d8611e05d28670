"""The plugin module named by the ``stolon.backup`` entry point ``barman``.

Cheap to import: the method module is loaded when a method is built from settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import stolon
from stolon.hookspecs import BackupMethodSpec, MethodSpec
from stolon_backup_barman import METHOD_NAME

if TYPE_CHECKING:
    from stolon_backup_barman.method import BarmanMethod


def open_method(settings: dict[str, Any]) -> BarmanMethod:
    from stolon_backup_barman.method import BarmanMethod

    return BarmanMethod(settings)


@stolon.hookimpl
def stolon_backup_methods() -> Sequence[BackupMethodSpec]:
    return [
        MethodSpec(
            name=METHOD_NAME,
            factory=open_method,
            description="Barman Cloud: WAL archive and base backups on S3-compatible object storage",
            details={
                "tools": "barman-cloud-wal-archive, -wal-restore, -backup, -backup-list, -restore, -backup-delete",
                "tested": "barman 3.19.1 (PyPI barman[cloud]) with moto's S3 server",
            },
        )
    ]
