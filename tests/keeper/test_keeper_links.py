"""The keeper (root) and links planted by the PostgreSQL OS user (issue 10, items 1 and 2).

End to end: a PITR whose ``dataRestoreCommand`` (run as ``postgres``) replaces PGDATA with a
link to a root-owned tree must not make root hand that tree to ``postgres``; and a
``--data-dir`` that the ``postgres`` user turned into a link must not be chowned through.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stolon.cli.keeper import parse_config
from stolon.keeper.daemon import FatalError, Keeper
from stolon.model import ClusterSpec
from stolon.model.spec import PITRConfig
from stolon.plugins import load_plugins
from stolon.postgres.runas import OSUser, run_command

from .harness import TestCluster, wait_for

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacker must be another OS user: needs root")

FAST = {"sleepInterval": "1s", "requestTimeout": "5s", "failInterval": "5s", "initMode": "new"}


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = os.lstat(p)
        out[str(p)] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return out


def make_victim(parent: Path) -> Path:
    victim = parent / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "file").write_text("root's\n")
    (victim / "sub" / "file2").write_text("root's\n")
    os.chmod(victim, 0o755)
    return victim


@pytest.mark.integration
def test_pitr_restore_that_plants_a_link_does_not_give_its_target_away(
    cluster: TestCluster, logs_on_failure: None
) -> None:
    s = cluster.sentinel
    victim = make_victim(cluster.sandbox.path)
    before = snapshot(victim)
    s.init(ClusterSpec.from_obj(FAST))
    k0 = cluster.keeper("keeper0").start()
    s.wait_keeper("keeper0")
    pitr = PITRConfig(data_restore_command=f"rm -rf %d && ln -s {victim} %d")
    s.set_db("dbp", "keeper0", role="master", init_mode="pitr", pitr_config=pitr)
    refused = "the restore left an unusable data directory"
    wait_for(
        "the keeper refusing the linked PGDATA (or giving the link target away)",
        lambda: refused in k0.output() or snapshot(victim) != before,
        90,
    )
    assert snapshot(victim) == before
    assert refused in k0.output()
    # the next cycles stop at the link too (until an operator removes it)
    wait_for("later cycles refusing the link", lambda: k0.output().count("is a symbolic link") >= 3, 60)
    assert snapshot(victim) == before
    assert os.path.islink(k0.data_dir / "postgres")


def test_data_dir_turned_into_a_link_is_not_chowned_through(tmp_path: Path) -> None:
    user = OSUser.lookup("postgres")
    base = Path(tempfile.mkdtemp(prefix="stolon-dd-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        victim = make_victim(base)
        before = snapshot(victim)
        pg_home = base / "pg"  # e.g. /var/lib/postgresql, which belongs to postgres
        pg_home.mkdir(mode=0o755)
        os.chown(pg_home, user.uid, user.gid)
        data_dir = pg_home / "stolon"
        run_command(["ln", "-s", str(victim), str(data_dir)], user=user, timeout=30)
        cfg = parse_config(
            [
                "--cluster-name",
                "c",
                "--store-backend",
                "embedded",
                "--store-endpoints",
                str(base / "store.db"),
                "--data-dir",
                str(data_dir),
                "--pg-listen-address",
                "127.0.0.1",
                "--pg-repl-username",
                "repl",
                "--pg-repl-password",
                "x",
                "--pg-su-password",
                "y",
                "--pg-os-user",
                "postgres",
            ],
            env={},
        )
        with pytest.raises(FatalError, match="symbolic link"):
            Keeper(cfg, PLUGINS)._prepare()
        assert snapshot(victim) == before
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in list(os.environ):
        if k.startswith("STKEEPER_"):
            monkeypatch.delenv(k)
    yield
