"""Running PostgreSQL tools as the unprivileged OS user that owns the data directory.

PostgreSQL (``postgres``, ``initdb``, ``pg_ctl``, ``pg_rewind``) refuses to run as root, and
every file in PGDATA must belong to the user the server runs as. When this process is root,
children drop privileges to :class:`OSUser` before ``exec`` (``subprocess``'s
``user``/``group``/``extra_groups``, i.e. setgroups + setregid + setreuid in the child);
otherwise they run as ourselves.

Children get a cleaned environment: ``PG*`` variables (``PGPASSWORD``, ``PGHOST``, ``PGDATA``
would silently change what the tools do), the stolon flag variables (``STKEEPER_*``... may hold
passwords) and anything whose name mentions a password, secret or token are dropped.

Every command has a timeout; the timeout error names the command. Commands never carry
passwords in their argv: passwords travel through :func:`secret_file` files (0600, owned by
the PostgreSQL user, removed afterwards) or through the libpq protocol.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stolon.postgres import safefs
from stolon.postgres.errors import (
    BinaryNotFoundError,
    CommandError,
    CommandTimeoutError,
    DataDirError,
    OSUserError,
)

log = logging.getLogger(__name__)

DEFAULT_PG_OS_USER = "postgres"
REDACTED = "********"

_DROPPED_ENV_PREFIXES = ("PG", "STKEEPER_", "STSENTINEL_", "STPROXY_", "STOLONCTL_")
_DROPPED_ENV_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN")
_OUTPUT_TAIL_LINES = 20
_OUTPUT_TAIL_CHARS = 4000


@dataclass(frozen=True)
class OSUser:
    """An OS account PostgreSQL processes run as."""

    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> OSUser:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise OSUserError(f"OS user {name!r} does not exist") from None
        return cls(
            name=pw.pw_name,
            uid=pw.pw_uid,
            gid=pw.pw_gid,
            home=pw.pw_dir,
            groups=tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid)))),
        )

    @classmethod
    def current(cls) -> OSUser:
        """The effective user of this process (it may lack a passwd entry in containers)."""
        uid = os.geteuid()
        gid = os.getegid()
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            return cls(
                name=str(uid),
                uid=uid,
                gid=gid,
                home=os.environ.get("HOME", "/"),
                groups=tuple(sorted(set(os.getgroups()) | {gid})),
            )
        return cls(
            name=pw.pw_name,
            uid=uid,
            gid=gid,
            home=pw.pw_dir,
            groups=tuple(sorted(set(os.getgroups()) | {gid})),
        )

    @property
    def switches(self) -> bool:
        """True when children must change identity to become this user (we are root)."""
        return os.geteuid() == 0 and self.uid != 0

    def popen_kwargs(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that make a child run as this user."""
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def chown(self, path: Path | str) -> None:
        """Give ``path`` to this user (only when we are root and it is another user).

        Never follows a link at ``path`` (the link itself is changed); for directories
        others may write, use :mod:`stolon.postgres.safefs` instead.
        """
        if self.switches:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def can_traverse(self, path: Path) -> bool:
        """Whether this user may search (``x``) directory ``path``, judged from mode bits."""
        if self.uid == 0:
            return True
        st = path.stat()
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid in self.groups:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def resolve_pg_os_user(name: str | None = None) -> OSUser:
    """The user PostgreSQL will run as.

    As root: ``name`` (default ``postgres``), which must not be root itself. As any other
    user: ourselves, since we cannot switch; a different ``name`` is logged and ignored.
    """
    if os.geteuid() == 0:
        user = OSUser.lookup(name or DEFAULT_PG_OS_USER)
        if user.uid == 0:
            raise OSUserError(
                f"OS user {user.name!r} is root: PostgreSQL refuses to run as root, "
                "choose an unprivileged user"
            )
        return user
    current = OSUser.current()
    if name and name != current.name:
        log.warning(
            "not running as root: PostgreSQL runs as the current user %r, not %r",
            current.name,
            name,
        )
    return current


def ensure_reachable(path: Path, user: OSUser) -> None:
    """Raise :class:`DataDirError` if ``user`` cannot traverse every existing ancestor."""
    path = path.absolute()
    for parent in reversed(path.parents):
        if parent.exists() and not user.can_traverse(parent):
            mode = stat.S_IMODE(parent.stat().st_mode)
            raise DataDirError(
                f"{path} is not reachable by OS user {user.name!r} (uid {user.uid}): "
                f"directory {parent} has mode {mode:04o}"
            )


def ensure_dir(path: Path, owner: OSUser, mode: int = 0o700) -> None:
    """Create ``path`` (not its parents) if missing; make it ``owner``'s with ``mode``.

    Link-safe (:func:`stolon.postgres.safefs.make_dir`): a symbolic link at ``path`` is
    refused, and owner and mode are set through a descriptor of the directory created.
    """
    ensure_reachable(path.parent, owner)
    safefs.make_dir(path, owner, mode)


def child_environment(user: OSUser | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a PostgreSQL tool: ours, cleaned, with the user's HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROPPED_ENV_PREFIXES)
        and not any(word in k.upper() for word in _DROPPED_ENV_WORDS)
    }
    if user is not None and user.switches:
        env["HOME"] = user.home
        env["USER"] = user.name
        env["LOGNAME"] = user.name
    if extra:
        env.update(extra)
    return env


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every non-empty secret replaced by asterisks."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def output_tail(text: str) -> str:
    """The last lines of a tool's output, short enough to go into an error message."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-_OUTPUT_TAIL_LINES:])
    if len(tail) > _OUTPUT_TAIL_CHARS:
        tail = "..." + tail[-_OUTPUT_TAIL_CHARS:]
    return tail


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_command(
    argv: Sequence[str],
    *,
    user: OSUser | None,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str = "/",
    secrets: Sequence[str | None] = (),
    check: bool = True,
) -> CommandResult:
    """Run ``argv`` as ``user`` (None: ourselves), capture its output, bound it in time.

    The child gets its own process group; on timeout the whole group is killed and
    :class:`CommandTimeoutError` names the command. With ``check`` a non-zero exit raises
    :class:`CommandError` quoting the tail of stderr (or stdout). ``secrets`` are scrubbed
    from any output that ends up in an exception or a log line.
    """
    argv = [str(a) for a in argv]
    shown = [scrub(a, secrets) for a in argv]  # argv never holds secrets; belt and braces
    kwargs = user.popen_kwargs() if user is not None else {}
    log.debug("running command %s (timeout %gs)", shown, timeout)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=child_environment(user, env),
            cwd=cwd,
            process_group=0,
            close_fds=True,
            **kwargs,
        )
    except (FileNotFoundError, PermissionError) as e:
        raise BinaryNotFoundError(f"cannot execute {argv[0]}: {e.strerror}") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        raise CommandTimeoutError(shown, timeout, scrub(output_tail(stderr or stdout), secrets)) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    stdout = scrub(stdout, secrets)
    stderr = scrub(stderr, secrets)
    if stderr.strip():
        log.debug("%s stderr: %s", Path(argv[0]).name, stderr.strip())
    if check and proc.returncode != 0:
        raise CommandError(shown, proc.returncode, output_tail(stderr or stdout))
    return CommandResult(tuple(shown), proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def secret_file(content: str, owner: OSUser, *, prefix: str, directory: Path | None = None) -> Iterator[Path]:
    """A temporary file holding ``content`` (a password file), mode 0600, owned by ``owner``.

    It is created with ``mkstemp`` (0600 from the start, safe in a sticky ``/tmp``) and is
    removed when the block ends, whatever happens.
    """
    fd, name = tempfile.mkstemp(prefix=prefix, dir=directory)
    path = Path(name)
    try:
        try:
            if owner.switches:
                os.fchown(fd, owner.uid, owner.gid)
            os.write(fd, content.encode())
        finally:
            os.close(fd)
        yield path
    finally:
        path.unlink(missing_ok=True)
