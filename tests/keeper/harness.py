"""Keeper integration harness: real keeper processes, real PostgreSQL, a real store, and a
small "sentinel" played by the test.

The fake sentinel does only what a test needs: it registers keepers from their published
info (boot UUID included, so keepers start their PostgreSQL), copies the reported
PostgreSQL state into the DB status, and lets the test assign DBs. It follows Go Stolon's
data model, so what the keeper sees is what a real sentinel would write.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from stolon.model import (
    DB,
    Cluster,
    ClusterData,
    ClusterSpec,
    DBSpec,
    FollowConfig,
    Keeper,
    KeeperInfo,
    KeeperStatus,
)
from stolon.model.cluster import PHASE_NORMAL
from stolon.netutil import free_port
from stolon.store import ClusterStore
from stolon.store.base import ConflictError, StoreConfig

SU = "stolon_su"
SU_PASSWORD = "su-secret-1"
REPL = "stolon_repl"
REPL_PASSWORD = "repl-secret-2"
PG_OS_USER = "postgres"


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


class Sandbox:
    """A directory under /tmp that the PostgreSQL OS user can reach."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="stk-", dir="/tmp"))
        os.chmod(self.path, 0o755)

    def dir(self, name: str) -> Path:
        d = self.path / name
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
        return d

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class KeeperProc:
    uid: str
    data_dir: Path
    port: int
    store: StoreConfig
    log_path: Path
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        s = self.store
        return [
            sys.executable, "-m", "stolon.cli.keeper",
            "--cluster-name", s.cluster_name, "--store-backend", s.backend,
            "--store-endpoints", ",".join(s.endpoints),
            "--uid", self.uid, "--data-dir", str(self.data_dir),
            "--pg-listen-address", "127.0.0.1", "--pg-port", str(self.port),
            "--pg-su-username", SU, "--pg-su-password", SU_PASSWORD,
            "--pg-repl-username", REPL, "--pg-repl-password", REPL_PASSWORD,
            "--pg-os-user", PG_OS_USER, "--log-level", "debug",
            *self.extra,
        ]  # fmt: skip

    def start(self) -> KeeperProc:
        assert self.proc is None or self.proc.poll() is not None
        out = open(self.log_path, "ab")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("STKEEPER_")}
        self.proc = subprocess.Popen(
            self.argv(), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        out.close()
        return self

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, ValueError, IndexError):
            return None

    def connect(
        self, user: str = SU, password: str = SU_PASSWORD, dbname: str = "postgres"
    ) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname,
            connect_timeout=5, autocommit=True,
        )  # fmt: skip

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(sql, args or None)
            return cur.fetchall() if cur.description is not None else []


class FakeSentinel:
    """Writes the cluster data for keepers under test, like a (very small) sentinel."""

    def __init__(self, store: ClusterStore) -> None:
        self.store = store

    def init(self, spec: ClusterSpec) -> ClusterData:
        cd = ClusterData.new(Cluster.new(spec))
        assert cd.cluster is not None
        cd.cluster.status.phase = PHASE_NORMAL
        self.store.put_cluster_data(cd)
        return cd

    def update(self, change: Callable[[ClusterData], None]) -> ClusterData:
        for _ in range(20):
            cd, rev = self.store.get_cluster_data()
            assert cd is not None
            change(cd)
            try:
                self.store.cas_cluster_data(cd, rev)
                return cd
            except ConflictError:
                time.sleep(0.05)
        raise AssertionError("could not update the cluster data")

    def infos(self) -> dict[str, KeeperInfo]:
        return self.store.keepers_info()

    def sync(self) -> ClusterData:
        """Register keepers that publish, copy their PostgreSQL state into DB status."""
        infos = self.infos()

        def change(cd: ClusterData) -> None:
            assert cd.cluster is not None and cd.keepers is not None and cd.dbs is not None
            for uid, info in infos.items():
                if info.cluster_uid != cd.cluster.uid:
                    continue
                k = cd.keepers.get(uid)
                if k is None:
                    k = cd.keepers[uid] = Keeper(uid=uid, generation=1, status=KeeperStatus())
                k.status.healthy = True
                k.status.boot_uuid = info.boot_uuid
                k.status.postgres_binary_version = info.postgres_binary_version
            for db in cd.dbs.values():
                assert db.spec is not None
                dbinfo = infos.get(db.spec.keeper_uid)
                ps = dbinfo.postgres_state if dbinfo else None
                if ps is None or ps.uid != db.uid:
                    db.status.healthy = False
                    continue
                db.status.listen_address = ps.listen_address
                db.status.port = ps.port
                db.status.current_generation = ps.generation
                db.status.healthy = ps.healthy
                if ps.healthy:
                    db.status.system_id = ps.system_id
                    db.status.timeline_id = ps.timeline_id
                    db.status.xlog_pos = ps.xlog_pos
                    db.status.timelines_history = ps.timelines_history
                    db.status.pg_parameters = ps.pg_parameters
                    db.status.synchronous_standbys = ps.synchronous_standbys

        return self.update(change)

    def wait_keeper(self, uid: str, timeout: float = 60, *, not_boot: str = "") -> str:
        """Wait until keeper ``uid`` publishes (with a boot UUID other than ``not_boot``,
        to wait for a restarted process) and register it; return its boot UUID."""

        def seen() -> str:
            info = self.infos().get(uid)
            if info is None or not info.boot_uuid or info.boot_uuid == not_boot:
                return ""
            cd = self.sync()
            k = (cd.keepers or {}).get(uid)
            return info.boot_uuid if k is not None and k.status.boot_uuid == info.boot_uuid else ""

        boot: str = wait_for(f"keeper {uid} registered", seen, timeout)
        return boot

    def set_db(
        self,
        db_uid: str,
        keeper_uid: str,
        *,
        role: str,
        init_mode: str = "none",
        follows: str | None = None,
        followers: list[str] | None = None,
        trace_context: dict[str, str] | None = None,
        **spec_fields: Any,
    ) -> None:
        """Create or change a DB; its generation is bumped when the spec changes.
        ``trace_context`` is stamped on the DB in the same write (as the sentinel does)."""

        def change(cd: ClusterData) -> None:
            assert cd.cluster is not None and cd.dbs is not None
            cs = cd.cluster.def_spec().d()
            spec = DBSpec(
                keeper_uid=keeper_uid,
                request_timeout=cs.request_timeout,
                max_standbys=cs.max_standbys,
                synchronous_replication=cs.synchronous_replication and role == "master",
                use_pgrewind=cs.use_pgrewind,
                additional_wal_senders=cs.additional_wal_senders,
                additional_replication_slots=(
                    list(cs.spec.additional_master_replication_slots or []) or None
                    if role == "master"
                    else None
                ),
                init_mode=init_mode,
                new_config=cs.spec.new_config,
                pitr_config=cs.spec.pitr_config,
                pg_parameters=cs.spec.pg_parameters,
                pg_hba=cs.spec.pg_hba,
                role=role,
                follow_config=FollowConfig(type="internal", dbuid=follows) if follows else None,
                followers=sorted(followers or []),
                include_previous_config=False,
                synchronous_standbys=None,
                external_synchronous_standbys=None,
            )
            for k, v in spec_fields.items():
                setattr(spec, k, v)
            old = cd.dbs.get(db_uid)
            if old is None:
                cd.dbs[db_uid] = DB(uid=db_uid, generation=1, spec=spec)
            elif old.spec != spec:
                old.spec = spec
                old.generation += 1
            if trace_context is not None:
                cd.dbs[db_uid].trace_context = dict(trace_context)
            if role == "master":
                cd.cluster.status.master = db_uid

        self.update(change)

    def drop_db(self, db_uid: str) -> None:
        def change(cd: ClusterData) -> None:
            assert cd.dbs is not None
            cd.dbs.pop(db_uid, None)

        self.update(change)

    def wait_converged(self, db_uid: str, timeout: float = 90) -> DB:
        def converged() -> DB | None:
            cd = self.sync()
            db = (cd.dbs or {}).get(db_uid)
            if db is not None and db.status.healthy and db.status.current_generation == db.generation:
                return db
            return None

        result: DB = wait_for(f"db {db_uid} converged", converged, timeout)
        return result

    def spec(self, **fields: Any) -> None:
        def change(cd: ClusterData) -> None:
            assert cd.cluster is not None and cd.cluster.spec is not None
            for k, v in fields.items():
                setattr(cd.cluster.spec, k, v)

        self.update(change)


@dataclass
class TestCluster:
    __test__ = False  # not a pytest test class

    """A sandbox, a store, keepers and the fake sentinel for one test."""

    sandbox: Sandbox
    store_config: StoreConfig
    store: ClusterStore
    sentinel: FakeSentinel
    keepers: dict[str, KeeperProc] = field(default_factory=dict)
    #: ``--pg-bin-path`` of every keeper ("": found as the keeper finds them)
    pg_bin_path: str = ""

    def keeper(self, uid: str, *extra: str, port: int | None = None) -> KeeperProc:
        bin_path = ["--pg-bin-path", self.pg_bin_path] if self.pg_bin_path else []
        k = KeeperProc(
            uid=uid,
            data_dir=self.sandbox.path / uid,
            port=port or free_port(),
            store=self.store_config,
            log_path=self.sandbox.path / f"{uid}.log",
            extra=[*bin_path, *extra],
        )
        self.keepers[uid] = k
        return k

    def close(self) -> Iterator[None] | None:
        for k in self.keepers.values():
            try:
                k.stop(timeout=60)
            except subprocess.TimeoutExpired:
                k.kill()
        # a keeper's death stops its postgres; make sure none is left anyway
        for k in self.keepers.values():
            pid = k.postmaster_pid()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGQUIT)
                except ProcessLookupError:
                    pass
        self.store.close()
        self.sandbox.cleanup()
        return None
