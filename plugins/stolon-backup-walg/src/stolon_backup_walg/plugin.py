"""The plugin module named by the ``stolon.backup`` entry point ``walg``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import stolon
from stolon.hookspecs import BackupMethodSpec, MethodSpec
from stolon_backup_walg import METHOD_NAME


def open_method(settings: dict[str, Any]) -> Any:
    from stolon_backup_walg.method import WalgMethod

    return WalgMethod(settings)


@stolon.hookimpl
def stolon_backup_methods() -> Sequence[BackupMethodSpec]:
    return [
        MethodSpec(
            name=METHOD_NAME,
            factory=open_method,
            description="WAL-G: wal-push/wal-fetch archiving, backup-push/backup-fetch base backups"
            " (local directory or S3)",
            details={"tool": "wal-g (on PATH or backup.settings.walgPath)"},
        )
    ]
