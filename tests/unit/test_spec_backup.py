"""Validation of the backup section and pitrConfig.fromBackup (one-line errors naming the
field and the fix)."""

from __future__ import annotations

from typing import Any

import pytest

from stolon.model import ClusterSpec, ModelError, SpecError

OK = {"method": "directory", "settings": {"path": "/b"}}


def spec(**kw: Any) -> ClusterSpec:
    return ClusterSpec.from_obj({"initMode": "new", **kw}, strict=True)


def test_valid() -> None:
    spec(
        backup={**OK, "schedule": "0 3 * * *", "retain": 7, "restoreStandbys": True, "timeout": "2h"}
    ).validate()
    spec(
        initMode="pitr",
        pitrConfig={"fromBackup": {"backupID": "latest"}},
        backup=OK,
    ).validate()
    spec(
        initMode="pitr",
        pitrConfig={"fromBackup": {"method": "walg", "settings": {}, "backupID": "base_0001"}},
    ).validate()


@pytest.mark.parametrize(
    ("kw", "field", "text"),
    [
        ({"backup": {"settings": {}}}, "backup.method", "is required"),
        ({"backup": {**OK, "schedule": "0 3 * *"}}, "backup.schedule", "has 4 fields"),
        ({"backup": {**OK, "retain": 0}}, "backup.retain", "at least 1"),
        ({"backup": {**OK, "timeout": "0s"}}, "backup.timeout", "must be positive"),
        (
            {"backup": OK, "pgParameters": {"archive_command": "cp %p /x"}},
            "pgParameters.archive_command",
            "conflicts with the backup section",
        ),
        (
            {"initMode": "pitr", "pitrConfig": {"dataRestoreCommand": "x", "fromBackup": {}}, "backup": OK},
            "pitrConfig.fromBackup",
            "together with pitrConfig.dataRestoreCommand",
        ),
        (
            {"initMode": "pitr", "pitrConfig": {"fromBackup": {}}},
            "pitrConfig.fromBackup.method",
            "is required",
        ),
        (
            {"initMode": "pitr", "pitrConfig": {"fromBackup": {"backupID": "../x"}}, "backup": OK},
            "pitrConfig.fromBackup.backupID",
            "not a backup id",
        ),
        (
            {"initMode": "pitr", "pitrConfig": {}},
            "pitrConfig.dataRestoreCommand",
            "or set pitrConfig.fromBackup",
        ),
    ],
)
def test_refused(kw: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(SpecError) as e:
        spec(**kw).validate()
    assert e.value.path == field
    assert text in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_field_in_backup_section() -> None:
    with pytest.raises(ModelError, match=r"backup\.shedule: unknown field"):
        spec(backup={**OK, "shedule": "x"})


def test_omitted_when_unset() -> None:
    assert "backup" not in spec().to_obj()
    assert spec(backup=OK).to_obj()["backup"] == OK
