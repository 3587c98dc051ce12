"""Type checkers on a user's code: ModelSchema classes as types and typed keys, mypy and pyright.

``tests/typing/schemas_sample.py`` is written as a user would write an app; both
checkers must pass it with no error, and must report the mistakes in a wrong
version (so the check can fail). pyright comes from the ``pyright`` package of
the ``dev`` extra, which runs it on Node.js (it fetches pyright's npm package on
first use); where it cannot run, the test says so and skips, and fails under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.models import User
from tests.typing import schemas_sample

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "typing" / "schemas_sample.py"
WRONG = """
from typing import assert_type

from tests.models import Gadget, User
from tests.typing.schemas_sample import AuthorRead


def wrong(user: User, gadget: Gadget, author: AuthorRead) -> None:
    assert_type(user.pk, str)
    assert_type(gadget.pk, int)
    assert_type(author.name, int)
"""


def _bin(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _pyright() -> str:
    pyright = _bin("pyright")
    probe = _run(pyright, "--version") if pyright else None
    if pyright is None or probe is None or probe.returncode != 0:
        reason = "pyright cannot run here (pip install pyright; it needs Node.js)"
        if probe is not None:
            reason += f": {(probe.stdout + probe.stderr).strip()[-300:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return pyright


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    mypy = _bin("mypy")
    assert mypy is not None
    return _run(mypy, "--strict", "--no-error-summary", str(path))


def test_mypy_passes_the_sample_and_catches_the_wrong_one(tmp_path: Path) -> None:
    clean = _mypy(SAMPLE)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    wrong = tmp_path / "wrong.py"
    wrong.write_text(WRONG)
    result = _mypy(wrong)
    assert result.returncode == 1
    assert 'Expression is of type "int", not "str"' in result.stdout
    assert 'Expression is of type "UUID", not "int"' in result.stdout
    assert 'Expression is of type "str", not "int"' in result.stdout


def test_pyright_passes_the_sample_and_catches_the_wrong_one(tmp_path: Path) -> None:
    pyright = _pyright()
    python = f"--pythonpath={sys.executable}"
    clean = _run(pyright, python, str(SAMPLE))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 errors" in clean.stdout
    wrong = ROOT / "tests" / "typing" / f"wrong_{os.getpid()}.py"  # in the project: imports resolve
    wrong.write_text(WRONG)
    try:
        result = _run(pyright, python, str(wrong))
    finally:
        wrong.unlink()
    assert result.returncode == 1
    assert '"assert_type" mismatch: expected "str" but received "int"' in result.stdout
    assert '"assert_type" mismatch: expected "int" but received "UUID"' in result.stdout
    assert '"assert_type" mismatch: expected "int" but received "str"' in result.stdout


def test_the_sample_runs() -> None:
    user = User(id=7, name="Ada", email="ada@example.com", age=None)
    assert schemas_sample.typed_keys(user) == 14
    author = schemas_sample.AuthorRead.model_validate(
        {
            "id": 1,
            "name": "Ada",
            "email": "a@x",
            "age": None,
            "created_at": "2026-01-01T00:00Z",
            "updated_at": "2026-01-01T00:00Z",
            "company_id": None,
        }
    )
    assert schemas_sample.read_fields(author) == "1: Ada"
    assert "AuthorRead" in schemas_sample.app.openapi()["components"]["schemas"]
