"""Which keeper infos the sentinel accepts (pure).

An info comes from the store, which anyone with store access can write. What the sentinel
copies from it into the cluster data reaches every keeper: the advertised address and port
become other keepers' ``pg_hba.conf`` lines (``strict`` mode), their ``primary_conninfo``
and the proxies' dial target, and the UID names a Keeper object that ``stolonctl status``
prints. An info is ignored (never partly used) when:

* the UID it is stored under breaks the keeper UID rule (``[a-z0-9_]+``, as Go Stolon
  requires of ``--uid``), or its ``uid`` field names another keeper;
* its ``postgresState.listenAddress`` is not an IP address or DNS host name, or its
  ``port`` is not a port number (empty means "not known yet" and is accepted).

Proxy and sentinel infos are not filtered: Go Stolon puts no rule on their UIDs, and
ignoring a proxy would let the sentinel switch masters without waiting for it; their UIDs
are only displayed (escaped) and listed.
"""

from __future__ import annotations

from stolon.model.address import check_address, check_port
from stolon.model.infos import KeeperInfo
from stolon.model.text import printable
from stolon.model.uid import is_valid_keeper_uid


def keeper_info_problem(uid: str, info: KeeperInfo) -> str | None:
    """Why the info stored under ``uid`` must be ignored, or None if it can be used."""
    if not is_valid_keeper_uid(uid):
        return "its UID breaks the keeper UID rule (only lower-case letters, digits and _)"
    if info.uid and info.uid != uid:
        return f"its uid field {printable(info.uid)!r} is not the UID it is stored under"
    ps = info.postgres_state
    if ps is not None:
        if ps.listen_address:
            bad = check_address(ps.listen_address)
            if bad:
                return f"postgresState.listenAddress {printable(ps.listen_address)!r}: {bad}"
        if ps.port:
            bad = check_port(ps.port)
            if bad:
                return f"postgresState.port {printable(ps.port)!r}: {bad}"
    return None
