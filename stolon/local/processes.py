"""Child processes of a local cluster: started in their own sessions, logged to files,
stopped in order.

Each child runs in a new session (``start_new_session``), so a Ctrl-C in the terminal
reaches only the supervisor, which then stops the children in a deliberate order instead
of all at once (which would trigger failovers during shutdown).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    pid_file: Path | None = None

    def start(self) -> ManagedProcess:
        if self.alive:
            return self
        env = dict(os.environ)
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        if self.pid_file is not None:
            self.pid_file.write_text(f"{self.proc.pid}\n")
        return self

    @property
    def pid(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        return None

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def signal(self, sig: int) -> None:
        pid = self.pid
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait; SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._clear_pid_file()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._clear_pid_file()

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def output(self, tail: int | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if tail is None else text[-tail:]

    def _clear_pid_file(self) -> None:
        """Remove the pid file if it still names our child (``stolonctl local start`` in
        another terminal may have started a new process under the same name)."""
        if self.pid_file is None or self.proc is None:
            return
        try:
            named = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if named == self.proc.pid:
            self.pid_file.unlink(missing_ok=True)


def pid_file_alive(pid_file: Path) -> bool:
    """Whether the process named in ``pid_file`` runs (a stale file is removed)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    return True


def signal_pid_file(pid_file: Path, sig: int, timeout: float = 60.0) -> bool:
    """Signal the process named in ``pid_file`` (from another terminal) and wait for it to
    exit. Returns whether a process was signalled."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, sig)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid_file.unlink(missing_ok=True)
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    return True


def kill_leftovers(under: Path) -> list[int]:
    """SIGKILL every process whose working directory is ``under`` or below it, and return
    their pids: the PostgreSQL children a killed postmaster left behind (a checkpointer
    can outlive its postmaster for a while, retrying writes into a data directory that is
    about to be removed). Processes we may not inspect are skipped."""
    root = str(under.absolute())
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        cwd = cwd.removesuffix(" (deleted)")
        if cwd == root or cwd.startswith(root + "/"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    return killed
