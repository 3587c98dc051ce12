"""offline_docs(): /docs and /redoc load every asset from the app itself, none from a CDN."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from flash_db_fastapi import offline_docs


def _assets(page: str) -> list[str]:
    """Return every URL a page loads: script sources, stylesheets, icons."""
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', page) + re.findall(
        r"url: '([^']+)'", page
    )


async def _get(app: FastAPI, path: str, root_path: str = "") -> httpx.Response:
    transport = httpx.ASGITransport(app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def _app() -> FastAPI:
    app = FastAPI(title="Shop")

    @app.get("/items")
    async def items() -> list[int]:
        return [1]

    offline_docs(app)
    return app


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", ["/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css"]),
        ("/redoc", ["/docs-static/redoc.standalone.js"]),
    ],
)
async def test_pages_load_their_assets_from_the_app(page: str, expected: list[str]) -> None:
    app = _app()
    html = (await _get(app, page)).text
    urls = _assets(html)
    assert set(expected) <= set(urls)
    assert "/openapi.json" in urls
    assert not [url for url in urls if "://" in url or url.startswith("//")], urls
    assert "fonts.googleapis" not in html
    for url in urls:
        response = await _get(app, url)
        assert response.status_code == 200, url
    script = await _get(app, expected[0])
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert len(script.content) > 100_000  # the real bundle, not a stub


async def test_fastapi_cdn_pages_are_replaced_not_duplicated() -> None:
    app = _app()
    pages = [getattr(route, "path", None) for route in app.router.routes]
    assert pages.count("/docs") == 1
    assert pages.count("/redoc") == 1
    assert "/docs/oauth2-redirect" in pages
    assert "/docs" not in (await _get(app, "/openapi.json")).json()["paths"]


async def test_behind_a_proxy_prefix_the_urls_carry_it() -> None:
    html = (await _get(_app(), "/docs", root_path="/api")).text
    assert "/api/docs-static/swagger-ui-bundle.js" in html
    assert "/api/openapi.json" in html


async def test_a_page_can_be_left_out() -> None:
    app = FastAPI()
    offline_docs(app, redoc_url=None, docs_url="/api-docs", static_url="/assets")
    assert (await _get(app, "/redoc")).status_code == 404
    assert (await _get(app, "/docs")).status_code == 404
    assert "/assets/swagger-ui.css" in (await _get(app, "/api-docs")).text


async def test_the_example_app_serves_its_docs_offline() -> None:
    from example_app.app import create_app

    app = create_app("sqlite+aiosqlite://", prepare_schema=False, seed_data=False)
    for page in ("/docs", "/redoc"):
        html = (await _get(app, page)).text
        assert "Flash DB blog" in html
        assert not [url for url in _assets(html) if "://" in url], page
