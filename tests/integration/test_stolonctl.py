"""stolonctl end to end on the embedded store and on a real etcd."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stolon.cli import stolonctl
from stolon.model import ClusterData, KeeperInfo, ProxyInfo, SentinelInfo
from stolon.model.uid import new_uid
from stolon.plugins import load_plugins
from stolon.store import open_backend, open_store
from stolon.store.base import InfoKind, Store, StoreConfig
from stolon.testing.requirements import tool_missing

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

FIXTURE = Path(__file__).parent.parent / "fixtures" / "go_clusterdata.json"


@dataclass
class Ctl:
    """Runs stolonctl in-process against one cluster of one store."""

    flags: list[str]
    config: StoreConfig
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        code = stolonctl.main([*self.flags, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str, stdin: str = "") -> str:
        code, out, err = self(*args, stdin=stdin)
        assert code == 0, f"stolonctl {' '.join(args)} failed: {err}"
        return out

    def raw(self) -> bytes | None:
        with open_backend(self.config, PLUGINS) as st:
            got = st.get_cluster_data()
        return None if got is None else got.data

    def backend(self) -> Store:
        return open_backend(self.config, PLUGINS)


@pytest.fixture(params=["embedded", pytest.param("etcdv3", marks=pytest.mark.integration)])
def ctl(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Ctl]:
    for k in list(os.environ):
        if k.startswith("STOLONCTL_"):
            monkeypatch.delenv(k)
    name = f"ctl-{new_uid()}"
    if request.param == "embedded":
        endpoints = str(tmp_path / "store.db")
    else:
        etcd = request.getfixturevalue("etcd_server")
        endpoints = ",".join(etcd.endpoints)
    flags = [
        "--cluster-name",
        name,
        "--store-backend",
        request.param,
        "--store-endpoints",
        endpoints,
    ]
    config = StoreConfig(backend=request.param, cluster_name=name, endpoints=tuple(endpoints.split(",")))
    yield Ctl(flags, config, capsys, monkeypatch)


def test_init_spec_update_status(ctl: Ctl) -> None:
    out = ctl.ok("init", "-y")
    assert "WARNING: The databases managed by the keepers will be overwritten" in out
    assert "current cluster data will be removed" not in out
    assert json.loads(ctl.ok("spec")) == {"initMode": "new"}
    ctl.ok("update", "--patch", '{"synchronousReplication": true}')
    assert json.loads(ctl.ok("spec")) == {"initMode": "new", "synchronousReplication": True}
    defaults = json.loads(ctl.ok("spec", "--defaults"))
    assert defaults["synchronousReplication"] is True
    assert defaults["sleepInterval"] == "5s" and defaults["maxStandbyLag"] == 1232896
    assert "pitrConfig" in defaults and defaults["pitrConfig"] is None
    text = ctl.ok("status")
    assert "=== Active sentinels ===\n\nNo active sentinels" in text
    assert "No keepers available" in text and "No cluster available" in text
    status = json.loads(ctl.ok("status", "-f", "json"))
    assert status == {
        "sentinels": [],
        "proxies": [],
        "keepers": [],
        "cluster": {"available": True, "master_keeper_uid": "", "master_db_uid": ""},
        "backup": None,
        "activities": [],
        "switchover": None,
        "warnings": [],
    }
    raw = ctl.raw()
    assert raw is not None
    cd = json.loads(raw)
    assert cd["formatVersion"] == 1 and cd["cluster"]["status"]["phase"] == "initializing"
    assert cd["cluster"]["spec"]["synchronousReplication"] is True


def test_init_asks_for_confirmation(ctl: Ctl) -> None:
    code, out, _ = ctl("init", stdin="maybe\nno\n")
    assert code == 0 and "Please enter 'yes' or 'no'" in out and out.rstrip().endswith("exiting")
    assert ctl.raw() is None
    code, _, err = ctl("init")
    assert code == 1 and "use --yes" in err
    assert ctl.raw() is None
    ctl.ok("init", stdin="yes\n")
    first = ctl.raw()
    out = ctl.ok("init", '{"initMode":"new","sleepInterval":"2s"}', stdin="yes\n")
    assert "WARNING: The current cluster data will be removed" in out
    assert ctl.raw() != first
    assert json.loads(ctl.ok("spec"))["sleepInterval"] == "2s"


def test_init_from_file_and_stdin(ctl: Ctl, tmp_path: Path) -> None:
    f = tmp_path / "spec.json"
    f.write_text('{"initMode":"new","maxStandbys":4}')
    ctl.ok("init", "-y", "-f", str(f))
    assert json.loads(ctl.ok("spec"))["maxStandbys"] == 4
    ctl.ok("init", "--yes", "-f", "-", stdin='{"initMode":"new","maxStandbys":5}')
    assert json.loads(ctl.ok("spec"))["maxStandbys"] == 5


BAD_UPDATES = [
    (["update", "--patch", "{not json"], "not valid JSON"),
    (["update", "--patch", "[1]"], "must be a JSON object"),
    (
        ["update", "--patch", '{"maxStandby": 2}'],
        'maxStandby: unknown field (did you mean "maxStandbys"?)',
    ),
    (["update", "--patch", '{"maxStandbys": "two"}'], "maxStandbys: expected an integer"),
    (["update", "--patch", '{"maxStandbys": 0}'], "maxStandbys: must be at least 1"),
    (["update", "--patch", '{"maxStandbys": 99999}'], "maxStandbys: 99999 is out of range"),
    (["update", "--patch", '{"sleepInterval": "soon"}'], "sleepInterval: invalid duration"),
    (
        ["update", "--patch", '{"proxyTimeout": "1s"}'],
        "proxyCheckInterval: must be less than proxyTimeout",
    ),
    (
        ["update", "--patch", '{"initMode": "existing", "existingConfig": {"keeperUID": "k"}}'],
        "initMode: cannot change the cluster init mode",
    ),
    (
        ["update", "--patch", '{"role": "standby", "standbyConfig": {}}'],
        'role: cannot be "standby"',
    ),
    (
        [
            "update",
            "--patch",
            '{"synchronousReplication": true, "pgParameters": {"synchronous_commit": "off"}}',
        ],
        "pgParameters.synchronous_commit",
    ),
    (
        ["update", '{"initMode": "new", "newConfig": {"locale": 3}}'],
        "newConfig.locale: expected a string",
    ),
    (["update", '{"sleepInterval": "1s"}'], "initMode: is required"),
    (["update"], "no cluster spec provided"),
    (["update", "-f", "/nonexistent/spec.json"], "cannot read file"),
]


@pytest.mark.parametrize(("args", "message"), BAD_UPDATES)
def test_bad_input_changes_nothing(ctl: Ctl, args: list[str], message: str) -> None:
    ctl.ok("init", "-y", '{"initMode":"new","sleepInterval":"2s"}')
    before = ctl.raw()
    code, _out, err = ctl(*args)
    assert code != 0
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, f"not one line: {err!r}"
    assert ctl.raw() == before  # byte-identical


def test_update_replaces_or_patches(ctl: Ctl) -> None:
    ctl.ok(
        "init",
        "-y",
        '{"initMode":"new","sleepInterval":"2s","pgHBA":["host all all 0.0.0.0/0 md5"]}',
    )
    ctl.ok("update", "-p", '{"pgHBA": null, "maxStandbysPerSender": 1}')
    assert json.loads(ctl.ok("spec")) == {
        "initMode": "new",
        "sleepInterval": "2s",
        "maxStandbysPerSender": 1,
    }
    ctl.ok("update", '{"initMode":"new","pgHBA":[]}')
    # replaced; `spec` leaves the empty pgHBA out as Go's omitempty does, the store keeps [] (not null)
    assert json.loads(ctl.ok("spec")) == {"initMode": "new"}
    assert json.loads(ctl.ok("clusterdata", "read"))["cluster"]["spec"]["pgHBA"] == []


def test_patch_keeps_fields_a_newer_version_wrote(ctl: Ctl) -> None:
    ctl.ok("init", "-y")
    raw = ctl.raw()
    assert raw is not None
    obj = json.loads(raw)
    obj["cluster"]["spec"]["fencing"] = {"policy": "required"}
    obj["traceContext"] = {"traceparent": "00-1-2-01"}
    with ctl.backend() as st:
        st.put_cluster_data(json.dumps(obj).encode())
    ctl.ok("update", "--patch", '{"sleepInterval": "3s"}')
    after = json.loads(ctl.raw() or b"")
    assert after["cluster"]["spec"]["fencing"] == {"policy": "required"}
    assert after["traceContext"] == {"traceparent": "00-1-2-01"}
    assert after["cluster"]["spec"]["sleepInterval"] == "3s"


def _write_fixture(ctl: Ctl) -> ClusterData:
    cd = ClusterData.parse(FIXTURE.read_text())
    with ctl.backend() as st:
        st.put_cluster_data(cd.to_bytes())
    return cd


def test_status_escapes_what_the_store_publishes(ctl: Ctl) -> None:
    """Issue 10 item 10: UIDs and addresses from the store cannot forge status lines or send
    terminal escapes (ANSI, OSC); the JSON form stays ASCII with escapes."""
    evil_keeper = "keeper1\x1b[2J\x1b]0;owned\x07\nMaster Keeper: evil"
    text = FIXTURE.read_text().replace('"keeper1"', json.dumps(evil_keeper))
    text = text.replace('"10.0.0.2"', json.dumps("10.0.0.2\r\x9b31m"))
    with ctl.backend() as st:
        st.put_cluster_data(ClusterData.parse(text).to_bytes())
    with open_store(ctl.config, PLUGINS) as st:
        st.put_sentinel_info(SentinelInfo(uid="s\x1b[31mred"), 60)
        st.put_proxy_info(ProxyInfo(uid="p\u202eevil", generation=3), 60)
        out = ctl.ok("status")
        js = ctl.ok("status", "--format", "json")
    for c in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
        assert c not in out and c not in js
    assert [line for line in out.splitlines() if line.startswith("Master Keeper:")] == [
        "Master Keeper: keeper0"
    ]
    assert "keeper1\\x1b[2J\\x1b]0;owned\\x07\\nMaster Keeper: evil" in out
    assert "10.0.0.2\\r\\x9b31m:5432" in out
    assert "s\\x1b[31mred" in out and "p\\u202eevil" in out
    assert json.loads(js)["proxies"] == [{"uid": "p\u202eevil", "generation": 3}]


def test_status_shows_cluster(ctl: Ctl) -> None:
    _write_fixture(ctl)
    with open_store(ctl.config, PLUGINS) as st:
        st.put_sentinel_info(SentinelInfo(uid="79a71967"), 60)
        st.put_sentinel_info(SentinelInfo(uid="718f47de"), 60)
        st.put_proxy_info(ProxyInfo(uid="p1", generation=3), 60)
        election = st.election("79a71967", 20)
        assert election.wait_leadership(0) is None
        election.start()
        assert election.wait_leadership(10) is not None
        try:
            text = ctl.ok("status")
            js = json.loads(ctl.ok("status", "--format", "json"))
        finally:
            election.resign()
    # exactly the example of Go Stolon's documentation
    assert "=== Active sentinels ===\n\nID\t\tLEADER\n718f47de\tfalse\n79a71967\ttrue\n" in text
    assert "=== Active proxies ===\n\nID\np1\n" in text
    assert "UID\tHEALTHY\tPG LISTENADDRESS\tPG HEALTHY\tPG WANTEDGENERATION\tPG CURRENTGENERATION\n" in text
    # Go's keeper rows end with a tab ("%s\t%t\t%s\t%t\t%d\t%d\t\n"), each flushed alone
    assert (
        "keeper0\ttrue\t10.0.0.1:5432\t\ttrue\t\t5\t\t\t5\t\nkeeper1\ttrue\t10.0.0.2:5432\ttrue\t3\t3\t\n"
        in text
    )
    assert "=== Cluster Info ===\n\nMaster Keeper: keeper0\n" in text
    assert "===== Keepers/DB tree =====\n\nkeeper0 (master)\n└─keeper1\n" in text
    assert js["sentinels"] == [
        {"uid": "718f47de", "leader": False},
        {"uid": "79a71967", "leader": True},
    ]
    assert js["proxies"] == [{"uid": "p1", "generation": 3}]
    assert js["cluster"] == {
        "available": True,
        "master_keeper_uid": "keeper0",
        "master_db_uid": "db000001",
    }
    assert js["keepers"][1] == {
        "uid": "keeper1",
        "listen_address": "10.0.0.2:5432",
        "healthy": True,
        "pg_healthy": True,
        "pg_wanted_generation": 3,
        "pg_current_generation": 3,
    }


def test_status_without_cluster_data(ctl: Ctl) -> None:
    text = ctl.ok("status")
    assert "No keepers available" in text and "No cluster available" in text
    assert json.loads(ctl.ok("status", "-f", "json"))["cluster"]["available"] is False
    code, _, err = ctl("status", "-f", "yaml")
    assert code == 1 and "unrecognised output format" in err


def test_failkeeper_and_removekeeper(ctl: Ctl) -> None:
    _write_fixture(ctl)
    code, _, err = ctl("failkeeper", "nokeeper")
    assert code == 1 and "keeper doesn't exist" in err
    ctl.ok("failkeeper", "keeper0")
    cd = ClusterData.parse(ctl.raw() or b"")
    assert (cd.keepers or {})["keeper0"].status.force_fail is True
    before = ctl.raw()
    code, _, err = ctl("removekeeper", "keeper0")
    assert code == 1 and "keeper assigned db is the current cluster master db" in err
    assert ctl.raw() == before
    ctl.ok("removekeeper", "keeper1")
    cd = ClusterData.parse(ctl.raw() or b"")
    assert set(cd.keepers or {}) == {"keeper0"}
    assert set(cd.dbs or {}) == {"db000001"}
    assert "keeper0 (master)\n" in ctl.ok("status")  # the dangling follower is skipped


def test_clusterdata_read_write(ctl: Ctl, tmp_path: Path) -> None:
    code, _, err = ctl("clusterdata", "read")
    assert code == 1 and "no cluster clusterdata available" in err
    text = FIXTURE.read_text()
    out = ctl.ok("clusterdata", "write", stdin=text)
    assert "successfully wrote cluster data into the new store" in out
    assert json.loads(ctl.ok("clusterdata", "read")) == json.loads(text)
    assert ctl.ok("clusterdata", "read", "--pretty").startswith('{\n\t"formatVersion": 1')
    code, _, err = ctl("clusterdata", "write", stdin=text)
    assert code == 1 and "cluster data already available use --yes to override" in err
    f = tmp_path / "cd.json"
    obj = json.loads(text)
    obj["cluster"]["spec"]["sleepInterval"] = "9s"
    f.write_text(json.dumps(obj))
    ctl.ok("clusterdata", "write", "-y", "-f", str(f))
    assert json.loads(ctl.ok("spec"))["sleepInterval"] == "9s"
    before = ctl.raw()
    for bad, msg in [
        ("{", "invalid cluster data"),
        (json.dumps({**obj, "formatVersion": 2}), "unsupported clusterdata format version"),
        (
            json.dumps({**obj, "cluster": {**obj["cluster"], "spec": {"initMode": "bogus"}}}),
            "unknown initMode",
        ),
    ]:
        code, _, err = ctl("clusterdata", "write", "-y", stdin=bad)
        assert code == 1 and msg in err
    assert ctl.raw() == before


def test_promote_standby_cluster(ctl: Ctl) -> None:
    code, _, err = ctl("promote", "-y")
    assert code == 1 and "no cluster data available" in err
    ctl.ok("init", "-y")
    code, _, err = ctl("promote", "-y")
    assert code == 0 and "cluster spec role already set to master" in err
    standby = {
        "initMode": "pitr",
        "role": "standby",
        "pitrConfig": {"dataRestoreCommand": "true"},
        "standbyConfig": {"standbySettings": {"primaryConninfo": "host=10.0.0.9"}},
    }
    ctl.ok("init", "-y", json.dumps(standby))
    code, out, _ = ctl("promote", stdin="no\n")
    assert code == 0 and "exiting" in out
    assert json.loads(ctl.ok("spec"))["role"] == "standby"
    ctl.ok("promote", "-y")
    assert json.loads(ctl.ok("spec"))["role"] == "master"


def test_version_and_plugins(ctl: Ctl) -> None:
    assert ctl.ok("version").startswith("stolonctl version ")
    out = ctl.ok("plugins")
    assert "embedded\tstore\tstolon" in out.replace("\t\t", "\t")


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("STOLONCTL_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "stolon.cli.stolonctl", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_environment_variables(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    env = {
        "STOLONCTL_CLUSTER_NAME": "envcluster",
        "STOLONCTL_STORE_BACKEND": "embedded",
        "STOLONCTL_STORE_ENDPOINTS": db,
    }
    assert run_cli(["init", "-y"], env).returncode == 0
    proc = run_cli(["spec"], env)
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"initMode": "new"}
    # a flag wins over the environment; an empty variable is ignored
    proc = run_cli(["--cluster-name", "other", "spec"], env)
    assert proc.returncode == 1 and "no cluster data available" in proc.stderr
    proc = run_cli(["spec"], {**env, "STOLONCTL_CLUSTER_NAME": ""})
    assert proc.returncode == 1 and "--cluster-name is required" in proc.stderr
    proc = run_cli(["spec"], {**env, "STOLONCTL_STORE_TIMEOUT": "soon"})
    assert proc.returncode == 2 and "STOLONCTL_STORE_TIMEOUT" in proc.stderr
    proc = run_cli(["spec"], {**env, "STOLONCTL_STORE_SKIP_TLS_VERIFY": "true"})
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--store-backend", "embedded", "spec"], 1, "--cluster-name is required"),
        (["--cluster-name", "c", "spec"], 1, "--store-backend is required"),
        (
            ["--cluster-name", "c", "--store-backend", "zookeeper", "spec"],
            1,
            "unknown store backend 'zookeeper'",
        ),
        (["--cluster-name", "c", "--store-backend", "etcd", "spec"], 1, "use etcdv3"),
        (
            ["--cluster-name", "c", "--store-backend", "embedded", "spec"],
            1,
            "--store-endpoints is required",
        ),
        (
            [
                "--cluster-name",
                "c",
                "--store-backend",
                "embedded",
                "--store-endpoints",
                "/nonexistent/x.db",
                "spec",
            ],
            1,
            "does not exist",
        ),
        (["--store-timeout", "5", "spec"], 2, "invalid duration '5'"),
        (["init", "--yes=maybe"], 2, "--yes: invalid boolean"),
    ],
)
def test_bad_flags(args: list[str], code: int, message: str) -> None:
    proc = run_cli(args, {})
    assert proc.returncode == code
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_etcd_is_reported(
    etcd_server_factory: Callable[[], object] | None = None,
) -> None:
    proc = run_cli(
        [
            "--cluster-name",
            "c",
            "--store-backend",
            "etcdv3",
            "--store-endpoints",
            "http://127.0.0.1:9",
            "--store-timeout",
            "1s",
            "spec",
        ],
        {},
    )
    if "unknown store backend" in proc.stderr:
        tool_missing("etcd", "the etcdv3 plugin is not installed")
    assert proc.returncode == 1
    assert "cannot reach the store" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_keeper_info_visible_in_store(ctl: Ctl) -> None:
    with open_store(ctl.config, PLUGINS) as st:
        st.put_keeper_info(KeeperInfo(uid="k9", info_uid="i"), 30)
        assert set(st.keepers_info()) == {"k9"}
        assert st.backend.get_infos(InfoKind.KEEPER)["k9"].startswith(b"{")


# -- issue 10: Go-valid stored specs, malformed documents ---------------------------------------


def _store_spec(ctl: Ctl, spec: dict[str, object]) -> None:
    """Store a spec as Go Stolon would accept it (no validation of ours)."""
    cd = ClusterData.parse(FIXTURE.read_text())
    obj = cd.to_obj()
    obj["cluster"]["spec"] = spec
    with ctl.backend() as st:
        st.put_cluster_data(json.dumps(obj).encode())


def _one_line(err: str) -> None:
    assert len(err.strip().splitlines()) == 1, f"not one line: {err!r}"
    assert "Traceback" not in err


def test_a_go_valid_stored_spec_is_shown_and_both_update_forms_fix_it(ctl: Ctl) -> None:
    """Item 4: synchronousReplication + synchronous_commit off, stored (Go accepts it)."""
    bad = {"initMode": "new", "synchronousReplication": True, "pgParameters": {"synchronous_commit": "off"}}
    _store_spec(ctl, bad)
    code, out, err = ctl("spec")
    assert code == 0 and json.loads(out) == bad
    assert "WARNING: stored cluster spec: pgParameters.synchronous_commit" in err
    text = ctl.ok("status")
    assert "=== Warnings ===" in text
    assert "WARNING: cluster spec: pgParameters.synchronous_commit: 'off' acknowledges commits" in text
    assert any("synchronous_commit" in w for w in json.loads(ctl.ok("status", "-f", "json"))["warnings"])
    # an update that leaves the problem in place is new input: refused, naming the fix
    before = ctl.raw()
    code, _, err = ctl("update", "--patch", '{"sleepInterval": "2s"}')
    assert code == 1 and "pgParameters.synchronous_commit" in err and "use on" in err
    _one_line(err)
    assert ctl.raw() == before
    ctl.ok("update", "--patch", '{"pgParameters": {"synchronous_commit": "on"}}')
    assert "Warnings" not in ctl.ok("status")
    _store_spec(ctl, bad)
    ctl.ok("update", json.dumps({**bad, "pgParameters": {"synchronous_commit": "remote_apply"}}))
    assert json.loads(ctl.ok("spec"))["pgParameters"] == {"synchronous_commit": "remote_apply"}


def test_stored_durations_out_of_bounds_are_warned(ctl: Ctl) -> None:
    """Item 7: a stored requestTimeout of 0s is used as 10s, with a warning."""
    _store_spec(ctl, {"initMode": "new", "requestTimeout": "0s"})
    text = ctl.ok("status")
    assert (
        "WARNING: cluster spec: requestTimeout: 0s is out of bounds (1s..1h0m0s): 10s is used instead" in text
    )
    code, _, err = ctl("update", "--patch", '{"dbWaitReadyTimeout": "0s", "requestTimeout": "5s"}')
    assert code == 1 and "dbWaitReadyTimeout: must be between 1s and 24h0m0s (got 0s)" in err
    _one_line(err)


def _malformed_cluster_data() -> list[tuple[str, bytes]]:
    good = FIXTURE.read_bytes()
    return [
        ("nested", b'{"formatVersion": 1, "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
        ("huge", b'{"formatVersion": 1, "x": "' + b"y" * (4 * 1024 * 1024) + b'"}'),
        ("wrong type", b'{"formatVersion": 1, "keepers": [1, 2]}'),
        ("truncated", good[: len(good) // 2]),
        ("unknown format version", good.replace(b'"formatVersion": 1', b'"formatVersion": 7')),
    ]


def test_malformed_cluster_data_gives_one_line_errors_and_can_be_replaced(ctl: Ctl, tmp_path: Path) -> None:
    """Item 5: stolonctl status, update and clusterdata write on (and with) malformed
    documents: one line each, nothing written."""
    spec_file = tmp_path / "spec.json"
    spec_file.write_text('{"initMode": "new"}')
    for name, data in _malformed_cluster_data():
        if name == "huge" and ctl.config.backend == "etcdv3":
            continue  # etcd refuses values above 1.5 MiB: it can't hold one
        with ctl.backend() as st:
            st.put_cluster_data(data)
        for args in (["status"], ["spec"], ["update", "-f", str(spec_file)], ["update", "-p", "{}"]):
            code, _, err = ctl(*args)
            assert code == 1, (name, args)
            _one_line(err)
            assert "cluster data" in err, (name, args, err)
            assert ctl.raw() == data, "nothing written"
        # as input: refused with one line
        code, _, err = ctl("clusterdata", "write", "-y", stdin=data.decode(errors="replace"))
        assert code == 1 and "invalid cluster data" in err, (name, err)
        _one_line(err)
        nested = tmp_path / "nested.json"
        nested.write_bytes(data)
        code, _, err = ctl("update", "-f", str(nested))
        assert code == 1 and "invalid cluster spec" in err
        _one_line(err)
        # a good document replaces it
        ctl.ok("clusterdata", "write", "-y", stdin=FIXTURE.read_text())
        assert "Master Keeper: keeper0" in ctl.ok("status")


def test_malformed_infos_are_listed_by_status(ctl: Ctl) -> None:
    _write_fixture(ctl)
    with ctl.backend() as st:
        st.put_info(InfoKind.KEEPER, "evil", b"[" * 20_000, 60)
        st.put_info(InfoKind.SENTINEL, "s1", b'{"UID": 3}', 60)
        st.put_info(InfoKind.PROXY, "p\x1b[2J", b"{", 60)
    code, out, err = ctl("status")
    assert code == 0, err
    assert "WARNING: ignoring the malformed keepers info 'evil': the document is nested more than 32" in out
    assert "WARNING: ignoring the malformed sentinels info 's1': UID: expected a string" in out
    assert "\x1b" not in out and "ignoring the malformed proxies info 'p\\x1b[2J'" in out


def test_wrong_sql_column_type_in_the_embedded_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    config = StoreConfig(backend="embedded", cluster_name="c", endpoints=(str(db),))
    ctl = Ctl(
        ["--cluster-name", "c", "--store-backend", "embedded", "--store-endpoints", str(db)],
        config,
        capsys,
        monkeypatch,
    )
    with open_backend(config, PLUGINS) as st:
        st.put_cluster_data(FIXTURE.read_bytes())
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE cluster_data SET data = 12345678901234")
    conn.close()
    for args in (["status"], ["spec"], ["update", "-p", "{}"]):
        code, _, err = ctl(*args)
        assert code == 1 and "SQL INTEGER" in err
        _one_line(err)
    ctl.ok("clusterdata", "write", "-y", stdin=FIXTURE.read_text())
    assert "Master Keeper: keeper0" in ctl.ok("status")


def test_status_shows_keeper_conditions_and_fencing(ctl: Ctl) -> None:
    """Items 6 and 8: what a keeper leaves out or the server refused, and a fencing that keeps
    failing, are listed by status (escaped: they are published strings)."""
    from datetime import UTC, datetime, timedelta

    from stolon.model import FencingState, PostgresCondition, PostgresState

    _write_fixture(ctl)
    now = datetime.now(UTC)
    with open_store(ctl.config, PLUGINS) as st:
        state = PostgresState(
            healthy=True,
            conditions=[
                PostgresCondition(
                    type="InvalidParameter", parameter="work_mem", message="'banana' left out\x1b[31m"
                ),
                PostgresCondition(type="ConfigReloadRejected", message="pg_hba.conf line 8: bad"),
            ],
        )
        st.put_keeper_info(KeeperInfo(uid="keeper0", info_uid="i", postgres_state=state), 60)
        fencing = FencingState(
            old_master_db="db000001",
            old_master_keeper="keeper0",
            new_master_db="db000002",
            failures=3,
            detail="command: failed (exit status 1)",
            last_attempt=now,
            next_attempt=now + timedelta(seconds=2),
        )
        st.put_sentinel_info(SentinelInfo(uid="s1", fencing=fencing), 60)
        election = st.election("s1", 20)
        election.start()
        assert election.wait_leadership(10) is not None
        try:
            text = ctl.ok("status")
        finally:
            election.resign()
    assert "WARNING: keeper keeper0: InvalidParameter work_mem: 'banana' left out\\x1b[31m" in text
    assert "\x1b" not in text
    assert "WARNING: keeper keeper0: ConfigReloadRejected: pg_hba.conf line 8: bad" in text
    assert (
        "WARNING: fencing: old master db db000001 (keeper keeper0) NOT fenced after 3 attempt(s),"
        " db db000002 waits; last: command: failed (exit status 1); next attempt in" in text
    )
