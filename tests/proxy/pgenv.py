"""Real PostgreSQL instances for the proxy tests and benchmarks, made with the helpers of
tests/postgres/conftest.py (as the ``postgres`` OS user when we run as root)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stolon.postgres import slots  # noqa: E402
from stolon.postgres.binaries import PgBinaries  # noqa: E402
from stolon.postgres.errors import BinaryNotFoundError, OSUserError  # noqa: E402
from stolon.postgres.instance import Instance  # noqa: E402
from stolon.postgres.recovery import internal_standby_config  # noqa: E402
from stolon.postgres.replication import SourceServer, basebackup  # noqa: E402
from stolon.postgres.runas import resolve_pg_os_user  # noqa: E402
from tests.postgres.conftest import SU_PASSWORD, PgEnv, sandboxed_env  # noqa: E402

SU_USER = "stolon_su"

__all__ = ["SU_PASSWORD", "SU_USER", "PgEnv", "make_standby", "pg_sandbox", "pg_unavailable"]


def pg_unavailable() -> str | None:
    """Why real PostgreSQL can't run here, or ``None``."""
    try:
        PgBinaries.find()
        resolve_pg_os_user(os.environ.get("STOLON_TEST_PG_OS_USER"))
    except (BinaryNotFoundError, OSUserError) as e:
        return str(e)
    return None


@contextmanager
def pg_sandbox() -> Iterator[PgEnv]:
    """A PgEnv whose instances are stopped and whose files are removed on exit."""
    binaries = PgBinaries.find()
    os_user = resolve_pg_os_user(os.environ.get("STOLON_TEST_PG_OS_USER"))
    with sandboxed_env(binaries, os_user, prefix="stolon-proxytest-") as env:
        yield env


def make_standby(
    pg: PgEnv, primary: Instance, name: str, uid: str, user: dict[str, str] | None = None
) -> Instance:
    """A streaming standby of ``primary`` made by base backup, started and ready."""
    with primary.connect_admin() as c:
        slots.create_slot(c, f"stolon_{uid}")
    sb = pg.instance(name)
    source = SourceServer(host="127.0.0.1", port=primary.port, user="repl", password=pg.repl_password)
    basebackup(sb, source, db_uid=uid, fast_checkpoint=True, timeout=120)
    sb.set_config(
        parameters=pg.parameters(sb, user=user),
        recovery=internal_standby_config(
            host="127.0.0.1", port=primary.port, user="repl", password=pg.repl_password, db_uid=uid
        ),
    )
    sb.start()
    sb.wait_ready(30)
    return sb
