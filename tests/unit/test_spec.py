"""ClusterSpec defaults, validation and update rules (Go Stolon's, plus our documented fixes)."""

from __future__ import annotations

from typing import Any

import pytest

from stolon.model import ClusterSpec, ModelError, SpecError
from stolon.model.duration import Duration
from stolon.model.merge_patch import merge_patch
from stolon.model.spec import DEFAULT_MAX_STANDBY_LAG, DURATION_BOUNDS


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
    assert (
        d.max_standby_lag == DEFAULT_MAX_STANDBY_LAG == 1024 * 1204 == 1_232_896
    )  # Go's DefaultMaxStandbyLag
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
        # issue 10 item 11: a trailing newline does not pass the slot name rule
        ({"additionalMasterReplicationSlots": ["abc\n"]}, "additionalMasterReplicationSlots[0]", "wrong"),
        # issue 10 item 9: no control character in anything that reaches a config file
        ({"pgHBA": ["host all all 10.0.0.1/32 md5\r"]}, "pgHBA[0]", "control character"),
        (
            {"pgParameters": {"work_mem": "4MB\nshared_preload_libraries = 'x'"}},
            "pgParameters.work_mem",
            "newline",
        ),
        ({"pgParameters": {"a\x1bb": "1"}}, "pgParameters.a\x1bb", "not a valid parameter name"),
        ({"pgParameters": {"work_mem": "4MB\x85"}}, "pgParameters.work_mem", "control character"),
        (
            {
                "role": "standby",
                "initMode": "pitr",
                "pitrConfig": {"dataRestoreCommand": "x"},
                "standbyConfig": {"standbySettings": {"primaryConninfo": "host=a\nport=5"}},
            },
            "standbyConfig.standbySettings.primaryConninfo",
            "control character",
        ),
        (
            {
                "initMode": "pitr",
                "pitrConfig": {
                    "dataRestoreCommand": "x",
                    "archiveRecoverySettings": {"restoreCommand": "cp a %p\x00"},
                },
            },
            "pitrConfig.archiveRecoverySettings.restoreCommand",
            "control character",
        ),
        (
            {
                "initMode": "pitr",
                "pitrConfig": {
                    "dataRestoreCommand": "x",
                    "recoveryTargetSettings": {"recoveryTargetName": "p\n"},
                },
            },
            "pitrConfig.recoveryTargetSettings.recoveryTargetName",
            "control character",
        ),
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


# -- new input is checked strictly, stored data leniently (issue 10, items 4, 6 and 7) ---------


def test_a_go_valid_stored_spec_is_accepted_with_a_warning() -> None:
    """synchronousReplication with synchronous_commit off: Go Stolon accepts it. New input is
    refused, a stored spec keeps the cluster running with a warning."""
    s = ClusterSpec.from_obj(
        {"initMode": "new", "synchronousReplication": True, "pgParameters": {"synchronous_commit": "off"}}
    )
    with pytest.raises(SpecError, match="voids synchronousReplication"):
        s.validate()
    warnings = s.validate_stored()
    assert [w.path for w in warnings] == ["pgParameters.synchronous_commit"]
    assert "voids synchronousReplication" in warnings[0].message


def test_go_rules_still_refuse_a_stored_spec() -> None:
    for fields in ({"sleepInterval": "-1s"}, {"proxyCheckInterval": "20s"}, {"role": "primary"}):
        with pytest.raises(SpecError):
            ClusterSpec.from_obj({"initMode": "new", **fields}).validate_stored()


DURATION_CASES = [
    # key, new input refused, bound named in the error
    ("sleepInterval", "0s", "between 100ms and 10m0s"),
    ("sleepInterval", "11m", "between 100ms and 10m0s"),
    ("requestTimeout", "0s", "between 1s and 1h0m0s"),
    ("requestTimeout", "500ms", "between 1s and 1h0m0s"),
    ("convergenceTimeout", "10ms", "or 0 (no limit)"),
    ("initTimeout", "25h", "or 0 (no limit)"),
    ("syncTimeout", "169h", "or 0 (no limit)"),
    ("dbWaitReadyTimeout", "0s", "between 1s and 24h0m0s"),
    ("failInterval", "0s", "between 1s and 24h0m0s"),
    ("deadKeeperRemovalInterval", "1s", "between 1m0s and 8760h0m0s"),
    ("proxyCheckInterval", "0s", "between 100ms and 10m0s"),
    ("proxyTimeout", "100ms", "between 200ms and 1h0m0s"),
]


@pytest.mark.parametrize(("key", "value", "message"), DURATION_CASES)
def test_durations_out_of_bounds_are_refused_as_input(key: str, value: str, message: str) -> None:
    fields: dict[str, Any] = {key: value}
    if key == "proxyCheckInterval":
        fields["proxyTimeout"] = "3s"
    if key == "proxyTimeout":
        fields["proxyCheckInterval"] = "100ms"
    with pytest.raises(SpecError) as err:
        ClusterSpec.from_obj({"initMode": "new", **fields}).validate()
    assert err.value.path == key
    assert message in err.value.message and f"(got {value}" in str(err.value).replace("m0s", "m")


def test_zero_means_no_limit_where_go_says_so() -> None:
    ClusterSpec.from_obj(
        {"initMode": "new", "syncTimeout": "0s", "convergenceTimeout": "0s", "initTimeout": "0s"}
    ).validate()


@pytest.mark.parametrize(
    ("key", "stored", "effective"),
    [
        ("requestTimeout", "0s", "10s"),  # was statement_timeout=1: every query failed
        ("sleepInterval", "0s", "5s"),
        ("dbWaitReadyTimeout", "0s", "24h0m0s"),  # was: wait forever
        ("failInterval", "0s", "1s"),
        ("proxyCheckInterval", "1ms", "100ms"),
        ("requestTimeout", "1000h", "1h0m0s"),
        ("syncTimeout", "0s", "0s"),  # no limit, as Go
        ("convergenceTimeout", "0s", "0s"),
    ],
)
def test_stored_durations_out_of_bounds_are_clamped_with_a_warning(
    key: str, stored: str, effective: str
) -> None:
    s = ClusterSpec.from_obj({"initMode": "new", key: stored})
    warnings = s.validate_stored()
    d = s.d()
    attr = next(name for name, b in DURATION_BOUNDS.items() if b.key == key)
    assert str(getattr(d, attr)) == effective
    if stored == effective:
        assert warnings == []
    else:
        assert [w.path for w in warnings] == [key]
        assert f"{effective} is used instead" in warnings[0].message


def test_the_clamp_is_min_max_of_durations() -> None:
    """DurationBounds.effective compares nanoseconds (it runs per DB per sentinel cycle):
    the same object as min(max(value, low), high) at, around and beyond every bound."""
    for b in DURATION_BOUNDS.values():
        for ns in {0, 1, -1, b.low.ns - 1, b.low.ns, b.low.ns + 1, b.high.ns - 1, b.high.ns, b.high.ns + 1}:
            value = Duration(ns)
            if ns == 0 and b.zero_means:
                expected = value
            elif ns == 0 and b.stored_zero is not None:
                expected = b.stored_zero
            else:
                expected = min(max(value, b.low), b.high)
            assert b.effective(value) is expected, (b.key, ns)


def test_stored_fencing_problems_are_warnings_with_safe_values() -> None:
    s = ClusterSpec.from_obj(
        {"initMode": "new", "fencing": {"methods": [{"name": "x"}], "policy": "maybe", "timeout": "0s"}}
    )
    with pytest.raises(SpecError, match=r"fencing\.policy"):
        s.validate()
    assert [w.path for w in s.validate_stored()] == ["fencing.policy", "fencing.timeout"]
    assert s.fencing is not None
    assert s.fencing.effective_policy == "required"
    assert str(s.fencing.effective_timeout) == "10s"


BAD_PARAMETERS = [
    ({"a b": "x"}, "pgParameters.a b", "not a valid parameter name"),
    ({"ü": "x"}, "pgParameters.ü", "not a valid parameter name"),
    ({"work_mem=1": "x"}, "pgParameters.work_mem=1", "not a valid parameter name"),
    ({"a.b.c": "x"}, "pgParameters.a.b.c", "not a valid parameter name"),
    ({"1abc": "x"}, "pgParameters.1abc", "not a valid parameter name"),
    ({"include": "/etc/shadow"}, "pgParameters.include", "directive"),
    ({"Include_Dir": "/tmp"}, "pgParameters.Include_Dir", "directive"),
    ({"include_if_exists": "/tmp/x"}, "pgParameters.include_if_exists", "directive"),
    ({"work_mem": "4MB\n"}, "pgParameters.work_mem", "control character"),
    ({"application_name": "a\x1b[2Jb"}, "pgParameters.application_name", "control character"),
]


@pytest.mark.parametrize(("params", "path", "message"), BAD_PARAMETERS)
def test_bad_pg_parameters(params: dict[str, str], path: str, message: str) -> None:
    s = ClusterSpec.from_obj({"initMode": "new", "pgParameters": params})
    with pytest.raises(SpecError) as err:
        s.validate()
    assert err.value.path == path and message in err.value.message
    assert "\n" not in str(err.value)
    warnings = s.validate_stored()
    assert [w.path for w in warnings] == [path]
    assert "left out of postgresql.conf" in warnings[0].message


def test_good_pg_parameters() -> None:
    ClusterSpec.from_obj(
        {
            "initMode": "new",
            "pgParameters": {
                "work_mem": "4MB",
                "Shared_Buffers": "128MB",
                "pg_stat_statements.max": "1000",
                "_x9": "tab-free value with 'quotes' and \\ backslash",
                "wrok_mem": "4MB",  # unknown to PostgreSQL: only the server can tell (keeper)
            },
        }
    ).validate()


def test_control_characters_in_a_stored_spec() -> None:
    """Issue 10 item 9 with part B's rule for stored data: a newline in a pgHBA entry is Go
    Stolon's own error; other control characters (ours) are errors for new input and
    warnings for a stored spec (its keepers refuse to render them)."""
    stored = ClusterSpec.from_obj(
        {
            "initMode": "pitr",
            "pitrConfig": {
                "dataRestoreCommand": "x",
                "recoveryTargetSettings": {"recoveryTargetName": "p\x1b"},
            },
            "pgHBA": ["host all all 10.0.0.1/32 md5\r"],
        }
    )
    with pytest.raises(SpecError):
        stored.validate()
    warnings = stored.validate_stored()
    assert sorted(w.path for w in warnings) == [
        "pgHBA[0]",
        "pitrConfig.recoveryTargetSettings.recoveryTargetName",
    ]
    with pytest.raises(SpecError, match="newline"):
        ClusterSpec.from_obj({"initMode": "new", "pgHBA": ["a\nb"]}).validate_stored()
