"""Fencing an old master before a promotion: the types plugins implement, the sentinel's
runner and the built-in ``command`` method (docs/fencing.md)."""
