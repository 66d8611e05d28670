"""stolon.specstate.StoredSpecCheck: a spec with the same stored form as the last one
checked keeps its verdict, warnings, error and defaulted form without a new validation;
any change is validated again."""

from __future__ import annotations

import logging

import pytest

from stolon.model import Cluster, ClusterData, ClusterSpec
from stolon.model.duration import Duration
from stolon.specstate import StoredSpecCheck


def cd_with(**fields: object) -> ClusterData:
    return ClusterData.new(Cluster.new(ClusterSpec(init_mode="new", **fields)))  # type: ignore[arg-type]


def spec_of(cd: ClusterData) -> ClusterSpec:
    assert cd.cluster is not None and cd.cluster.spec is not None
    return cd.cluster.spec


def error_of(check: StoredSpecCheck) -> str | None:
    return check.error


def test_same_stored_form_is_not_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    check = StoredSpecCheck(logging.getLogger("test"))
    calls: list[int] = []
    real = ClusterSpec.validate_stored

    def counted(self: ClusterSpec) -> object:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(ClusterSpec, "validate_stored", counted)
    first = cd_with(request_timeout=Duration(0))  # out of bounds: accepted with a warning
    assert check.accept(first) is spec_of(first)
    assert len(check.warnings) == 1 and len(calls) == 1
    d = check.defaulted(spec_of(first))
    again = cd_with(request_timeout=Duration(0))  # a new object, the same stored form
    assert check.accept(again) is spec_of(again)
    assert len(calls) == 1 and len(check.warnings) == 1
    assert check.defaulted(spec_of(again)) is d
    # the first object changed in place afterwards: the copy kept is unaffected
    spec_of(first).sleep_interval = Duration.parse("7s")
    assert check.accept(again) is not None and len(calls) == 1

    bad = cd_with(proxy_check_interval=Duration.parse("5s"), proxy_timeout=Duration.parse("5s"))
    assert check.accept(bad) is None and check.error and len(calls) == 2
    assert (
        check.accept(cd_with(proxy_check_interval=Duration.parse("5s"), proxy_timeout=Duration.parse("5s")))
        is None
    )
    assert check.error and len(calls) == 2, "a refused spec stays refused without a new validation"

    fine = cd_with(sleep_interval=Duration.parse("2s"))
    assert check.accept(fine) is not None and error_of(check) is None and not list(check.warnings)
    assert len(calls) == 3
    assert check.defaulted(spec_of(fine)).sleep_interval.seconds == 2
