"""End to end: ``python -m example_app`` under a real uvicorn process, driven over HTTP."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Start the example app on a free port with a new SQLite file; stop it afterwards."""
    port = _free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'blog.sqlite3'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "example_app"],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the example app exited at startup:\n{log.read_text()}")
            try:
                if httpx.get(f"{base_url}/docs", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the example app did not answer within 30 s:\n{log.read_text()}")
            time.sleep(0.1)
        yield base_url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit status -15).
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_example_app_serves_over_http(server: tuple[str, Path]) -> None:
    base_url, log = server
    assert re.search(rf"API docs at {re.escape(base_url)}/docs", log.read_text())
    with httpx.Client(base_url=base_url, timeout=10) as client:
        spec = client.get("/openapi.json").json()
        assert spec["info"]["title"] == "Flash DB blog"
        posts = client.get("/posts", params={"status": "published", "order_by": "-published_at"})
        assert posts.status_code == 200
        assert posts.json()["total"] == 4  # the demo data, seeded at the first start
        user = client.post("/users", json={"name": "Eve", "email": "eve@example.com"})
        assert user.status_code == 201
        eve = {"Authorization": f"Bearer {user.json()['token']}"}
        post = client.post("/posts", json={"title": "Over HTTP", "body": "Hi."}, headers=eve)
        assert post.status_code == 201
        assert post.json()["author_id"] == user.json()["id"]
        published = client.post(f"/posts/{post.json()['id']}/publish", headers=eve)
        assert published.json()["status"] == "published"
        found = client.get("/posts/search", params={"q": "over http"})
        assert [p["title"] for p in found.json()] == ["Over HTTP"]
        assert client.get("/posts/424242").status_code == 404
        assert client.get("/posts", params={"password": "x"}).status_code == 400
        health = client.get("/ops/health").json()
        assert health["checked_out"] == 0
