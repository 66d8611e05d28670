"""The embedded store: one SQLite file shared by every process of a single-machine cluster.

It needs nothing installed, which makes it the default of the local-cluster command, and it
is a real store: several processes (keepers, sentinels, proxies, stolonctl) open the same
file and coordinate through it.

- WAL journal with ``synchronous=FULL``: a committed write survives a crash of the writer.
- Every write runs in a ``BEGIN IMMEDIATE`` transaction, so compare-and-swap, create-only
  and leadership-conditioned writes are atomic across processes.
- Revisions come from one counter that never goes back, so a cluster data key deleted and
  written again never reuses a revision (no ABA on compare-and-swap).
- TTLs and leases are measured on ``CLOCK_BOOTTIME``, which every process on the machine
  shares and which a wall-clock step (NTP, ``date -s``) can't move; each row also carries
  the kernel boot id, so after a reboot every lease counts as expired.
- The leader is one row per cluster: holder session, term and expiry. A leadership token
  is (session, term); a conditioned write checks it in the same transaction.
- Change notification: every write also bumps a per-kind counter in ``changes`` in the same
  transaction. A :class:`EmbeddedWatch` looks at SQLite's ``PRAGMA data_version`` (a counter in
  shared memory that moves when another connection commits: no read of any table), and reads
  the small ``changes`` table only when it moved. It looks when a writer signals a change of
  a kind it watches: after each commit the writer touches ``<db>-notify-<kind>`` next to the
  database, which wakes the watches through inotify (:mod:`stolon.store.inotify`), and every
  :data:`NOTIFIED_WATCH_POLL` seconds anyway. Without inotify it polls every
  :data:`WATCH_POLL` seconds. A daemon at rest then wakes only for what it watches: a keeper
  or a proxy (cluster data) not for every heartbeat of the others.

Endpoint: the database file path (``--store-endpoints /var/lib/stolon/store.db``, or a
``file://`` / ``sqlite://`` URL of one).

The file holds the cluster spec (commands, parameters) and is created mode 0600; SQLite gives
its ``-wal`` and ``-shm`` files the database file's mode. A file we own with a looser mode is
tightened to 0600 when opened (with a warning). So every process of a cluster must run as
the same OS user (or root).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import stolon
from stolon.logonce import OncePerChange
from stolon.store.backends import StoreBackendSpec
from stolon.store.base import (
    ALL_CHANGES,
    DEFAULT_ELECTION_TTL,
    INFO_CHANGES,
    ChangeKind,
    Changes,
    ConflictError,
    Election,
    InfoKind,
    Leadership,
    MalformedDataError,
    NotLeaderError,
    PollingElection,
    Revision,
    Store,
    StoreConfig,
    StoreConfigError,
    StoreError,
    UnreachableError,
    Versioned,
    Watch,
)
from stolon.store.inotify import DirectoryNotifier, touch

log = logging.getLogger(__name__)

BACKEND_NAME = "embedded"
#: How often a watch looks at SQLite's change counter (seconds) without inotify.
WATCH_POLL = 0.025
#: With inotify: how often a watch looks anyway, for writers that do not signal (an older
#: version during an upgrade, a manual edit) and should a signal be lost (seconds).
NOTIFIED_WATCH_POLL = 0.5


def notify_path(path: Path, kind: ChangeKind) -> str:
    """The file writers touch after a commit that changed ``kind``."""
    return f"{path}-notify-{kind.value}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS revision_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT OR IGNORE INTO revision_counter (id, value) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS cluster_data (
    cluster TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS infos (
    cluster TEXT NOT NULL,
    kind TEXT NOT NULL,
    uid TEXT NOT NULL,
    data BLOB NOT NULL,
    expires_at REAL NOT NULL,
    boot_id TEXT NOT NULL,
    PRIMARY KEY (cluster, kind, uid)
);
CREATE TABLE IF NOT EXISTS changes (
    cluster TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (cluster, kind)
);
CREATE TABLE IF NOT EXISTS leader (
    cluster TEXT PRIMARY KEY,
    candidate TEXT NOT NULL,
    session TEXT NOT NULL,
    term INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    boot_id TEXT NOT NULL
);
"""


def boottime() -> float:
    """Seconds on CLOCK_BOOTTIME: shared by all processes, immune to wall-clock steps."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _read_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: fall back to a per-boot approximation
        return f"boot-{int(time.time() - time.monotonic())}"


BOOT_ID = _read_boot_id()

#: Rows that can't be read (one log line per row and change, not per read).
_bad_rows = OncePerChange(log)


def _as_bytes(value: object) -> bytes | None:
    """A ``data`` column as bytes: a BLOB, or TEXT (what a hand-made ``UPDATE ... SET data =
    '{...}'`` stores) as UTF-8. SQLite columns are dynamically typed, so any other SQL
    value (INTEGER, REAL, NULL) may be there: ``None`` (``bytes(n)`` of an integer would be
    n zero bytes)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogateescape")
    return None


def _sql_type(value: object) -> str:
    return {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}.get(type(value), "NULL")


def database_path(endpoints: Sequence[str]) -> Path:
    """The SQLite file named by ``--store-endpoints``."""
    if not endpoints or not endpoints[0].strip():
        raise StoreConfigError(
            "--store-endpoints is required with --store-backend embedded:"
            " give the path of the store database file (e.g. /var/lib/stolon/store.db)"
        )
    if len(endpoints) > 1:
        raise StoreConfigError(
            "--store-endpoints: the embedded store takes one database file path, got"
            f" {len(endpoints)} endpoints"
        )
    raw = endpoints[0].strip()
    for scheme in ("sqlite://", "file://"):
        if raw.startswith(scheme):
            raw = raw[len(scheme) :]
            break
    if "://" in raw:
        raise StoreConfigError(
            f"--store-endpoints: {endpoints[0]!r} is a URL; the embedded store takes a file path"
        )
    return Path(raw).expanduser().absolute()


#: The database file and the files SQLite keeps next to it in WAL mode.
DB_FILE_SUFFIXES = ("", "-wal", "-shm")


def _private_files(path: Path) -> None:
    """Create the database file 0600 if missing (before SQLite creates it with the umask),
    and take group/other access away from it and its -wal/-shm files if we own them."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    except OSError as e:
        raise StoreConfigError(f"cannot create the embedded store {str(path)!r}: {e.strerror}") from None
    for suffix in DB_FILE_SUFFIXES:
        p = Path(f"{path}{suffix}")
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode) or not mode & 0o077:
            continue
        if st.st_uid == os.geteuid():
            os.chmod(p, mode & 0o700)
            log.warning("embedded store file %s had mode %04o: changed to %04o", p, mode, mode & 0o700)
        else:
            log.warning(
                "embedded store file %s has mode %04o and belongs to uid %d: others can read the"
                " cluster spec; run chmod 600 %s",
                p,
                mode,
                st.st_uid,
                p,
            )


class EmbeddedStore(Store):
    """A store in one SQLite file. Thread-safe (one connection behind a lock)."""

    def __init__(self, config: StoreConfig, *, clock: Callable[[], float] = boottime) -> None:
        super().__init__(config)
        self.path = database_path(config.endpoints)
        self.cluster = config.base_path()
        self._clock = clock
        self._lock = threading.RLock()
        #: kinds of change of the transaction in progress, signalled after its commit
        self._bumped: set[ChangeKind] = set()
        if not self.path.parent.is_dir():
            raise StoreConfigError(
                f"--store-endpoints: directory {str(self.path.parent)!r} of the embedded store"
                " does not exist: create it first"
            )
        _private_files(self.path)
        try:
            self._db = sqlite3.connect(
                self.path,
                timeout=config.timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            self._db.execute(f"PRAGMA busy_timeout={int(config.timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._lock:
                self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        except sqlite3.Error as e:
            raise StoreConfigError(f"cannot open the embedded store {str(self.path)!r}: {e}") from None

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._bumped.clear()
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as e:
                raise self._error(e) from None
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._bumped.clear()
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._db.execute("ROLLBACK")
                self._bumped.clear()
                raise self._error(e) from None
            for kind in sorted(self._bumped):
                touch(notify_path(self.path, kind))
            self._bumped.clear()

    def _error(self, e: sqlite3.Error) -> StoreError:
        if "locked" in str(e) or "busy" in str(e):
            return UnreachableError(
                f"embedded store {str(self.path)!r} stayed locked for more than"
                f" {self.config.timeout:g}s (--store-timeout): {e}"
            )
        return StoreError(f"embedded store {str(self.path)!r}: {e}")

    def _next_revision(self, db: sqlite3.Connection) -> int:
        db.execute("UPDATE revision_counter SET value = value + 1 WHERE id = 1")
        (value,) = db.execute("SELECT value FROM revision_counter WHERE id = 1").fetchone()
        return int(value)

    def _bump(self, db: sqlite3.Connection, kind: ChangeKind) -> None:
        self._bumped.add(kind)
        db.execute(
            "INSERT INTO changes (cluster, kind, seq) VALUES (?, ?, 1)"
            " ON CONFLICT (cluster, kind) DO UPDATE SET seq = seq + 1",
            (self.cluster, kind.value),
        )

    def _alive(self, expires_at: float, boot_id: str) -> bool:
        return boot_id == BOOT_ID and expires_at > self._clock()

    # -- cluster data -----------------------------------------------------------------------
    def get_cluster_data(self) -> Versioned | None:
        with self._tx(write=False) as db:
            row = db.execute(
                "SELECT data, revision FROM cluster_data WHERE cluster = ?", (self.cluster,)
            ).fetchone()
        if row is None:
            return None
        data, revision = _as_bytes(row[0]), row[1]
        if data is None:
            raise MalformedDataError(
                f"embedded store: the cluster data column holds an SQL {_sql_type(row[0])}, not a document"
            )
        if not isinstance(revision, int):
            raise MalformedDataError(
                f"embedded store: the cluster data revision holds an SQL {_sql_type(revision)},"
                " not an INTEGER"
            )
        return Versioned(data, revision)

    def _write(self, db: sqlite3.Connection, data: bytes) -> int:
        rev = self._next_revision(db)
        db.execute(
            "INSERT INTO cluster_data (cluster, data, revision) VALUES (?, ?, ?)"
            " ON CONFLICT (cluster) DO UPDATE SET data = excluded.data, revision = excluded.revision",
            (self.cluster, data, rev),
        )
        self._bump(db, ChangeKind.CLUSTER_DATA)
        return rev

    def _current_revision(self, db: sqlite3.Connection) -> object:
        """The stored revision (``None`` if there is no cluster data); compared, never
        converted, so a malformed one only makes a compare-and-swap fail."""
        row = db.execute("SELECT revision FROM cluster_data WHERE cluster = ?", (self.cluster,)).fetchone()
        return None if row is None else row[0]

    def put_cluster_data(self, data: bytes) -> Revision:
        with self._tx() as db:
            return self._write(db, data)

    def create_cluster_data(self, data: bytes) -> Revision:
        with self._tx() as db:
            if self._current_revision(db) is not None:
                raise ConflictError("cluster data already exists")
            return self._write(db, data)

    def cas_cluster_data(
        self, data: bytes, revision: Revision, *, leadership: Leadership | None = None
    ) -> Revision:
        with self._tx() as db:
            if leadership is not None and not self._holds(db, leadership.token):
                raise NotLeaderError(f"{leadership.candidate} no longer holds the sentinel leadership")
            current = self._current_revision(db)
            if current is None or current != revision:
                raise ConflictError(f"cluster data changed (revision {current}, expected {revision})")
            return self._write(db, data)

    def delete_cluster_data(self) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM cluster_data WHERE cluster = ?", (self.cluster,)).rowcount:
                self._bump(db, ChangeKind.CLUSTER_DATA)

    # -- infos ------------------------------------------------------------------------------
    def put_info(self, kind: InfoKind, uid: str, data: bytes, ttl: float) -> None:
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO infos (cluster, kind, uid, data, expires_at, boot_id) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (cluster, kind, uid) DO UPDATE SET data = excluded.data,"
                " expires_at = excluded.expires_at, boot_id = excluded.boot_id",
                (self.cluster, kind.value, uid, data, now + ttl, BOOT_ID),
            )
            db.execute(
                "DELETE FROM infos WHERE cluster = ? AND kind = ? AND (expires_at <= ? OR boot_id != ?)",
                (self.cluster, kind.value, now, BOOT_ID),
            )
            self._bump(db, INFO_CHANGES[kind])

    def get_infos(self, kind: InfoKind) -> dict[str, bytes]:
        """Unexpired infos; a row whose columns hold SQL values of the wrong type is skipped
        (and logged once per change)."""
        with self._tx(write=False) as db:
            rows = db.execute(
                "SELECT uid, data, expires_at, boot_id FROM infos WHERE cluster = ? AND kind = ?",
                (self.cluster, kind.value),
            ).fetchall()
        out: dict[str, bytes] = {}
        seen: set[str] = set()
        prefix = f"{self.path}:{self.cluster}:{kind.value}:"
        for uid, data, exp, boot in rows:
            key = prefix + repr(uid)
            raw = _as_bytes(data)
            wrong = [
                f"{column} is an SQL {_sql_type(value)}"
                for column, value, ok in (
                    ("uid", uid, isinstance(uid, str)),
                    ("data", data, raw is not None),
                    ("expires_at", exp, isinstance(exp, int | float)),
                    ("boot_id", boot, isinstance(boot, str)),
                )
                if not ok
            ]
            problem = ", ".join(wrong)
            if problem:
                seen.add(key)
                _bad_rows.report(
                    key,
                    problem,
                    f"embedded store: ignoring the {kind.value} info row {uid!r}: {problem}",
                )
                continue
            assert isinstance(uid, str) and raw is not None and isinstance(boot, str)
            if self._alive(float(exp), boot):
                out[uid] = raw
        _bad_rows.clear_missing(prefix, seen)
        return out

    # -- election ---------------------------------------------------------------------------
    def _holds(self, db: sqlite3.Connection, token: Any) -> bool:
        session, term = token
        row = db.execute(
            "SELECT session, term, expires_at, boot_id FROM leader WHERE cluster = ?",
            (self.cluster,),
        ).fetchone()
        return (
            row is not None
            and row[0] == session
            and row[1] == term
            and isinstance(row[2], int | float)
            and self._alive(float(row[2]), str(row[3]))
        )

    def _acquire_or_renew(self, candidate: str, session: str, ttl: float) -> tuple[str, int] | None:
        with self._tx() as db:
            now = self._clock()
            row = db.execute(
                "SELECT session, term, expires_at, boot_id FROM leader WHERE cluster = ?",
                (self.cluster,),
            ).fetchone()
            valid = row is not None and isinstance(row[1], int) and isinstance(row[2], int | float)
            if row is not None and valid and self._alive(float(row[2]), str(row[3])):
                if row[0] != session:
                    return None
                term = int(row[1])
            else:
                # none, expired, or a malformed row (then it is replaced)
                term = (int(row[1]) if valid and row is not None else 0) + 1
                self._bump(db, ChangeKind.LEADER)
            db.execute(
                "INSERT INTO leader (cluster, candidate, session, term, expires_at, boot_id)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cluster) DO UPDATE SET"
                " candidate = excluded.candidate, session = excluded.session, term = excluded.term,"
                " expires_at = excluded.expires_at, boot_id = excluded.boot_id",
                (self.cluster, candidate, session, term, now + ttl, BOOT_ID),
            )
            return session, term

    def _release(self, session: str) -> None:
        with self._tx() as db:
            if db.execute(
                "DELETE FROM leader WHERE cluster = ? AND session = ?", (self.cluster, session)
            ).rowcount:
                self._bump(db, ChangeKind.LEADER)

    def election(self, candidate: str, ttl: float = DEFAULT_ELECTION_TTL) -> Election:
        return EmbeddedElection(self, candidate, ttl)

    def get_leader(self) -> str | None:
        with self._tx(write=False) as db:
            row = db.execute(
                "SELECT candidate, expires_at, boot_id FROM leader WHERE cluster = ?",
                (self.cluster,),
            ).fetchone()
        if row is None or not isinstance(row[1], int | float) or not self._alive(float(row[1]), str(row[2])):
            return None
        return str(row[0])

    def watch(self, kinds: frozenset[ChangeKind] = ALL_CHANGES) -> Watch:
        return EmbeddedWatch(self, kinds)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class EmbeddedWatch(Watch):
    """See the module docstring. One connection of its own (``data_version`` only moves
    for commits made through other connections, which is every writer, ours included)."""

    native = True

    def __init__(self, store: EmbeddedStore, kinds: frozenset[ChangeKind]) -> None:
        self.store = store
        self.kinds = kinds
        self._closed = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._version: int | None = None
        self._seqs: dict[str, int] = {}
        self._broken = False
        self._notifier: DirectoryNotifier | None = None
        try:
            # Before the first read of the change counter: no signal after it is missed.
            self._notifier = DirectoryNotifier(
                store.path.parent, [os.path.basename(notify_path(store.path, k)) for k in kinds]
            )
        except OSError as e:
            log.debug("embedded store watch: no inotify (%s): polling every %gs", e, WATCH_POLL)
        try:
            self._connect()
        except sqlite3.Error as e:
            log.warning("embedded store watch: %s", e)
            self._broken = True

    def _connect(self) -> None:
        db = sqlite3.connect(
            self.store.path, timeout=self.store.config.timeout, isolation_level=None, check_same_thread=False
        )
        self._db = db
        self._version = self._data_version()
        self._seqs = self._read_seqs()

    def _data_version(self) -> int:
        assert self._db is not None
        (value,) = self._db.execute("PRAGMA data_version").fetchone()
        return int(value)

    def _read_seqs(self) -> dict[str, int]:
        assert self._db is not None
        rows = self._db.execute("SELECT kind, seq FROM changes WHERE cluster = ?", (self.store.cluster,))
        return {str(k): int(v) for k, v in rows.fetchall()}

    def wait(self, timeout: float) -> Changes:
        deadline = time.monotonic() + timeout
        while not self._closed.is_set():
            try:
                if self._broken:
                    self._connect()
                    self._broken = False
                    return Changes(resync=True)
                version = self._data_version()
                if version != self._version:
                    self._version = version
                    seqs = self._read_seqs()
                    changed = frozenset(
                        k for k in self.kinds if seqs.get(k.value, 0) != self._seqs.get(k.value, 0)
                    )
                    self._seqs = seqs
                    if changed:
                        return Changes(changed)
            except sqlite3.Error as e:
                if not self._broken:
                    log.warning("embedded store watch: %s", e)
                self._broken = True
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._notifier is not None and not self._broken:
                self._notifier.wait(min(NOTIFIED_WATCH_POLL, left))
            else:
                self._closed.wait(min(WATCH_POLL, left))
        return Changes()

    def close(self) -> None:
        self._closed.set()
        if self._notifier is not None:
            self._notifier.close()
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass


class EmbeddedElection(PollingElection):
    """Leadership as a lease row; a fresh session id per candidacy."""

    def __init__(self, store: EmbeddedStore, candidate: str, ttl: float) -> None:
        super().__init__(candidate, ttl)
        self._store = store
        self._session = secrets.token_hex(8)

    def _acquire_or_renew(self, current: Any | None) -> Any | None:
        return self._store._acquire_or_renew(self.candidate, self._session, self.ttl)

    def _release(self, token: Any) -> None:
        self._store._release(token[0])


def _factory(config: StoreConfig) -> Store:
    return EmbeddedStore(config)


class _Plugin:
    @stolon.hookimpl
    def stolon_store_backends(self) -> Sequence[StoreBackendSpec]:
        return [
            StoreBackendSpec(
                name=BACKEND_NAME,
                factory=_factory,
                description="built-in single-machine store (SQLite in WAL mode); no server needed",
                endpoints_help="path of the store database file, shared by every process",
            )
        ]


#: The entry point ``stolon.store: embedded`` names this object.
plugin = _Plugin()

__all__ = ["BACKEND_NAME", "EmbeddedStore", "boottime", "database_path", "plugin"]

if os.name != "posix":  # pragma: no cover
    log.warning("the embedded store is meant for Linux (CLOCK_BOOTTIME, boot id)")
