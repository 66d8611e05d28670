"""One PostgreSQL instance managed by the keeper: data directory, process, local access.

The postmaster is started directly as our child (``postgres -D PGDATA``), as Go Stolon
does, so we can tell a start that failed (the child exited) from one that is slow, and
tied to our lifetime with ``PR_SET_PDEATHSIG`` (see :mod:`stolon.postgres.pdeathsig`):
if the keeper is killed, even with SIGKILL, its postmaster gets a fast shutdown instead of
running on unmanaged. Stop, reload, promote and status go through ``pg_ctl``.

The keeper talks to the instance over a unix socket in ``socket_dir`` (for Go Stolon
``/tmp``), as the superuser (database ``postgres``) or as the replication user
(``replication=true``), matching the ``local`` lines of the generated pg_hba.conf.

Thread safety: lifecycle methods serialize on an internal lock; connections may be opened
from any thread (the keeper collects state concurrently with its state machine).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

from stolon.postgres import datadir, roles, safefs
from stolon.postgres.binaries import PgBinaries, PgVersion
from stolon.postgres.configcheck import conf_load_time, reload_rejections
from stolon.postgres.connection import Connection, ConnectParams, connect
from stolon.postgres.credentials import Credentials
from stolon.postgres.datadir import LocalRole
from stolon.postgres.errors import (
    CommandError,
    CommandTimeoutError,
    DataDirError,
    InstanceRunningError,
    NotReadyError,
    PostgresError,
    ReloadRejectedError,
    StartError,
    StopError,
)
from stolon.postgres.hba import build_hba, render_pg_hba
from stolon.postgres.parameters import TMP_CONF_NAME, render_postgresql_conf
from stolon.postgres.pdeathsig import POSTMASTER_PDEATHSIG, spawn_tied
from stolon.postgres.recovery import NO_RECOVERY, RECOVERY_SIGNAL, RecoveryConfig
from stolon.postgres.runas import (
    OSUser,
    child_environment,
    ensure_dir,
    ensure_reachable,
    run_command,
    secret_file,
)
from stolon.postgres.state import checkpoint

log = logging.getLogger(__name__)

STOP_MODES = ("smart", "fast", "immediate")
#: Linux ``sun_path`` is 108 bytes including the terminating NUL
MAX_SOCKET_PATH = 107
_POLL_INTERVAL = 0.1
_PG_CTL_EXTRA = 15.0  # slack on top of pg_ctl's own -t timeout
#: what a write-fenced server runs with (:meth:`Instance.set_write_fence`)
WRITE_FENCE_PARAMETERS = {"default_transaction_read_only": "on"}


@dataclass(frozen=True)
class InstanceConfig:
    """What the generated files must say: postgresql.conf parameters, pg_hba entries and
    the recovery configuration (signal file + recovery parameters)."""

    parameters: dict[str, str] = field(default_factory=dict)
    hba: tuple[str, ...] = ()
    recovery: RecoveryConfig = NO_RECOVERY


class Instance:
    """A PostgreSQL data directory and the postmaster running on it.

    ``port`` and ``socket_dir`` are fixed for the life of the object and always written
    into postgresql.conf (a ``port``/``unix_socket_directories`` in the parameters must
    agree).
    """

    def __init__(
        self,
        data_dir: Path | str,
        binaries: PgBinaries,
        os_user: OSUser,
        *,
        port: int,
        socket_dir: Path | str,
        superuser: Credentials,
        replication: Credentials,
        request_timeout: float = 10.0,
        start_timeout: float = 60.0,
        log_file: Path | str | None = None,
        death_signal: int | None = POSTMASTER_PDEATHSIG,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.binaries = binaries
        self.os_user = os_user
        self.port = int(port)
        self.socket_dir = Path(socket_dir).absolute()
        self.superuser = superuser
        self.replication = replication
        self.request_timeout = request_timeout
        self.start_timeout = start_timeout
        #: postgres stdout/stderr go here (appended); None: inherited from this process
        self.log_file = Path(log_file).absolute() if log_file is not None else None
        #: None disables PR_SET_PDEATHSIG (the postmaster then outlives us, as in Go)
        self.death_signal = death_signal
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise DataDirError(
                f"unix socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes;"
                " choose a shorter socket directory"
            )
        self._lock = threading.RLock()
        self._child: subprocess.Popen[bytes] | None = None
        self._config = InstanceConfig(hba=tuple(self.default_hba()))
        self._applied: InstanceConfig | None = None
        #: parameters forced over the wanted ones while the server is write-fenced
        #: (:meth:`set_write_fence`); not part of :attr:`config` nor :attr:`applied_config`
        self._fence_params: dict[str, str] = {}
        #: serializes rendering + writing the config files, so that a write fence set from
        #: another thread is never overwritten by a render that started before it
        self._write_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Instance({str(self.data_dir)!r}, port={self.port})"

    # ----------------------------------------------------------------- configuration

    def default_hba(self) -> list[str]:
        """pg_hba entries used until :meth:`set_config` is called (``all`` mode, md5 users)."""
        return build_hba(
            su_user=self.superuser.username,
            su_auth=self.superuser.auth_method,
            repl_user=self.replication.username,
            repl_auth=self.replication.auth_method,
        )

    @property
    def config(self) -> InstanceConfig:
        """The wanted configuration, written at the next start/reload/promote."""
        return self._config

    @property
    def applied_config(self) -> InstanceConfig | None:
        """The configuration written by the last successful start or reload (Go's ``cur*``)."""
        return self._applied

    def set_config(
        self,
        parameters: Mapping[str, str] | None = None,
        hba: Sequence[str] | None = None,
        recovery: RecoveryConfig | None = None,
    ) -> None:
        """Change the wanted configuration; None leaves that part as it is."""
        cfg = self._config
        if parameters is not None:
            cfg = replace(cfg, parameters=self._checked_parameters(parameters))
        if hba is not None:
            cfg = replace(cfg, hba=tuple(hba))
        if recovery is not None:
            cfg = replace(cfg, recovery=recovery)
        self._config = cfg

    def _checked_parameters(self, parameters: Mapping[str, str]) -> dict[str, str]:
        params = dict(parameters)
        forced = {"port": str(self.port), "unix_socket_directories": str(self.socket_dir)}
        for k, v in forced.items():
            if k in params and params[k] != v:
                raise ValueError(f"parameter {k}={params[k]!r} disagrees with the instance ({v})")
            params[k] = v
        return params

    def render_check(self) -> None:
        """Render the wanted configuration without writing it: raises (ValueError) what
        writing it would raise, so a caller can fail before an irreversible step."""
        cfg = self._config
        render_postgresql_conf(
            self._checked_parameters(cfg.parameters), recovery_parameters=cfg.recovery.conf_parameters
        )
        render_pg_hba(cfg.hba)

    def write_config_files(self, *, tmp_merged: bool = False) -> None:
        """Write postgresql.conf (or the temporary merged one), pg_hba.conf, signal files."""
        with self._write_lock:
            cfg = self._config
            datadir.write_config_files(
                self.data_dir,
                self.os_user,
                parameters={**self._checked_parameters(cfg.parameters), **self._fence_params},
                hba=cfg.hba,
                recovery=cfg.recovery,
                tmp_merged=tmp_merged,
            )

    @property
    def write_fenced(self) -> bool:
        return bool(self._fence_params)

    def set_write_fence(self, on: bool) -> None:
        """Make the server refuse writes (``on``), or lift that; without the instance lock,
        so that it can run while another thread waits in a long start, stop or reload.

        On: ``default_transaction_read_only`` is forced in postgresql.conf, the server
        reloads, and once a new session sees the setting every other client session is
        terminated (one in the middle of a write transaction would otherwise commit it).
        A client that explicitly asks for a read-write transaction can still write: this
        fences applications, not an adversary (docs/self-fencing.md). Off: the wanted
        configuration is written back and the server, if it runs, reloads (a stopped one
        reads the files when it starts). Raises :class:`PostgresError` when a running
        server can't be told.
        """
        with self._write_lock:
            self._fence_params = dict(WRITE_FENCE_PARAMETERS) if on else {}
        if not self.is_initialized():
            return
        self.write_config_files()
        try:
            self._pg_ctl("reload", timeout=self.request_timeout + _PG_CTL_EXTRA)
        except CommandError as e:
            if not on and datadir.read_postmaster_pid(self.data_dir) is None:
                return  # not running: it reads the files when it starts
            raise PostgresError(f"reload failed: {e}") from None
        if not on:
            return
        deadline = time.monotonic() + self.request_timeout
        while True:
            with self.connect_admin(timeout=self.request_timeout) as conn:
                row = conn.execute("SHOW default_transaction_read_only").fetchone()
                if row is not None and row[0] == "on":
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    )
                    return
            if time.monotonic() >= deadline:
                raise PostgresError(
                    f"the server did not reload its configuration within {self.request_timeout:g}s"
                )
            time.sleep(_POLL_INTERVAL)

    # ----------------------------------------------------------------- data directory

    def is_initialized(self) -> bool:
        return datadir.is_initialized(self.data_dir)

    def data_version(self) -> PgVersion:
        return datadir.data_version(self.data_dir)

    def local_role(self) -> LocalRole:
        return datadir.local_role(self.data_dir)

    def oldest_wal_file(self) -> str:
        return datadir.oldest_wal_file(self.data_dir)

    def initdb(
        self,
        *,
        locale: str | None = None,
        encoding: str | None = None,
        data_checksums: bool = False,
        no_sync: bool = False,
        timeout: float = 300.0,
    ) -> None:
        """Create a new cluster in the (missing or empty) data directory.

        The superuser password goes through a temporary ``--pwfile`` (0600, owned by the
        PostgreSQL user, deleted afterwards). On failure the data directory is removed.
        ``no_sync`` skips initdb's final fsync (tests only).
        """
        with self._lock:
            self.binaries.check_supported()
            if self.is_initialized():
                raise DataDirError(f"data directory {self.data_dir} is already initialized")
            datadir.create_data_dir(self.data_dir, self.os_user)
            method = str(self.superuser.auth_method)
            argv = [
                self.binaries.path("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser.username,
                f"--auth-local={method}",
                f"--auth-host={method}",
            ]
            if locale:
                argv += ["--locale", locale]
            if encoding:
                argv += ["--encoding", encoding]
            if data_checksums:
                argv.append("--data-checksums")
            if no_sync:
                argv.append("--no-sync")
            password = self.superuser.login_password
            log.info("initializing the database cluster in %s", self.data_dir)
            try:
                if password:
                    with secret_file(password + "\n", self.os_user, prefix="stolon-pwfile-") as pw:
                        self._run([*argv, "--pwfile", str(pw)], timeout, secrets=[password])
                else:
                    self._run(argv, timeout)
            except BaseException:
                datadir.remove_data_dir(self.data_dir)
                raise

    def remove_data_dir(self) -> None:
        """Delete PGDATA; refused while the instance runs."""
        with self._lock:
            if self.is_running():
                raise InstanceRunningError(f"cannot remove {self.data_dir}: the instance is running")
            datadir.remove_data_dir(self.data_dir)

    def prepare_socket_dir(self) -> None:
        """Create ``socket_dir`` (0700, the PostgreSQL user's) if missing.

        An existing directory is left as it is (it may be ``/tmp``) but must be writable
        by the PostgreSQL user.
        """
        d = self.socket_dir
        if not os.path.lexists(d):
            ensure_dir(d, self.os_user, 0o700)
            return
        ensure_reachable(d, self.os_user)
        st = d.stat()
        sticky_world = st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_ISVTX
        if not (st.st_uid == self.os_user.uid or sticky_world or self.os_user.uid == 0):
            raise DataDirError(f"socket directory {d} is not writable by OS user {self.os_user.name!r}")

    # ----------------------------------------------------------------- process

    def _run(self, argv: Sequence[str], timeout: float, *, secrets: Sequence[str | None] = ()) -> None:
        run_command(argv, user=self.os_user, timeout=timeout, secrets=secrets)

    def _pg_ctl(self, *args: str, timeout: float) -> None:
        argv = [self.binaries.path("pg_ctl"), *args, "-D", str(self.data_dir)]
        self._run(argv, timeout)

    def _child_alive(self) -> bool:
        if self._child is None:
            return False
        if self._child.poll() is None:
            return True
        log.info("postgres exited with status %s", self._child.returncode)
        self._child = None
        return False

    def _pg_ctl_status(self) -> bool:
        if datadir.read_postmaster_pid(self.data_dir) is None:
            return False
        res = run_command(
            [self.binaries.path("pg_ctl"), "status", "-D", str(self.data_dir)],
            user=self.os_user,
            timeout=self.request_timeout + _PG_CTL_EXTRA,
            check=False,
        )
        if res.returncode == 0:
            return True
        if res.returncode in (3, 4):  # not running / no accessible data directory
            return False
        raise PostgresError(f"pg_ctl status exited with status {res.returncode}: {res.stderr.strip()}")

    def is_running(self) -> bool:
        """Our postmaster child is alive, or ``pg_ctl status`` finds a postmaster."""
        with self._lock:
            if self._child_alive():
                return True
            return self._pg_ctl_status()

    @property
    def postmaster_pid(self) -> int | None:
        """The pid of the postmaster we started, if it still runs."""
        with self._lock:
            return self._child.pid if self._child_alive() and self._child else None

    def start(self, *, tmp_merged: bool = False, extra_params: Mapping[str, str] | None = None) -> None:
        """Write the config files and start the postmaster; return once it has written
        its postmaster.pid (it may not accept connections yet: see :meth:`wait_ready`).

        ``tmp_merged`` starts with ``-c config_file=stolon-temp-postgresql.conf`` (the
        existing postgresql.conf included first). ``extra_params`` become ``-c key=value``
        arguments: they override the files and cannot be changed by a reload.
        postgresql.auto.conf is replaced by a /dev/null symlink first (blocks ALTER SYSTEM
        and drops anything ``pg_basebackup -R`` or an old ALTER SYSTEM left there).
        """
        with self._lock:
            if self._child_alive() or self._pg_ctl_status():
                raise InstanceRunningError(f"postgres is already running on {self.data_dir}")
            if not self.is_initialized():
                raise DataDirError(f"data directory {self.data_dir} is not initialized")
            ensure_reachable(self.data_dir, self.os_user)
            self.prepare_socket_dir()
            self.write_config_files(tmp_merged=tmp_merged)
            datadir.block_alter_system(self.data_dir, self.os_user)

            argv = [self.binaries.path("postgres"), "-D", str(self.data_dir)]
            if tmp_merged:
                argv += ["-c", f"config_file={self.data_dir / TMP_CONF_NAME}"]
            for k, v in (extra_params or {}).items():
                argv += ["-c", f"{k}={v}"]
            log.info("starting database (%s)", self.data_dir)
            log.debug("postgres argv: %s", argv)
            self._child = self._spawn(argv)
            try:
                self._wait_pid_file(self._child)
            except BaseException:
                self._kill_child()
                raise
            self._applied = self._config

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        out = (
            os.fdopen(safefs.open_file(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
            if self.log_file is not None
            else None
        )
        try:
            kwargs = {
                "stdin": subprocess.DEVNULL,
                "stdout": out,
                "stderr": subprocess.STDOUT if out is not None else None,
                "env": child_environment(self.os_user),
                "cwd": "/",
                "close_fds": True,
                # a Ctrl-C on the keeper's terminal must not reach the postmaster directly
                "process_group": 0,
                **self.os_user.popen_kwargs(),
            }
            if self.death_signal is None:
                return subprocess.Popen(argv, **kwargs)
            return spawn_tied(argv, death_signal=self.death_signal, **kwargs)
        except (OSError, subprocess.SubprocessError) as e:
            raise StartError(f"cannot execute {argv[0]}: {e}") from None
        finally:
            if out is not None:
                out.close()

    def _wait_pid_file(self, child: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if datadir.read_postmaster_pid(self.data_dir) == child.pid:
                return
            rc = child.poll()
            if rc is not None:
                self._child = None
                raise StartError(f"postgres exited unexpectedly (status {rc}){self._log_tail()}")
            if time.monotonic() > deadline:
                raise StartError(
                    f"postgres did not write its pid file within {self.start_timeout:g}s{self._log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def _kill_child(self) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            self._child = None
            return
        child.send_signal(signal.SIGQUIT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        self._child = None

    def _log_tail(self, lines: int = 10) -> str:
        if self.log_file is None:
            return ""
        try:
            data = safefs.read_tail(self.log_file, 8192).decode(errors="replace")
        except (OSError, PostgresError):
            return ""
        tail = "\n".join(data.strip().splitlines()[-lines:])
        return f"; last log lines:\n{tail}" if tail else ""

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> bool:
        """``pg_ctl stop -w -m <mode>``; returns False if nothing was running."""
        if mode not in STOP_MODES:
            raise ValueError(f"stop mode must be one of {STOP_MODES}")
        with self._lock:
            if not self.is_running():
                return False
            log.info("stopping database (%s, mode %s)", self.data_dir, mode)
            try:
                self._pg_ctl(
                    "stop", "-w", "-t", str(math.ceil(timeout)), "-m", mode,
                    timeout=timeout + _PG_CTL_EXTRA,
                )  # fmt: skip
            except (CommandError, CommandTimeoutError) as e:
                raise StopError(f"failed to stop postgres on {self.data_dir}: {e}") from None
            if self._child is not None:
                try:
                    self._child.wait(timeout=_PG_CTL_EXTRA)
                except subprocess.TimeoutExpired:
                    raise StopError("postgres still running after pg_ctl stop") from None
                self._child = None
            return True

    def restart(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop (if running) and start with the regular postgresql.conf."""
        with self._lock:
            log.info("restarting database")
            self.stop(mode, timeout)
            self.start()

    def reload(self, confirm_timeout: float | None = None) -> None:
        """Rewrite the config files, make the postmaster re-read them (SIGHUP), and check
        that it did and applied them.

        A SIGHUP is asynchronous: the reload counts as done once ``pg_conf_load_time()``
        moved past its value from before the signal (within ``confirm_timeout``, default
        the request timeout). Then what the server could not apply from the files
        (:func:`~stolon.postgres.configcheck.reload_rejections`) raises
        :class:`ReloadRejectedError`, and :attr:`applied_config` keeps the configuration of
        the last successful start or reload: a rejected reload is never taken as applied.
        """
        wait = self.request_timeout if confirm_timeout is None else confirm_timeout
        with self._lock:
            log.info("reloading database configuration")
            self.write_config_files()
            with self.connect_admin() as conn:
                before = conf_load_time(conn)
            try:
                self._pg_ctl("reload", timeout=self.request_timeout + _PG_CTL_EXTRA)
            except CommandError as e:
                raise PostgresError(f"reload failed: {e}") from None
            deadline = time.monotonic() + wait
            while True:
                with self.connect_admin() as conn:
                    if conf_load_time(conn) != before:
                        problems = reload_rejections(conn)
                        break
                if time.monotonic() >= deadline:
                    raise ReloadRejectedError(f"the server did not reload its configuration within {wait:g}s")
                time.sleep(_POLL_INTERVAL)
            if problems:
                raise ReloadRejectedError(
                    "the server rejected the configuration files: " + "; ".join(problems), problems
                )
            self._applied = self._config

    def synchronous_standby_names_before_promotion(
        self, value: str, confirm_timeout: float | None = None
    ) -> bool:
        """On a running standby about to be promoted: put ``synchronous_standby_names`` in
        force now, everything else as last applied (its recovery configuration included).

        A standby ignores the setting; once promoted, the server then waits for those
        standbys from its first commit. Otherwise it runs with the standby's configuration
        (no synchronous standby) from ``pg_ctl promote`` until the configuration written
        after the ``CHECKPOINT`` is reloaded, and a client connected directly could commit
        without the synchronous guarantee. Returns False, changing nothing, when no
        configuration was applied by this process (nothing to keep) or the value is
        already in force. Raises what :meth:`reload` raises; the wanted configuration is
        left as the caller set it.
        """
        applied = self._applied
        if applied is None or applied.parameters.get("synchronous_standby_names", "") == value:
            return False
        params = dict(applied.parameters)
        params["synchronous_standby_names"] = value
        with self._lock:
            wanted = self._config
            self._config = replace(applied, parameters=self._checked_parameters(params))
            try:
                self.reload(confirm_timeout)
            finally:
                self._config = wanted
        return True

    def promote(self, *, wait: bool = True, timeout: float = 60.0, do_checkpoint: bool = True) -> None:
        """``pg_ctl promote``, then ``CHECKPOINT``, then rewrite the config files (the caller
        has set the recovery config to none).

        The checkpoint writes the new timeline into pg_control right away; without it a
        pg_rewind of the old primary against this one could see the same timeline and do
        nothing. It needs ``wait``. Nothing that can fail on the configuration sits between
        the promotion and the checkpoint: the files are rendered (checked) before
        ``pg_ctl promote`` and written after the checkpoint (the running server reads them
        at its next reload or start, not now).
        """
        with self._lock:
            try:
                self.render_check()
            except ValueError as e:
                raise PostgresError(f"not promoting: the configuration can't be written: {e}") from None
            log.info("promoting database")
            args = ["promote", "-w", "-t", str(math.ceil(timeout))] if wait else ["promote", "-W"]
            try:
                self._pg_ctl(*args, timeout=timeout + _PG_CTL_EXTRA)
            except (CommandError, CommandTimeoutError) as e:
                raise PostgresError(f"promote failed: {e}") from None
            if wait and do_checkpoint:
                with self.connect_admin() as conn:
                    checkpoint(conn)
            self.write_config_files()

    def wait_ready(self, timeout: float) -> None:
        """Wait until the instance accepts a superuser connection; fail early if our
        postmaster exits. ``timeout`` 0 waits forever (Go's semantics)."""
        deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        last: Exception | None = None
        while True:
            with self._lock:
                child = self._child
                if child is not None and child.poll() is not None:
                    self._child = None
                    raise StartError(
                        f"postgres exited (status {child.returncode}) while waiting for it{self._log_tail()}"
                    )
            remaining = deadline - time.monotonic()
            try:
                self.ping(timeout=max(0.5, min(self.request_timeout, remaining)))
                return
            except PostgresError as e:
                last = e
            if time.monotonic() >= deadline:
                raise NotReadyError(f"timeout waiting for db ready: {last}")
            time.sleep(0.2)

    def wait_recovery_done(self, timeout: float) -> None:
        """Wait for recovery.signal to disappear (end of a PITR); 0 waits forever."""
        deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        while os.path.lexists(self.data_dir / RECOVERY_SIGNAL):
            if time.monotonic() >= deadline:
                raise NotReadyError("timeout waiting for db recovery")
            time.sleep(0.5)

    def wait_writable(self, timeout: float) -> None:
        """Wait until the server leaves recovery (``pg_is_in_recovery()`` false). After a
        PITR, recovery.signal is gone before the end-of-recovery checkpoint: the server
        is still read-only for a moment. 0 waits forever."""
        deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        last: Exception | None = None
        while True:
            try:
                with self.connect_admin() as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
            except PostgresError as e:
                last = e
            if time.monotonic() >= deadline:
                raise NotReadyError(f"timeout waiting for the end of recovery{f': {last}' if last else ''}")
            time.sleep(0.2)

    def stop_stale_postmaster(self, timeout: float = 60.0) -> bool:
        """Stop a postmaster left by an earlier keeper on this data directory (keeper
        start-up). Fast shutdown, escalated to immediate if that fails. Returns whether one
        was found."""
        with self._lock:
            if self._child_alive():
                return False
            if not self._pg_ctl_status():
                return False
            pid = datadir.read_postmaster_pid(self.data_dir)
            log.warning("stopping postgres left running by an earlier process (pid %s)", pid)
            for mode in ("fast", "immediate"):
                try:
                    self._pg_ctl(
                        "stop", "-w", "-t", str(math.ceil(timeout)), "-m", mode,
                        timeout=timeout + _PG_CTL_EXTRA,
                    )  # fmt: skip
                    return True
                except (CommandError, CommandTimeoutError) as e:
                    log.error("stopping the stale postgres (mode %s) failed: %s", mode, e)
            raise StopError(f"cannot stop the postgres left running on {self.data_dir}")

    # ----------------------------------------------------------------- connections

    def admin_params(self) -> ConnectParams:
        return ConnectParams(
            host=str(self.socket_dir),
            port=self.port,
            user=self.superuser.username,
            password=self.superuser.login_password,
            dbname="postgres",
        )

    def replication_params(self) -> ConnectParams:
        return ConnectParams(
            host=str(self.socket_dir),
            port=self.port,
            user=self.replication.username,
            password=self.replication.login_password,
            dbname="replication",
            replication="true",
        )

    def connect_admin(self, timeout: float | None = None) -> AbstractContextManager[Connection]:
        """A superuser connection to database ``postgres`` over the unix socket."""
        return connect(self.admin_params(), timeout or self.request_timeout)

    def connect_replication(self, timeout: float | None = None) -> AbstractContextManager[Connection]:
        """A physical replication connection (IDENTIFY_SYSTEM, TIMELINE_HISTORY)."""
        return connect(self.replication_params(), timeout or self.request_timeout)

    def ping(self, timeout: float | None = None) -> None:
        with self.connect_admin(timeout) as conn:
            conn.execute("SELECT 1")

    def setup_roles(self) -> None:
        """Superuser password and replication role, after :meth:`initdb` and a start."""
        with self.connect_admin() as conn:
            roles.setup_roles(conn, self.superuser, self.replication)
