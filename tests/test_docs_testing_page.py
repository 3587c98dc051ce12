"""The testing page's example project runs as written: its files, then pytest on them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "testing.md"
_FILE_FENCE = re.compile(r"```python\n# (?P<path>[\w/]+\.py)\n(?P<body>.*?)```", re.S)
_TOML_FENCE = re.compile(r'```toml title="pyproject.toml"\n(?P<body>.*?)```', re.S)


def test_the_testing_page_project_passes_its_tests(tmp_path: Path) -> None:
    text = PAGE.read_text()
    files = {match["path"]: match["body"] for match in _FILE_FENCE.finditer(text)}
    assert set(files) == {"myapp/models.py", "myapp/main.py", "conftest.py", "test_users.py"}
    for path, body in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    (tmp_path / "myapp" / "__init__.py").write_text("")
    [toml] = _TOML_FENCE.findall(text)
    (tmp_path / "pyproject.toml").write_text(toml)
    env = {**os.environ, "PYTHONPATH": ""}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
