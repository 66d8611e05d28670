"""The ``barman`` backup method for stolon: Barman Cloud (``barman-cloud-*``) on S3-compatible
object storage.

Found through the ``stolon.backup`` entry point ``barman`` (:mod:`stolon_backup_barman.plugin`);
:class:`stolon_backup_barman.method.BarmanMethod` is the method.
"""

from __future__ import annotations

METHOD_NAME = "barman"

__all__ = ["METHOD_NAME"]
