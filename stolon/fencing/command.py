"""The built-in ``command`` fencing method: run a program that fences the old master.

Config (``fencing.methods[].config`` in the cluster spec)::

    {"command": ["/usr/local/bin/fence-node", "--hard"], "env": {"FENCE_USER": "stolon"}}

``command`` is an argv list (no shell). The old master's keeper UID, address (the host it
published) and DB UID are appended as the last three arguments; they are also in the
environment as ``STOLON_FENCE_KEEPER_UID``, ``STOLON_FENCE_ADDRESS``, ``STOLON_FENCE_PORT``,
``STOLON_FENCE_DB_UID`` and ``STOLON_FENCE_CLUSTER``, with the optional ``env`` added. Exit
status 0 means fenced. The command runs in its own process group, which is killed when the
fencing timeout expires.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import stolon
from stolon.fencing.base import FencingError, FencingTarget
from stolon.hookspecs import FencingMethodSpec, MethodSpec

NAME = "command"
_KEYS = ("command", "env")
_TAIL = 300


@dataclass(frozen=True)
class CommandFencer:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CommandFencer:
        """Check the config; a ValueError names what is wrong."""
        unknown = sorted(set(config) - set(_KEYS))
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r} (the command method takes: {', '.join(_KEYS)})")
        command = config.get("command")
        if not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command):
            raise ValueError(
                'command must be a non-empty list of strings (argv, no shell), e.g. ["/usr/local/bin/fence-node"]'
            )
        env = config.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError('env must be an object of strings, e.g. {"FENCE_USER": "stolon"}')
        return cls(tuple(command), dict(env))

    def fence(self, target: FencingTarget, timeout: float) -> str:
        argv = [*self.argv, target.keeper_uid, target.host, target.db_uid]
        env = dict(os.environ)
        env.update(
            STOLON_FENCE_CLUSTER=target.cluster_name,
            STOLON_FENCE_KEEPER_UID=target.keeper_uid,
            STOLON_FENCE_ADDRESS=target.host,
            STOLON_FENCE_PORT=target.port,
            STOLON_FENCE_DB_UID=target.db_uid,
        )
        env.update(self.env)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            raise FencingError(f"cannot run {self.argv[0]}: {e.strerror or e}") from None
        try:
            out, _ = proc.communicate(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise FencingError(f"{self.argv[0]} timed out after {timeout:.1f}s (killed)") from None
        tail = out.decode(errors="replace").strip()[-_TAIL:]
        if proc.returncode != 0:
            raise FencingError(
                f"{self.argv[0]} exited with status {proc.returncode}" + (f": {tail}" if tail else "")
            )
        return "exit status 0" + (f": {tail}" if tail else "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


class _Plugin:
    @stolon.hookimpl
    def stolon_fencing_methods(self) -> list[FencingMethodSpec]:
        return [
            MethodSpec(
                name=NAME,
                factory=CommandFencer.from_config,
                description="runs a command (argv, no shell) with the old master's keeper uid, address and db uid",
            )
        ]


plugin = _Plugin()

__all__ = ["NAME", "CommandFencer", "plugin"]
