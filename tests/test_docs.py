"""Run every Python snippet in docs/*.md and README.md, so the docs stay true to the code.

The convention (documented in docs/contributing-docs.md):

- A fence whose info string starts with ``python`` is executed. The snippets of
  one page run in order, in one namespace (a module of their own), with
  top-level ``await`` allowed, against a fresh SQLite database that
  ``init_db()`` configured before the first snippet. The name ``db`` is bound to
  an open ``AsyncSession`` on it, as a FastAPI route or ``async with session()``
  would give you.
- A fence preceded by the line ``<!-- docs: no-run -->`` is shown but not run
  (a server start, a fragment of a larger file). Other languages are not run.

Each page runs in its own interpreter (its models register their own tables on
``Model.metadata``), all pages at once; a failure reports the page and the line.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import traceback
import types
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NO_RUN = "<!-- docs: no-run -->"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True, slots=True)
class Snippet:
    """One fenced Python block: where it starts and whether the page asks to run it."""

    line: int  # line number of the first code line (1-based)
    code: str
    run: bool


def doc_files() -> list[Path]:
    """Return every page whose snippets are checked: docs/**/*.md and README.md."""
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def extract_snippets(text: str) -> list[Snippet]:
    """Return the Python fences of a Markdown page, in order."""
    lines = text.splitlines()
    snippets: list[Snippet] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        previous = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        language = info.lstrip("{.").split()[0] if info else ""
        if language == "python":
            start = i - len(body) + 1  # 1-based line of the first code line
            snippets.append(Snippet(start, "\n".join(body) + "\n", previous != NO_RUN))
        i += 1
    return snippets


async def _run_page(path: Path, workdir: Path) -> None:
    """Execute the runnable snippets of ``path`` in order, in one module namespace."""
    import flash_db

    os.chdir(workdir)
    database = flash_db.init_db(f"sqlite+aiosqlite:///{workdir / 'docs.sqlite3'}")
    module = types.ModuleType("docs_page")
    sys.modules["docs_page"] = module
    namespace = module.__dict__
    relative = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    snippets = extract_snippets(path.read_text())  # noqa: ASYNC240 - one small file, before any I/O
    async with database.session() as db:
        namespace["db"] = db
        for snippet in snippets:
            if not snippet.run:
                continue
            # Pad so tracebacks show the line number in the Markdown file.
            source = "\n" * (snippet.line - 1) + snippet.code
            code = compile(source, str(relative), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)  # the snippet is the docs' own code
            if asyncio.iscoroutine(result):
                await result
    await flash_db.close_db()  # the page may have configured a database of its own
    await database.close()


def main(argv: list[str]) -> int:
    """Run one page's snippets (``python -m tests.test_docs PAGE WORKDIR``)."""
    path, workdir = Path(argv[0]).resolve(), Path(argv[1])
    try:
        asyncio.run(_run_page(path, workdir))
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


@cache
def _results() -> dict[Path, tuple[int, str]]:
    """Run every page at once, each in its own interpreter; return exit code and output."""
    runs: dict[Path, tuple[subprocess.Popen[str], tempfile.TemporaryDirectory[str]]] = {}
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    for path in PAGES:
        tmp = tempfile.TemporaryDirectory(prefix="flash-docs-")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.test_docs", str(path), tmp.name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        runs[path] = (process, tmp)
    results: dict[Path, tuple[int, str]] = {}
    for path, (process, tmp) in runs.items():
        output, _ = process.communicate(timeout=120)
        results[path] = (process.returncode, output)
        tmp.cleanup()
    return results


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


#: The pages with at least one snippet to run (the others have nothing to check).
PAGES = [
    p for p in doc_files() if p.exists() and any(s.run for s in extract_snippets(p.read_text()))
]


def test_snippets_are_found() -> None:
    """The extractor sees the docs' snippets (a broken fence parser would pass silently)."""
    runnable = sum(s.run for p in PAGES for s in extract_snippets(p.read_text()))
    assert runnable >= 20, f"only {runnable} runnable snippets found in {_ids(PAGES)}"


def test_extract_snippets_convention() -> None:
    """Python fences run, marked ones are skipped, other languages are ignored."""
    page = "\n".join(
        [
            "```python",
            "x = 1",
            "```",
            NO_RUN,
            "",
            "```python",
            "server.run()",
            "```",
            "```bash",
            "make test",
            "```",
            "!!! note",
            "    ```python",
            "    y = x + 1",
            "    ```",
        ]
    )
    assert extract_snippets(page) == [
        Snippet(2, "x = 1\n", True),
        Snippet(7, "server.run()\n", False),
        Snippet(14, "y = x + 1\n", True),
    ]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_page_snippets_run(page: Path) -> None:
    """Every runnable snippet of the page runs without an error, in order."""
    returncode, output = _results()[page]
    assert returncode == 0, f"a snippet in {page.relative_to(ROOT)} failed:\n{output}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
