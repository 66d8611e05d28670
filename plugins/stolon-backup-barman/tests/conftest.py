"""The fixtures of :mod:`stolon_backup_barman.fixtures` (reusable by other suites from there)."""

from __future__ import annotations

from stolon_backup_barman.fixtures import (
    barman_env_file,
    barman_settings,
    barman_tool_dir,
    moto_s3,
    s3_bucket,
)

__all__ = ["barman_env_file", "barman_settings", "barman_tool_dir", "moto_s3", "s3_bucket"]
