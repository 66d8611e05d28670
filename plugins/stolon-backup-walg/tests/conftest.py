"""Registers the WAL-G fixtures (defined in :mod:`walg_testing`, a uniquely named module so that
the test modules can import its helpers whatever other ``conftest`` modules are loaded)."""

from walg_testing import walg_real, walg_repository, walg_standin

__all__ = ["walg_real", "walg_repository", "walg_standin"]
