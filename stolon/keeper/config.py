"""The keeper's configuration: typed, validated values (the command line that builds them
is :mod:`stolon.cli.keeper`).

Secrets: passwords are kept in :class:`Secret` objects whose ``repr`` hides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stolon.store.base import StoreConfig

AUTH_METHODS = ("md5", "scram-sha-256", "trust")
DEFAULT_PG_OS_USER = "postgres"


class Secret:
    """A password that never shows up in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret(****)" if self._value else "Secret()"

    __str__ = __repr__


@dataclass(frozen=True)
class KeeperConfig:
    store: StoreConfig
    uid: str
    data_dir: Path
    pg_listen_address: str
    pg_advertise_address: str
    pg_port: str
    pg_advertise_port: str
    pg_bin_path: str
    pg_os_user: str
    pg_repl_username: str
    pg_repl_password: Secret
    pg_repl_auth_method: str
    pg_su_username: str
    pg_su_password: Secret
    pg_su_auth_method: str
    can_be_master: bool
    can_be_synchronous_replica: bool
    disable_data_dir_locking: bool
    metrics_listen_address: str
    log_level: str
