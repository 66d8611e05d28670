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
from stolon.model.spec import DefaultedSpec
from stolon.model.structural import snapshot, stored_equal

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
        #: a copy of the last spec checked and whether it was accepted
        self._last: tuple[ClusterSpec, bool] | None = None
        #: that copy and its defaulted form (:meth:`defaulted`)
        self._defaulted: tuple[ClusterSpec, DefaultedSpec] | None = None

    def accept(self, cd: ClusterData) -> ClusterSpec | None:
        """The stored spec if it can be acted on, else ``None`` (the reason is logged once).

        A spec with the same stored form as the last one checked is not validated again
        (validation is a function of the stored form; the proxy checks every cluster data
        it reads, twice a second at rest): the verdict, warnings and error stand."""
        spec = cd.cluster.spec if cd.cluster is not None else None
        if spec is not None and self._last is not None and stored_equal(spec, self._last[0]):
            return spec if self._last[1] else None
        self._last = None
        self._defaulted = None
        accepted = self._check(spec)
        if spec is not None:
            self._last = (snapshot(spec), accepted is not None)
        return accepted

    def defaulted(self, spec: ClusterSpec) -> DefaultedSpec:
        """``spec.d()`` for the spec :meth:`accept` accepted last (worked out once per
        change of it)."""
        last = self._defaulted
        if last is not None and self._last is not None and last[0] is self._last[0]:
            return last[1]
        d = spec.d()
        if self._last is not None:
            self._defaulted = (self._last[0], d)
        return d

    def _check(self, spec: ClusterSpec | None) -> ClusterSpec | None:
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
