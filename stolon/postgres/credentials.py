"""Superuser and replication user credentials and their pg_hba auth methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class AuthMethod(StrEnum):
    """pg_hba methods the keeper may use for its own users (``--pg-su-auth-method``...)."""

    MD5 = "md5"
    SCRAM_SHA_256 = "scram-sha-256"
    TRUST = "trust"

    @property
    def password_encryption(self) -> str | None:
        """The ``password_encryption`` a password for this method is hashed with."""
        if self is AuthMethod.SCRAM_SHA_256:
            return "scram-sha-256"
        if self is AuthMethod.MD5:
            return "md5"
        return None


@dataclass(frozen=True)
class Credentials:
    """A role the keeper logs in as. The password is kept out of ``repr``."""

    username: str
    password: str | None = field(default=None, repr=False)
    auth_method: AuthMethod = AuthMethod.MD5

    def __post_init__(self) -> None:
        if not self.username:
            raise ValueError("username must not be empty")
        if self.password and ("\n" in self.password or "\r" in self.password):
            # initdb's --pwfile and password files are line based
            raise ValueError(f"the password of user {self.username!r} contains a line break")
        if self.auth_method is not AuthMethod.TRUST and not self.password:
            raise ValueError(f"user {self.username!r} needs a password with auth method {self.auth_method}")

    @property
    def login_password(self) -> str | None:
        """The password to send when connecting (None with trust)."""
        return None if self.auth_method is AuthMethod.TRUST else self.password
