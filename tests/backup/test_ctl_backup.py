"""stolonctl backup create|list|delete and the backup checks of init/update, in process on
the embedded store with the built-in directory method. Bad input: one line, exit 1, the
stored cluster data byte for byte unchanged."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stolon.cli import ctl_backup, stolonctl
from stolon.model import ClusterData, ClusterSpec
from stolon.model.cluster import BACKUP_REQUESTED, BACKUP_RUNNING, PHASE_NORMAL, BackupRequest, BackupStatus
from stolon.model.uid import new_uid
from stolon.plugins import StolonPluginManager, load_plugins
from stolon.store import open_backend, open_store
from stolon.store.base import StoreConfig
from stolon.testing.pgsandbox import pg_os_user_or_skip

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


@dataclass
class Ctl:
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

    def raw(self) -> bytes | None:
        with open_backend(self.config, PLUGINS) as st:
            got = st.get_cluster_data()
        return None if got is None else got.data

    def put(self, cd: ClusterData) -> None:
        with open_store(self.config, PLUGINS) as st:
            st.put_cluster_data(cd)

    def cd(self) -> ClusterData:
        with open_store(self.config, PLUGINS) as st:
            cd, _ = st.get_cluster_data()
        assert cd is not None
        return cd


@pytest.fixture
def ctl(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Ctl]:
    for k in list(os.environ):
        if k.startswith("STOLONCTL_"):
            monkeypatch.delenv(k)
    name = f"ctl-{new_uid()}"
    endpoints = str(tmp_path / "store.db")
    flags = ["--cluster-name", name, "--store-backend", "embedded", "--store-endpoints", endpoints]
    yield Ctl(flags, StoreConfig("embedded", name, (endpoints,)), capsys, monkeypatch)


def fake_backup(repo: Path, bid: str, end: datetime, end_lsn: str = "0/3000100") -> None:
    """A backup as the directory method lists it (its metadata file)."""
    d = repo / "backups" / bid
    d.mkdir(parents=True)
    meta = {
        "id": bid,
        "startTime": (end - timedelta(seconds=5)).isoformat(),
        "endTime": end.isoformat(),
        "startLSN": "0/3000028",
        "endLSN": end_lsn,
        "timeline": 1,
        "size": 4096,
    }
    (d / "stolon-backup.json").write_text(json.dumps(meta))
    (d / "base.tar").write_bytes(b"")
    user = pg_os_user_or_skip()
    for root, dirs, files in os.walk(repo):
        for n in dirs + files:
            user.chown(os.path.join(root, n))


def running_cluster(ctl: Ctl, spec: str) -> ClusterData:
    """A cluster in phase normal with a master db1 on keeper k1 (as the sentinel writes it)."""
    assert ctl(*[], "init", "-y", spec)[0] == 0
    cd = ctl.cd()
    assert cd.cluster is not None and cd.dbs is not None and cd.keepers is not None
    from stolon.model import DB, DBSpec, Keeper

    cd.keepers["k1"] = Keeper(uid="k1")
    cd.dbs["db1"] = DB(uid="db1", generation=1, spec=DBSpec(keeper_uid="k1", role="master"))
    cd.cluster.status.phase = PHASE_NORMAL
    cd.cluster.status.master = "db1"
    ctl.put(cd)
    return cd


def one_line_error(code: int, err: str, *texts: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for t in texts:
        assert t in lines[0], err


def spec_with(repo: Path, **extra: object) -> str:
    return json.dumps(
        {"initMode": "new", "backup": {"method": "directory", "settings": {"path": str(repo)}}, **extra}
    )


# -- create --------------------------------------------------------------------------------------


def test_create_without_backup_section(ctl: Ctl) -> None:
    running_cluster(ctl, '{"initMode": "new"}')
    before = ctl.raw()
    code, _, err = ctl("backup", "create")
    one_line_error(code, err, "no backup section", "stolonctl update --patch")
    assert ctl.raw() == before


def test_create_writes_a_request_for_the_master(ctl: Ctl, repository: Path) -> None:
    running_cluster(ctl, spec_with(repository))
    code, out, err = ctl("backup", "create", "--wait=false")
    assert code == 0, err
    cd = ctl.cd()
    assert cd.cluster is not None and cd.cluster.status.backup is not None
    req = cd.cluster.status.backup.request
    assert req is not None
    assert (req.phase, req.db_uid, req.keeper_uid, req.requested_by) == (
        BACKUP_REQUESTED,
        "db1",
        "k1",
        "stolonctl",
    )
    assert f"backup {req.id} requested from keeper k1" in out
    # a second request while the first is active is refused, nothing written
    before = ctl.raw()
    code, _, err = ctl("backup", "create", "--wait=false")
    one_line_error(code, err, "already requested", req.id)
    assert ctl.raw() == before


def test_create_survives_a_sentinel_write_during_its_checks(ctl: Ctl, repository: Path) -> None:
    """The sentinel writes the cluster data every cycle; one landing while stolonctl checks
    the backup method (which may run the method's tools) must not fail the request."""
    running_cluster(ctl, spec_with(repository))
    check = ctl_backup._method

    def check_while_the_sentinel_writes(pm: StolonPluginManager, spec: ClusterSpec) -> Any:
        ctl.put(ctl.cd())  # a sentinel cycle: same document, new revision
        return check(pm, spec)

    ctl.monkeypatch.setattr(ctl_backup, "_method", check_while_the_sentinel_writes)
    code, out, err = ctl("backup", "create", "--wait=false")
    assert code == 0, err
    cd = ctl.cd()
    assert cd.cluster is not None and cd.cluster.status.backup is not None
    req = cd.cluster.status.backup.request
    assert req is not None and f"backup {req.id} requested from keeper k1" in out


def test_create_refused_while_running(ctl: Ctl, repository: Path) -> None:
    cd = running_cluster(ctl, spec_with(repository))
    cd = ctl.cd()
    assert cd.cluster is not None
    cd.cluster.status.backup = BackupStatus(
        request=BackupRequest(id="r0", phase=BACKUP_RUNNING, keeper_uid="k1")
    )
    ctl.put(cd)
    before = ctl.raw()
    code, _, err = ctl("backup", "create")
    one_line_error(code, err, "a backup is already running (request r0")
    assert ctl.raw() == before


# -- list / delete --------------------------------------------------------------------------------


def test_list_and_delete(ctl: Ctl, repository: Path) -> None:
    running_cluster(ctl, spec_with(repository))
    code, out, _ = ctl("backup", "list")
    assert code == 0 and "no backups" in out
    t = datetime(2026, 12, 1, 10, tzinfo=UTC)
    fake_backup(repository, "20261201T100000Z", t)
    fake_backup(repository, "20261201T110000Z", t + timedelta(hours=1))
    code, out, _ = ctl("backup", "list", "-f", "json")
    assert [b["id"] for b in json.loads(out)] == ["20261201T100000Z", "20261201T110000Z"]
    code, out, _ = ctl("backup", "list")
    assert "20261201T110000Z  2026-12-01 11:00:00  0/3000028  0/3000100  1" in out
    code, out, err = ctl("backup", "delete", "--retain", "1", "-y")
    assert code == 0, err
    assert "deleted 1 backup(s): 20261201T100000Z" in out
    code, out, _ = ctl("backup", "list", "-f", "json")
    assert [b["id"] for b in json.loads(out)] == ["20261201T110000Z"]
    code, _, err = ctl("backup", "delete", "--retain", "0", "-y")
    one_line_error(code, err, "--retain must be at least 1")


# -- init / update checks ---------------------------------------------------------------------------


def test_init_unknown_method_changes_nothing(ctl: Ctl) -> None:
    code, _, err = ctl("init", "-y", '{"initMode": "new", "backup": {"method": "nosuch"}}')
    one_line_error(code, err, "unknown backup method 'nosuch'", "installed:")
    assert ctl.raw() is None


def test_init_bad_settings_changes_nothing(ctl: Ctl) -> None:
    code, _, err = ctl(
        "init", "-y", '{"initMode": "new", "backup": {"method": "directory", "settings": {"pth": "/x"}}}'
    )
    one_line_error(code, err, "backup.settings.pth: unknown setting (did you mean 'path'?)")
    assert ctl.raw() is None


def pitr_spec(repo: Path, backup_id: str, target: str | None = None) -> str:
    pitr: dict[str, object] = {
        "fromBackup": {"method": "directory", "settings": {"path": str(repo)}, "backupID": backup_id}
    }
    if target:
        pitr["recoveryTargetSettings"] = {"recoveryTargetTime": target}
    return json.dumps({"initMode": "pitr", "pitrConfig": pitr})


def test_init_pitr_checks_the_backup(ctl: Ctl, repository: Path) -> None:
    code, _, err = ctl("init", "-y", pitr_spec(repository, "latest"))
    one_line_error(code, err, "the repository has no backup")
    t = datetime(2026, 12, 1, 10, tzinfo=UTC)
    fake_backup(repository, "20261201T100000Z", t)
    code, _, err = ctl("init", "-y", pitr_spec(repository, "20261201T090000Z"))
    one_line_error(code, err, "backup '20261201T090000Z' is not in the repository")
    code, _, err = ctl("init", "-y", pitr_spec(repository, "latest", "2026-12-01 09:59:00+00"))
    one_line_error(code, err, "is before the end of backup 20261201T100000Z")
    assert ctl.raw() is None
    code, _, err = ctl("init", "-y", pitr_spec(repository, "latest", "2026-12-01 10:30:00+00"))
    assert code == 0, err
    assert ctl.raw() is not None


def test_update_bad_backup_settings_changes_nothing(ctl: Ctl, repository: Path) -> None:
    running_cluster(ctl, '{"initMode": "new"}')
    before = ctl.raw()
    code, _, err = ctl(
        "update", "--patch", '{"backup": {"method": "directory", "settings": {"path": "rel"}}}'
    )
    one_line_error(code, err, "backup.settings.path: must be an absolute path")
    assert ctl.raw() == before
    code, _, err = ctl(
        "update",
        "--patch",
        json.dumps({"backup": {"method": "directory", "settings": {"path": str(repository)}}}),
    )
    assert code == 0, err
