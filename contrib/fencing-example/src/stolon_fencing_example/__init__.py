"""An example stolon fencing plugin: the ``example-http`` method powers the old master's
machine off through a network power switch's HTTP API and waits until the switch reports
the outlet off. Copy it to write your own (README.md)."""

from stolon_fencing_example.power_switch import PowerSwitchFencer

__all__ = ["PowerSwitchFencer"]
