"""Backup and restore through plugins (``stolon.backup`` entry points): the contract
(:mod:`.base`), safe command rendering (:mod:`.commands`), settings and private files for
method authors (:mod:`.settings`, :mod:`.files`) and the lookup by name (:mod:`.registry`).
See docs/backup.md."""
