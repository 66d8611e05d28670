"""Identifiers, generated the way Go Stolon does."""

from __future__ import annotations

import re
import secrets
import uuid

_KEEPER_UID = re.compile(r"[a-z0-9_]+")


def new_uid() -> str:
    """8 lowercase hex chars (the first 4 bytes of a random UUIDv4 in Go Stolon)."""
    return secrets.token_hex(4)


def new_uuid() -> str:
    return str(uuid.uuid4())


def is_valid_keeper_uid(uid: str) -> bool:
    return bool(_KEEPER_UID.fullmatch(uid))
