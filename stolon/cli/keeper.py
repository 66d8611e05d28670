"""``stolon-keeper`` command line: Go Stolon's flags (docs/keeper.md), ``STKEEPER_*``
variables and their validation, building a :class:`~stolon.keeper.config.KeeperConfig`.

Every check that Go Stolon makes fatal is fatal here too, with the same message where the
integration tests of Go Stolon look for it, so that operators' log alerts keep working.
Secrets: passwords come from flags, files or ``STKEEPER_*`` variables.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import pwd
import socket
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from stolon.cli.common import (
    CliError,
    add_bool_flag,
    add_log_flags,
    apply_env_defaults,
    daemon_parser,
    normalize_bool_flags,
    setup_logging,
    store_config_from_args,
)
from stolon.keeper.config import AUTH_METHODS, DEFAULT_PG_OS_USER, KeeperConfig, Secret
from stolon.model.address import check_address
from stolon.model.text import control_chars, printable
from stolon.model.uid import is_valid_keeper_uid
from stolon.plugins import StolonPluginManager, plugin_manager
from stolon.postgres import safefs
from stolon.postgres.errors import PostgresError

log = logging.getLogger("stolon.keeper")

ENV_PREFIX = "STKEEPER"


def build_parser() -> argparse.ArgumentParser:
    p, g = daemon_parser(
        "stolon-keeper",
        "stolon keeper: manages one PostgreSQL instance of a stolon cluster",
        ENV_PREFIX,
        "keeper options",
    )
    g.add_argument(
        "--uid",
        "--id",
        dest="uid",
        default="",
        help="keeper uid (must be unique in the cluster and can contain only lower-case letters, numbers"
        " and the underscore character). If not provided a random uid will be generated.",
    )
    g.add_argument("--data-dir", default="", help="data directory")
    g.add_argument(
        "--pg-listen-address",
        default="",
        help="postgresql instance listening address, local address used for the postgres instance."
        " For all network interface, you can set the value to '*'.",
    )
    g.add_argument("--pg-advertise-address", default="", help="postgresql instance address from outside")
    g.add_argument("--pg-port", default="5432", help="postgresql instance listening port")
    g.add_argument("--pg-advertise-port", default="", help="postgresql instance port from outside")
    g.add_argument(
        "--pg-bin-path",
        default="",
        help="absolute path to postgresql binaries. If empty they will be searched in the current PATH",
    )
    g.add_argument(
        "--pg-os-user",
        default="",
        help="OS user that runs PostgreSQL and its tools when the keeper runs as root"
        f" (default {DEFAULT_PG_OS_USER}); ignored otherwise",
    )
    g.add_argument(
        "--pg-repl-auth-method",
        default="md5",
        help="replication user auth method: md5, scram-sha-256 or trust",
    )
    g.add_argument("--pg-repl-username", default="", help="postgres replication user name. Required.")
    g.add_argument("--pg-repl-password", default="", help="postgres replication user password")
    g.add_argument("--pg-repl-passwordfile", default="", help="postgres replication user password file")
    g.add_argument(
        "--pg-su-auth-method", default="md5", help="superuser auth method: md5, scram-sha-256 or trust"
    )
    g.add_argument(
        "--pg-su-username",
        default="",
        help="postgres superuser user name (default: the OS user running PostgreSQL)",
    )
    g.add_argument("--pg-su-password", default="", help="postgres superuser password")
    g.add_argument("--pg-su-passwordfile", default="", help="postgres superuser password file")
    add_bool_flag(
        g, "--can-be-master", "allow the keeper to be elected as master (default true)", default=True
    )
    add_bool_flag(
        g,
        "--can-be-synchronous-replica",
        "allow the keeper to be chosen as synchronous replica (default true)",
        default=True,
    )
    add_bool_flag(
        g,
        "--disable-data-dir-locking",
        "disable locking on data dir. Warning! It'll cause data corruptions if two keepers are"
        " concurrently running with the same data dir.",
    )
    g.add_argument(
        "--metrics-listen-address",
        default="",
        help='metrics listen address i.e "0.0.0.0:8080" (disabled by default)',
    )
    add_log_flags(g)
    return p


#: A password file holds one line; anything bigger is not one.
MAX_PASSWORD_FILE = 64 * 1024


def read_password_file(path: str, what: str, flag: str = "") -> str:
    """Read a password file; refuse one that group or others may access, as libpq refuses
    a loose ``.pgpass`` (Go Stolon only warns). The mode is checked on the file opened, a
    FIFO or device is refused, and a symbolic link is followed only where nobody but root
    (or we) can change it (Kubernetes secret volumes are such links)."""
    flag = flag or f"the {what} password file"
    try:
        fd = safefs.open_file(path, follow_last=True)
        try:
            st = os.fstat(fd)
            data = safefs.read_fd(fd, MAX_PASSWORD_FILE, path)
        finally:
            os.close(fd)
    except OSError as e:
        raise CliError(f"cannot read pg {what} password: {path}: {e.strerror}") from None
    except PostgresError as e:
        raise CliError(f"{flag}: cannot read pg {what} password: {e}") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise CliError(
            f"{flag} {path} has mode {mode:04o}: group and others must have no access to a password"
            f" file; run chmod 600 {path}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{flag} {path} is not UTF-8 text") from None


def _strip_newlines(value: str, what: str, flag: str) -> str:
    """Go Stolon's trailing ``\r``/``\n`` removal, then refuse what would break a line-based
    file later (pgpass, initdb --pwfile, primary_conninfo in postgresql.conf)."""
    trimmed = value.rstrip("\r\n")
    if trimmed != value:
        log.warning("%s password contain trailing new line, removing", what)
        if not trimmed:
            raise CliError(f"{what} password is empty after removing trailing new line")
    bad = control_chars(trimmed)
    if bad:
        kind = "a line break" if {"\n", "\r"} & set(bad) else "a control character"
        raise CliError(
            f"{flag}: the {what} password contains {kind} before its end: a password is one line"
            " of printable characters; fix the file or the value"
        )
    return trimmed


def _default_os_user() -> str:
    if os.geteuid() == 0:
        return DEFAULT_PG_OS_USER
    return pwd.getpwuid(os.geteuid()).pw_name


def _warn_advertise(flag: str, address: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        if address != "*":
            log.warning(
                "provided --%s %r: is not an ip address but a hostname. This will be advertized to the"
                " other components and may have undefined behaviors if resolved differently by other hosts",
                flag,
                address,
            )
        try:
            ip = ipaddress.ip_address(socket.gethostbyname(address))
        except (OSError, ValueError) as e:
            log.warning("cannot resolve provided --%s %r: %s", flag, address, e)
            return
    if ip.is_loopback:
        log.warning(
            "provided --%s %r is a loopback ip. This will be advertized to the other components and"
            " communication will fail if they are on different hosts",
            flag,
            address,
        )


def _check_addresses(listen: str, advertise: str) -> None:
    """``--pg-listen-address`` becomes ``listen_addresses``: ``*``, an IP address or a host
    name. What is advertised (``--pg-advertise-address``, else the listen address) reaches
    other keepers' pg_hba.conf and conninfos: an IP address or a host name, never ``*``."""
    if listen != "*" and check_address(listen) is not None:
        raise CliError(
            f"--pg-listen-address {printable(listen)!r}: use '*', an IP address or a DNS host name"
            " (one address)"
        )
    if advertise and check_address(advertise) is not None:
        raise CliError(
            f"--pg-advertise-address {printable(advertise)!r}: use an IP address or a DNS host name"
        )
    if listen == "*" and not advertise:
        raise CliError(
            "--pg-listen-address '*' needs --pg-advertise-address: the address the other keepers"
            " and the proxies reach this PostgreSQL at"
        )


def parse_config(argv: Sequence[str], env: Mapping[str, str] | None = None) -> KeeperConfig:
    """Parse and validate the keeper's command line; raise CliError on fatal input."""
    parser = build_parser()
    apply_env_defaults(parser, ENV_PREFIX, env)
    a = parser.parse_args(normalize_bool_flags(argv))
    store = store_config_from_args(a, component="keeper")
    if not a.data_dir:
        raise CliError("data dir required: set --data-dir")
    if not a.pg_listen_address:
        raise CliError("--pg-listen-address is required")
    _check_addresses(a.pg_listen_address, a.pg_advertise_address)
    advertise_flag = "pg-advertise-address"
    advertise = a.pg_advertise_address
    if not advertise:
        advertise_flag, advertise = "pg-listen-address", a.pg_listen_address
    _warn_advertise(advertise_flag, advertise)
    for flag, port in (("--pg-port", a.pg_port), ("--pg-advertise-port", a.pg_advertise_port or a.pg_port)):
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CliError(f"{flag} {port!r} is not a valid port number (1-65535)")
    for flag, method in (
        ("--pg-repl-auth-method", a.pg_repl_auth_method),
        ("--pg-su-auth-method", a.pg_su_auth_method),
    ):
        if method not in AUTH_METHODS:
            raise CliError(f"{flag} must be one of: {', '.join(AUTH_METHODS)} (got {method!r})")
    if not a.pg_repl_username:
        raise CliError("--pg-repl-username is required")
    for who, method, pw, pwfile in (
        ("repl", a.pg_repl_auth_method, a.pg_repl_password, a.pg_repl_passwordfile),
        ("su", a.pg_su_auth_method, a.pg_su_password, a.pg_su_passwordfile),
    ):
        if method == "trust":
            log.warning(
                "not utilizing a password for %s is extremely dangerous",
                "replication between hosts" if who == "repl" else "superuser",
            )
            if pw or pwfile:
                raise CliError(
                    f"can not utilize --pg-{who}-auth-method trust together with"
                    f" --pg-{who}-password or --pg-{who}-passwordfile"
                )
        elif not pw and not pwfile:
            raise CliError(f"one of --pg-{who}-password or --pg-{who}-passwordfile is required")
        elif pw and pwfile:
            raise CliError(f"only one of --pg-{who}-password or --pg-{who}-passwordfile must be provided")
    repl_flag = "--pg-repl-passwordfile" if a.pg_repl_passwordfile else "--pg-repl-password"
    repl_pw = (
        read_password_file(a.pg_repl_passwordfile, "replication user", repl_flag)
        if a.pg_repl_passwordfile
        else a.pg_repl_password
    )
    su_flag = "--pg-su-passwordfile" if a.pg_su_passwordfile else "--pg-su-password"
    su_pw = (
        read_password_file(a.pg_su_passwordfile, "superuser", su_flag)
        if a.pg_su_passwordfile
        else a.pg_su_password
    )
    su_pw = _strip_newlines(su_pw, "superuser", su_flag)
    repl_pw = _strip_newlines(repl_pw, "replication user", repl_flag)
    os_user = a.pg_os_user or _default_os_user()
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(os_user)
        except KeyError:
            raise CliError(
                f"--pg-os-user: OS user {os_user!r} does not exist: create it or name another"
            ) from None
    su_user = a.pg_su_username or os_user
    for flag, name in (("--pg-su-username", su_user), ("--pg-repl-username", a.pg_repl_username)):
        if control_chars(name) or '"' in name:
            raise CliError(
                f"{flag} {printable(name)!r}: a user name written into pg_hba.conf and conninfos cannot"
                " contain a double quote or a control character"
            )
    if su_user == a.pg_repl_username:
        log.warning("superuser name and replication user name are the same. Different users are suggested.")
        if a.pg_repl_auth_method != a.pg_su_auth_method:
            raise CliError("do not support different auth methods when utilizing superuser for replication.")
        if su_pw != repl_pw and "trust" not in (a.pg_su_auth_method, a.pg_repl_auth_method):
            raise CliError(
                "provided superuser name and replication user name are the same but provided passwords are different"
            )
    if a.uid and not is_valid_keeper_uid(a.uid):
        raise CliError(
            f"keeper uid {a.uid!r} not valid. It can contain only lower-case letters, numbers and the"
            " underscore character"
        )
    return KeeperConfig(
        store=store,
        uid=a.uid,
        data_dir=Path(a.data_dir).absolute(),
        pg_listen_address=a.pg_listen_address,
        pg_advertise_address=advertise,
        pg_port=a.pg_port,
        pg_advertise_port=a.pg_advertise_port or a.pg_port,
        pg_bin_path=a.pg_bin_path,
        pg_os_user=os_user,
        pg_repl_username=a.pg_repl_username,
        pg_repl_password=Secret(repl_pw),
        pg_repl_auth_method=a.pg_repl_auth_method,
        pg_su_username=su_user,
        pg_su_password=Secret(su_pw),
        pg_su_auth_method=a.pg_su_auth_method,
        can_be_master=bool(a.can_be_master),
        can_be_synchronous_replica=bool(a.can_be_synchronous_replica),
        disable_data_dir_locking=bool(a.disable_data_dir_locking),
        metrics_listen_address=a.metrics_listen_address,
        log_level="debug" if a.debug else a.log_level,
    )


def main(argv: Sequence[str] | None = None, plugins: StolonPluginManager | None = None) -> int:
    """Run a keeper; ``plugins`` defaults to the process's plugin manager."""
    setup_logging("info")
    try:
        cfg = parse_config(sys.argv[1:] if argv is None else argv)
    except CliError as e:
        print(f"stolon-keeper: {e}", file=sys.stderr)
        return e.exit_code
    logging.getLogger().setLevel(cfg.log_level.upper() if cfg.log_level != "warn" else "WARNING")
    from stolon.keeper.daemon import Keeper

    return Keeper(cfg, plugin_manager() if plugins is None else plugins).run()


if __name__ == "__main__":
    sys.exit(main())
