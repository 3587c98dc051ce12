"""Fixtures of the reliability suite: one PostgreSQL database and one uvicorn app for the run.

``FLASH_RELIABILITY_SCALED=1`` serves the app through PgBouncer (transaction
pooling) with a streaming replica behind it serving the blog's CRUD list and
get routes (``FLASH_DB_READ_FROM=replica``): the scaled-out form of the load
test, for docs/reliability.md (tests/servers.py starts both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests import servers
from tests.conftest import IN_CI
from tests.reliability.harness import AppServer, pg_database

SCALED = os.environ.get("FLASH_RELIABILITY_SCALED", "") == "1"


@pytest.fixture(scope="session")
def app_server() -> Iterator[AppServer]:
    """Serve the example app under uvicorn on a PostgreSQL database of its own."""
    try:
        context = pg_database()
        dsn = context.__enter__()
    except OSError as error:  # pragma: no cover - CI always has PostgreSQL
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable: {error} (CI=true: it is mandatory)")
        pytest.skip(f"PostgreSQL is not reachable: {error}")
    with ExitStack() as stack:
        stack.callback(context.__exit__, None, None, None)
        env: dict[str, str] = {}
        settle = None
        if SCALED:  # pragma: no cover - the scaled-out run, by hand (docs/reliability.md)
            name = dsn.rsplit("/", 1)[1]
            replica = servers.start_replica()
            stack.callback(replica.remove)
            target = f"host=127.0.0.1 port={replica.port} dbname={name}"
            bouncer = servers.start_pgbouncer({f"{name}_replica": target}, pool_size=10)
            stack.callback(bouncer.stop)
            env = {
                "DATABASE_URL": bouncer.url(name) + "?pooler=pgbouncer",
                "FLASH_DB_REPLICAS": bouncer.url(f"{name}_replica") + "?pooler=pgbouncer",
                "FLASH_DB_READ_FROM": "replica",
            }
            settle = replica.catch_up

            def report() -> None:
                """Print what PgBouncer sent to the primary and to the replica."""
                rows = bouncer.admin("SHOW STATS")
                print("\n### Scaled run: statements through PgBouncer, per database")
                print("| database | transactions | statements |\n| --- | --- | --- |")
                for row in rows:
                    if row[0] in (name, f"{name}_replica"):
                        role = "replica" if row[0].endswith("_replica") else "primary"
                        print(f"| {role} | {int(row[1]):,} | {int(row[2]):,} |")

            stack.callback(report)
        server = AppServer(dsn, env=env, settle=settle)
        try:
            server.start()
            yield server
        finally:
            server.stop()
