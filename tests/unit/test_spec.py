"""ClusterSpec defaults, validation and update rules (Go Stolon's, plus our documented fixes)."""

from __future__ import annotations

from typing import Any

import pytest

from stolon.model import ClusterSpec, ModelError, SpecError
from stolon.model.merge_patch import merge_patch
from stolon.model.spec import DEFAULT_MAX_STANDBY_LAG


def spec(**fields: Any) -> ClusterSpec:
    return ClusterSpec.from_obj({"initMode": "new", **fields}, strict=True)


def test_defaults() -> None:
    d = ClusterSpec(init_mode="new").d()
    assert str(d.sleep_interval) == "5s"
    assert str(d.request_timeout) == "10s"
    assert str(d.convergence_timeout) == "30s"
    assert str(d.init_timeout) == "5m0s"
    assert d.sync_timeout.ns == 0
    assert str(d.db_wait_ready_timeout) == "1m0s"
    assert str(d.fail_interval) == "20s"
    assert str(d.dead_keeper_removal_interval) == "48h0m0s"
    assert str(d.proxy_check_interval) == "5s"
    assert str(d.proxy_timeout) == "15s"
    assert d.max_standbys == 20
    assert d.max_standbys_per_sender == 3
    assert d.max_standby_lag == DEFAULT_MAX_STANDBY_LAG == 1024 * 1024
    assert d.synchronous_replication is False
    assert d.min_synchronous_standbys == 1
    assert d.max_synchronous_standbys == 1
    assert d.additional_wal_senders == 5
    assert d.use_pgrewind is False
    assert d.merge_pg_parameters is True
    assert d.role == "master"
    assert d.default_su_repl_access_mode == "all"
    assert d.automatic_pg_restart is False
    assert d.pg_hba is None


def test_defaults_keep_user_values() -> None:
    d = spec(sleepInterval="1s", maxStandbys=3, minSynchronousStandbys=0).d()
    assert str(d.sleep_interval) == "1s"
    assert d.max_standbys == 3
    assert d.min_synchronous_standbys == 0


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"sleepInterval": "-1s"}, "sleepInterval", "must not be negative"),
        ({"failInterval": "-5s"}, "failInterval", "must not be negative"),
        ({"proxyCheckInterval": "15s"}, "proxyCheckInterval", "must be less than proxyTimeout"),
        (
            {"proxyCheckInterval": "3s", "proxyTimeout": "2s"},
            "proxyCheckInterval",
            "must be less than",
        ),
        ({"maxStandbys": 0}, "maxStandbys", "must be at least 1"),
        ({"maxStandbysPerSender": 0}, "maxStandbysPerSender", "must be at least 1"),
        ({"maxSynchronousStandbys": 0}, "maxSynchronousStandbys", "must be at least 1"),
        (
            {"minSynchronousStandbys": 3, "maxSynchronousStandbys": 2},
            "maxSynchronousStandbys",
            "greater than or equal",
        ),
        ({"initMode": None}, "initMode", "is required"),
        ({"initMode": "fresh"}, "initMode", "unknown initMode"),
        (
            {"additionalMasterReplicationSlots": ["Bad-Name"]},
            "additionalMasterReplicationSlots[0]",
            "wrong replication slot name",
        ),
        (
            {"additionalMasterReplicationSlots": ["ok", "stolon_x"]},
            "additionalMasterReplicationSlots[1]",
            "is reserved",
        ),
        ({"pgHBA": ["host all\nall"]}, "pgHBA[0]", "newline"),
        ({"role": "primary"}, "role", "unknown role"),
        (
            {"role": "standby", "standbyConfig": {}},
            "role",
            'cannot be "standby" when initMode is "new"',
        ),
        ({"initMode": "existing"}, "existingConfig", "is required"),
        ({"initMode": "existing", "existingConfig": {}}, "existingConfig.keeperUID", "is required"),
        ({"initMode": "pitr"}, "pitrConfig", "is required"),
        ({"initMode": "pitr", "pitrConfig": {}}, "pitrConfig.dataRestoreCommand", "is required"),
        (
            {
                "initMode": "pitr",
                "role": "standby",
                "standbyConfig": {},
                "pitrConfig": {
                    "dataRestoreCommand": "x",
                    "recoveryTargetSettings": {"recoveryTarget": "immediate"},
                },
            },
            "pitrConfig.recoveryTargetSettings",
            "cannot be set",
        ),
        (
            {"initMode": "pitr", "role": "standby", "pitrConfig": {"dataRestoreCommand": "x"}},
            "standbyConfig",
            "is required",
        ),
        ({"defaultSUReplAccessMode": "some"}, "defaultSUReplAccessMode", "unknown value"),
        (
            {"synchronousReplication": True, "pgParameters": {"synchronous_commit": "local"}},
            "pgParameters.synchronous_commit",
            "voids synchronousReplication",
        ),
        (
            {"synchronousReplication": True, "pgParameters": {"synchronous_commit": "OFF"}},
            "pgParameters.synchronous_commit",
            "voids synchronousReplication",
        ),
    ],
)
def test_validation_errors_name_the_field(fields: dict[str, Any], path: str, message: str) -> None:
    s = ClusterSpec.from_obj({"initMode": "new", **fields})
    with pytest.raises(SpecError) as err:
        s.validate()
    assert err.value.path == path
    assert message in err.value.message


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"synchronousReplication": True, "pgParameters": {"synchronous_commit": "remote_apply"}},
        {"synchronousReplication": False, "pgParameters": {"synchronous_commit": "off"}},
        {"initMode": "existing", "existingConfig": {"keeperUID": "k1"}},
        {"initMode": "pitr", "pitrConfig": {"dataRestoreCommand": "tar xf b.tar -C %d"}},
        {
            "initMode": "pitr",
            "role": "standby",
            "pitrConfig": {"dataRestoreCommand": "x"},
            "standbyConfig": {"standbySettings": {"primaryConninfo": "host=x"}},
        },
        {"minSynchronousStandbys": 0},
        {"pgHBA": []},
        {"proxyCheckInterval": "1s", "proxyTimeout": "3s"},
    ],
)
def test_valid_specs(fields: dict[str, Any]) -> None:
    ClusterSpec.from_obj({"initMode": "new", **fields}).validate()


def test_update_rules() -> None:
    old = spec()
    old.check_update(spec(sleepInterval="1s"))
    with pytest.raises(SpecError, match="cannot change the cluster init mode"):
        old.check_update(ClusterSpec.from_obj({"initMode": "existing", "existingConfig": {"keeperUID": "k"}}))
    standby = ClusterSpec.from_obj(
        {
            "initMode": "pitr",
            "role": "standby",
            "pitrConfig": {"dataRestoreCommand": "x"},
            "standbyConfig": {},
        }
    )
    promoted = ClusterSpec.from_obj(
        {"initMode": "pitr", "role": "master", "pitrConfig": {"dataRestoreCommand": "x"}}
    )
    standby.check_update(promoted)  # standby -> master is a promotion: allowed
    with pytest.raises(SpecError, match="cannot change a cluster from role master to role standby"):
        promoted.check_update(standby)


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == {
        "a": 1,
        "b": {"d": 3, "e": 4},
        "f": [1],
    }
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": 1}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert merge_patch("x", {"a": 1}) == {"a": 1}
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


def test_check_patch() -> None:
    ClusterSpec.check_patch(
        {"sleepInterval": "2s", "pgHBA": None, "pitrConfig": {"dataRestoreCommand": None}}
    )
    with pytest.raises(ModelError, match=r"^pitrConfig.restore: unknown field"):
        ClusterSpec.check_patch({"pitrConfig": {"restore": "x"}})
    with pytest.raises(ModelError, match=r"^maxStandbys: expected an integer"):
        ClusterSpec.check_patch({"maxStandbys": "3"})
