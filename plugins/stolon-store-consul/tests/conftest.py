"""Registers the Consul fixtures (defined in :mod:`consul_testing`)."""

from consul_testing import _consul_disposable, consul_emulator, consul_emulator_control, real_consul

__all__ = ["_consul_disposable", "consul_emulator", "consul_emulator_control", "real_consul"]
