"""How a daemon accepts the spec of the cluster data it read (keeper, sentinel, proxy).

Stored data is checked leniently (:meth:`ClusterSpec.validate_stored`): a spec that breaks
one of Go Stolon's own rules can't be acted on (Go's components refuse it too), but one that
only breaks a rule of ours keeps the cluster running, with its documented effective values,
and a loud warning: logged once per change (not once per cycle), counted in the
``stolon_cluster_spec_warnings`` metric, listed by ``stolonctl status``.
"""

from __future__ import annotations

import logging

from stolon.logonce import OncePerChange
from stolon.model import ClusterData, ClusterSpec, ModelError

_ERROR = "error"
_WARNING = "warning:"


class StoredSpecCheck:
    """Remembers what was logged about the stored spec, to log only changes."""

    def __init__(self, logger: logging.Logger) -> None:
        self._errors = OncePerChange(logger, logging.ERROR)
        self._warnings = OncePerChange(logger, logging.WARNING)
        #: the warnings of the last spec accepted (one line each)
        self.warnings: tuple[str, ...] = ()
        #: why the last spec was refused (``None`` when it was accepted)
        self.error: str | None = None

    def accept(self, cd: ClusterData) -> ClusterSpec | None:
        """The stored spec if it can be acted on, else ``None`` (the reason is logged once)."""
        spec = cd.cluster.spec if cd.cluster is not None else None
        try:
            if spec is None:
                raise ModelError("cluster.spec", "missing: re-initialize the cluster with stolonctl init")
            warnings = spec.validate_stored()
        except ModelError as e:
            self.error = str(e)
            self._errors.report(_ERROR, str(e), f"cluster data validation failed, not acting on it: {e}")
            return None
        self.error = None
        self._errors.clear(_ERROR, "the stored cluster spec is valid again")
        lines = tuple(str(w) for w in warnings)
        present = set()
        for line in lines:
            key = _WARNING + line
            present.add(key)
            self._warnings.report(
                key,
                line,
                f"stored cluster spec: {line} (accepted as Go Stolon does; fix it with stolonctl update)",
            )
        self._warnings.clear_missing(_WARNING, present)
        self.warnings = lines
        return spec
