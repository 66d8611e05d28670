"""The ``pg_hba.conf`` the keeper generates (Go Stolon's ``generateHBA``).

Always first: the keeper's own local lines (database ``postgres`` for the superuser,
``replication`` for the replication user, over the unix socket). Then, by
``defaultSUReplAccessMode``:

* ``all``: superuser and replication user from any IPv4/IPv6 address;
* ``strict``: only on the master-type DB, one line per other DB address.

Then, unless in "only internal" mode (the sync-replication restart guard, docs/keeper.md), the
user's ``pgHBA`` entries when the spec has them (``[]`` adds nothing), else (``null``) the
default ``host all all 0.0.0.0/0 md5`` and ``::0/0`` lines.

The other DBs' addresses come from the store (untrusted): only an IP address (given its
full-length mask) or a DNS host name (double-quoted, so ``all``/``samenet`` stay names) makes
a line; anything else is left out with a warning. No entry may hold a control character
(:mod:`stolon.model.text`): a newline would start a line of the writer's choosing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from enum import StrEnum

from stolon.model.address import ip_address, is_hostname
from stolon.model.text import check_no_control, printable
from stolon.postgres.credentials import AuthMethod

log = logging.getLogger(__name__)

DEFAULT_USER_HBA: tuple[str, ...] = ("host all all 0.0.0.0/0 md5", "host all all ::0/0 md5")
_HBA_KEYWORDS = frozenset({"all", "sameuser", "samerole", "samegroup", "replication"})


class SUReplAccessMode(StrEnum):
    ALL = "all"
    STRICT = "strict"


def quote_hba_token(token: str) -> str:
    """A user or database name as a pg_hba token.

    Plain names go as they are; names with special characters or spelling a keyword
    (``all``, ``replication``...) are double-quoted so they match only that name. Go
    Stolon writes names unquoted.
    """
    if not token:
        raise ValueError("empty pg_hba token")
    check_no_control(token, "pg_hba token")
    if '"' in token:
        raise ValueError(f"pg_hba token cannot contain a double quote: {token!r}")
    if token in _HBA_KEYWORDS or not all(c.isalnum() or c in "_.-" for c in token):
        return f'"{token}"'
    if token.startswith(("+", "@")):
        return f'"{token}"'
    return token


def host_cidr(address: str) -> str | None:
    """The pg_hba address field for one host: ``10.0.0.1`` → ``10.0.0.1/32``, ``fe80::1`` →
    ``fe80::1/128``, a host name double-quoted; None for anything else (a mask, a keyword,
    a second field...).

    Go appends ``/32`` to whatever the address is, which is wrong for IPv6 and hostnames
    and lets a published ``10.0.0.3/32 trust\nhost all all 0.0.0.0/0 trust #`` through.
    """
    ip = ip_address(address)
    if ip is not None:
        return f"{ip}/{ip.max_prefixlen}"
    if is_hostname(address):
        return f'"{address}"'
    return None


def build_hba(
    *,
    su_user: str,
    su_auth: AuthMethod,
    repl_user: str,
    repl_auth: AuthMethod,
    access_mode: SUReplAccessMode = SUReplAccessMode.ALL,
    is_master_type: bool = False,
    other_db_addresses: Iterable[str] = (),
    user_entries: Sequence[str] | None = None,
    only_internal: bool = False,
) -> list[str]:
    """The pg_hba entries, in order (see the module docstring).

    ``other_db_addresses`` are the listen addresses of the other DBs of the cluster (used in
    ``strict`` mode on the master-type DB). ``user_entries`` is the DB spec ``pgHBA``: None
    means "not set" (default md5 rules), an empty list means "nothing".
    """
    su = quote_hba_token(su_user)
    repl = quote_hba_token(repl_user)
    entries = [
        f"local postgres {su} {su_auth}",
        f"local replication {repl} {repl_auth}",
    ]
    if access_mode is SUReplAccessMode.ALL:
        entries += [
            f"host all {su} 0.0.0.0/0 {su_auth}",
            f"host all {su} ::0/0 {su_auth}",
            f"host replication {repl} 0.0.0.0/0 {repl_auth}",
            f"host replication {repl} ::0/0 {repl_auth}",
        ]
    elif access_mode is SUReplAccessMode.STRICT:
        if is_master_type:
            # Go uses the replication auth method on the superuser line too ([QUIRK]);
            # the superuser's own method is used here.
            for address in sorted(a for a in other_db_addresses if a):
                cidr = host_cidr(address)
                if cidr is None:
                    log.warning(
                        "not adding pg_hba lines for db address %r: not an IP address or host name",
                        printable(address),
                    )
                    continue
                entries += [
                    f"host all {su} {cidr} {su_auth}",
                    f"host replication {repl} {cidr} {repl_auth}",
                ]
    else:  # pragma: no cover - enum exhausted
        raise ValueError(f"unknown access mode {access_mode!r}")

    if not only_internal:
        if user_entries is not None:
            for i, e in enumerate(user_entries):
                check_no_control(e, f"pgHBA[{i}]")
            entries += list(user_entries)
        else:
            entries += DEFAULT_USER_HBA
    return entries


def render_pg_hba(entries: Sequence[str]) -> str:
    """The text of a generated ``pg_hba.conf``."""
    lines = ["# Generated by stolon keeper. Do not edit: it is rewritten on every change."]
    for i, e in enumerate(entries):
        check_no_control(e, f"pg_hba entry {i}")
        lines.append(e)
    return "\n".join(lines) + "\n"
