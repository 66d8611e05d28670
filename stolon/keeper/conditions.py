"""The configuration conditions a keeper publishes (``postgresState.conditions``, ours).

They tell the operator (``stolonctl status``) what of the cluster spec is not in force on
this instance, and why: ``pgParameters`` entries left out of postgresql.conf (a name or
value that can't be written, or one the server rejected), a reload the server did not
apply, parameters waiting for a restart the keeper does not do.
"""

from __future__ import annotations

from collections.abc import Mapping

from stolon.keeper.executor import ExecutorState
from stolon.model.infos import (
    CONDITION_INVALID_PARAMETER,
    CONDITION_PENDING_RESTART,
    CONDITION_RELOAD_REJECTED,
    PostgresCondition,
)
from stolon.model.pgparams import invalid_parameters


def conditions(spec_parameters: Mapping[str, str] | None, state: ExecutorState) -> list[PostgresCondition]:
    """The conditions for the DB spec's ``pgParameters`` and what the executor found."""
    params = dict(spec_parameters or {})
    out = [
        PostgresCondition(type=CONDITION_INVALID_PARAMETER, parameter=name, message=f"left out: {problem}")
        for name, problem in sorted(invalid_parameters(params).items())
    ]
    for name, (value, message) in sorted(state.rejected.items()):
        if params.get(name) == value:
            out.append(
                PostgresCondition(
                    type=CONDITION_INVALID_PARAMETER,
                    parameter=name,
                    message=f"{value!r} left out, PostgreSQL rejects it: {message}",
                )
            )
    if state.reload_problem:
        out.append(PostgresCondition(type=CONDITION_RELOAD_REJECTED, message=state.reload_problem))
    if state.pending_restart:
        out.append(
            PostgresCondition(
                type=CONDITION_PENDING_RESTART,
                message=f"{', '.join(state.pending_restart)} apply after a restart"
                " (automaticPgRestart is off, or a standby runs with a lower value)",
            )
        )
    return out
