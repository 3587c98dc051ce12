"""End to end: ``python -m example_app`` under a real uvicorn process, driven over HTTP."""

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.example_server import example_app

ADMIN_TOKEN = "e2e-admin-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Start the example app on a free port with a new SQLite file; stop it afterwards."""
    with example_app(tmp_path, {"BLOG_ADMIN_TOKEN": ADMIN_TOKEN}) as (base_url, process, log):
        yield base_url, log
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
        assert client.get("/ops/health").status_code == 401  # the admin's only
        health = client.get("/ops/health", headers={"X-Admin-Token": ADMIN_TOKEN}).json()
        assert health["checked_out"] == 0
