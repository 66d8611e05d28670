"""The plugin object the ``stolon.fencing`` entry point names: it tells stolon which
fencing methods this distribution provides (hook ``stolon_fencing_methods``)."""

from __future__ import annotations

import stolon
from stolon.hookspecs import FencingMethodSpec, MethodSpec
from stolon_fencing_example.power_switch import NAME, PowerSwitchFencer


class _Plugin:
    @stolon.hookimpl
    def stolon_fencing_methods(self) -> list[FencingMethodSpec]:
        return [
            MethodSpec(
                name=NAME,
                factory=PowerSwitchFencer.from_config,
                description="example: powers the old master off through a power switch's HTTP API",
            )
        ]


plugin = _Plugin()
