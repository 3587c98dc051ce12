"""Fixtures of the reliability suite: one PostgreSQL database and one uvicorn app for the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI
from tests.reliability.harness import AppServer, pg_database


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
    server = AppServer(dsn)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        context.__exit__(None, None, None)
