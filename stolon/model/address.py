"""Network addresses a keeper publishes: what may reach pg_hba.conf, conninfos and proxies.

A keeper's advertised address travels through the store (untrusted) into other keepers'
``pg_hba.conf`` (``strict`` mode), ``primary_conninfo`` and the proxies' dial targets. It must
be an IP address, or a DNS host name (RFC 1123 letters, digits and hyphens in dot-separated
labels, not all-numeric at the end): nothing else can form a pg_hba line, a mask, a
keyword (``all``, ``samenet``...) or a second conninfo parameter.
"""

from __future__ import annotations

import ipaddress

MAX_HOSTNAME = 253
MAX_LABEL = 63
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (no mask, no zone index), None if it is not one."""
    if not text or "%" in text or "/" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_hostname(text: str) -> bool:
    """An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens,
    at most 253 characters, the last label not all digits (that would be a bad IPv4)."""
    if not text or len(text) > MAX_HOSTNAME:
        return False
    labels = text.split(".")
    for label in labels:
        if not label or len(label) > MAX_LABEL or label[0] == "-" or label[-1] == "-":
            return False
        if not set(label) <= _LABEL_CHARS:
            return False
    return not labels[-1].isdigit()


def check_address(text: str) -> str | None:
    """Why ``text`` cannot be an advertised address, or None if it can (IP or host name)."""
    if ip_address(text) is not None or is_hostname(text):
        return None
    return "it must be an IP address or a DNS host name"


def check_port(text: str) -> str | None:
    """Why ``text`` is not a TCP port number (1-65535), or None."""
    if text.isascii() and text.isdigit() and len(text) <= 5 and 0 < int(text) < 65536:
        return None
    return "it must be a port number (1-65535)"
