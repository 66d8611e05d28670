"""Roles the keeper creates after ``initdb`` (Go Stolon's ``SetupRoles``).

Passwords never reach the server in clear: they are hashed client-side with libpq's
``PQencryptPasswordConn`` (SCRAM-SHA-256 for ``scram-sha-256``, MD5 for ``md5``), and the
statement only carries the verifier. The transaction also sets ``log_statement = 'none'``
and ``log_min_error_statement = 'panic'``, so not even the verifier is logged, including
when the statement fails. ``password_encryption`` is set to match the method, for
consistency with anything else the transaction might do.
"""

from __future__ import annotations

import logging

from psycopg import sql

from stolon.postgres.connection import Connection
from stolon.postgres.credentials import AuthMethod, Credentials

log = logging.getLogger(__name__)


def password_verifier(conn: Connection, user: str, password: str, method: AuthMethod) -> str:
    """The stored form of ``password`` for ``method`` (``SCRAM-SHA-256$...`` or ``md5...``)."""
    algorithm = method.password_encryption
    if algorithm is None:
        raise ValueError(f"auth method {method} stores no password")
    return conn.pgconn.encrypt_password(password.encode(), user.encode(), algorithm.encode()).decode()


def _quiet_transaction_start(conn: Connection, method: AuthMethod) -> None:
    conn.execute("SET LOCAL log_statement = 'none'")
    conn.execute("SET LOCAL log_min_error_statement = 'panic'")
    if method.password_encryption:
        conn.execute(
            sql.SQL("SET LOCAL password_encryption = {}").format(sql.Literal(method.password_encryption))
        )


def _role_statement(conn: Connection, verb: str, creds: Credentials, options: str) -> sql.Composed:
    stmt = sql.SQL("{verb} ROLE {name} WITH {options}").format(
        verb=sql.SQL(verb), name=sql.Identifier(creds.username), options=sql.SQL(options)
    )
    if creds.auth_method is not AuthMethod.TRUST and creds.password:
        verifier = password_verifier(conn, creds.username, creds.password, creds.auth_method)
        stmt = sql.SQL("{} PASSWORD {}").format(stmt, sql.Literal(verifier))
    return stmt


def set_password(conn: Connection, creds: Credentials) -> None:
    """``ALTER ROLE ... PASSWORD`` for ``creds`` (nothing to do with trust)."""
    if creds.auth_method is AuthMethod.TRUST or not creds.password:
        return
    with conn.transaction():
        _quiet_transaction_start(conn, creds.auth_method)
        conn.execute(_role_statement(conn, "ALTER", creds, "LOGIN"))


def setup_roles(conn: Connection, superuser: Credentials, replication: Credentials) -> None:
    """Give the superuser its password and create the replication role.

    When both are the same user, the superuser gets ``LOGIN REPLICATION`` (and its
    password) instead. ``conn`` must be a superuser connection in autocommit mode.
    """
    if superuser.username == replication.username:
        log.info("adding replication role to superuser")
        with conn.transaction():
            _quiet_transaction_start(conn, superuser.auth_method)
            conn.execute(_role_statement(conn, "ALTER", superuser, "LOGIN REPLICATION"))
        log.info("replication role added to superuser")
        return
    if superuser.auth_method is not AuthMethod.TRUST and superuser.password:
        log.info("setting superuser password")
        set_password(conn, superuser)
        log.info("superuser password set")
    log.info("creating replication role")
    with conn.transaction():
        _quiet_transaction_start(conn, replication.auth_method)
        conn.execute(_role_statement(conn, "CREATE", replication, "LOGIN REPLICATION"))
    log.info("replication role created (role=%s)", replication.username)


def ensure_replication_role(conn: Connection, replication: Credentials) -> None:
    """Create the replication role, or give an existing one ``LOGIN REPLICATION`` and the
    configured password (an ``existing`` data dir may hold it hashed another way)."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (replication.username,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    with conn.transaction():
        _quiet_transaction_start(conn, replication.auth_method)
        conn.execute(_role_statement(conn, verb, replication, "LOGIN REPLICATION"))
    log.info("replication role %s (role=%s)", "updated" if exists else "created", replication.username)
