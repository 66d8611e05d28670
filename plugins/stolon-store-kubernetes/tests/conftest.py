"""Registers the Kubernetes fixtures (defined in :mod:`kube_testing`)."""

from kube_testing import _kube_disposable, kube_emulator, kube_emulator_control, real_kube

__all__ = ["_kube_disposable", "kube_emulator", "kube_emulator_control", "real_kube"]
