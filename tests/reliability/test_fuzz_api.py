"""Fuzz the example app's HTTP API with Schemathesis, from its OpenAPI: no response is a 500."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.reliability.harness import (
    ADMIN_TOKEN,
    FULL,
    AppServer,
    known_defects_in,
    pick,
    table,
    unknown_failures,
)

pytestmark = pytest.mark.reliability

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _summary(output: str) -> tuple[int, int, int]:
    """Return (operations tested, test cases generated, unique failures) from the CLI's summary."""
    tested = re.search(r"Tested:\s+(\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    failures = re.search(r"(\d+) unique failures?", output)
    return (
        int(tested.group(1)) if tested else 0,
        int(cases.group(1)) if cases else 0,
        int(failures.group(1)) if failures else 0,
    )


def test_schemathesis_finds_no_server_error(app_server: AppServer) -> None:
    """Every operation of the OpenAPI schema, fuzzed: no 500 (check ``not_a_server_error``)."""
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{app_server.base_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(pick(2, 60)),
        "--workers",
        "2",
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
        "--no-color",
        "--header",
        f"X-Admin-Token: {ADMIN_TOKEN}",
    ]
    if not FULL:
        command += ["--phases", "examples,fuzzing", "--seed", "20261127"]
    mark = app_server.log_size()
    with tempfile.TemporaryDirectory(prefix="flash-schemathesis-") as workdir:  # its own files
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=pick(120, 900), cwd=workdir
        )
    server_errors = [
        line
        for line in app_server.log_since(mark).splitlines()
        if re.match(r"[\w.]+(Error|Exception): ", line)
    ]
    output = run.stdout + run.stderr
    tested, cases, failures = _summary(output)
    reproductions = sorted(
        {
            re.sub(r"http://127\.0\.0\.1:\d+", "", line.strip()).replace(
                "-H 'X-Admin-Token: [Filtered]' ", ""
            )[:160]
            for line in output.splitlines()
            if line.strip().startswith("curl ")
        }
    )
    table(
        "Fuzz: Schemathesis against the example app's OpenAPI",
        ["operations", "test cases", "responses with status 500 (unique)", "exit code"],
        [(tested, cases, failures, run.returncode)],
    )
    if reproductions:
        table("Fuzz: server errors found", ["reproduction"], [(r,) for r in reproductions])
    assert tested > 0, output[-3000:]
    if failures and server_errors and not unknown_failures(server_errors):
        pytest.xfail(f"known open defects: {'; '.join(known_defects_in(server_errors))}")
    assert failures == 0, "\n".join([*reproductions, *unknown_failures(server_errors)])
    assert run.returncode == 0, output[-3000:]
