"""offline_docs(): Swagger UI and ReDoc served with their assets from the app itself, no CDN.

FastAPI's ``/docs`` and ``/redoc`` pages load their JavaScript and CSS from a
CDN, so they are blank without internet. The assets here come from the
``fastapi-offline`` package (Swagger UI 5 and ReDoc 2, MIT), installed with
the ``offline-docs`` extra; this module only wires them through
FastAPI's own page builders (``get_swagger_ui_html``, ``get_redoc_html``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from flash_db import FlashDBError

__all__ = ["DEFAULT_STATIC_URL", "asset_folder", "offline_docs"]

DEFAULT_STATIC_URL = "/docs-static"
"""Where :func:`offline_docs` mounts the assets by default."""

_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def asset_folder() -> Path:
    """Return the folder holding Swagger UI's and ReDoc's files, or raise ``FlashDBError``."""
    try:
        folder = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError as error:
        raise FlashDBError(
            "Offline API docs need the fastapi-offline package (it ships Swagger UI and "
            "ReDoc): pip install 'flash-db[offline-docs]'."
        ) from error
    missing = [name for name in _ASSETS if not (folder / name).is_file()]
    if missing:
        raise FlashDBError(
            f"The fastapi-offline package at {folder} lacks {', '.join(missing)}; "
            "reinstall it: pip install --force-reinstall fastapi-offline."
        )
    return folder


def _is_page(route: BaseRoute, path: str | None) -> bool:
    return path is not None and isinstance(route, Route) and route.path == path


def offline_docs(
    app: FastAPI,
    *,
    docs_url: str | None = "/docs",
    redoc_url: str | None = "/redoc",
    static_url: str = DEFAULT_STATIC_URL,
) -> None:
    """Serve Swagger UI at ``docs_url`` and ReDoc at ``redoc_url`` with assets from ``static_url``.

    FastAPI's own CDN-based pages at the app's ``docs_url``/``redoc_url`` are
    replaced; pass ``None`` to leave a page out. Works behind a proxy prefix
    (``root_path``) like FastAPI's pages.
    """
    folder = asset_folder()
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise FlashDBError("offline_docs() needs the app's OpenAPI schema: openapi_url is None.")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    # Drop FastAPI's CDN pages (and ours, if called twice) before adding these.
    replaced = {app.docs_url, app.redoc_url, docs_url, redoc_url}
    app.router.routes[:] = [
        route for route in app.router.routes if not any(_is_page(route, p) for p in replaced)
    ]
    app.docs_url, app.redoc_url = docs_url, redoc_url
    app.mount(static_url, StaticFiles(directory=folder), name="flash-db-docs-static")

    if docs_url is not None:

        async def swagger_ui(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "")
            return get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=f"{root}{oauth2_redirect_url}" if oauth2_redirect_url else None,
                swagger_js_url=f"{root}{static_url}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{static_url}/swagger-ui.css",
                swagger_favicon_url=f"{root}{static_url}/favicon.png",
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )

        app.add_route(docs_url, swagger_ui, include_in_schema=False)
        if oauth2_redirect_url and not any(
            _is_page(route, oauth2_redirect_url) for route in app.router.routes
        ):

            async def oauth2_redirect(request: Request) -> HTMLResponse:
                return get_swagger_ui_oauth2_redirect_html()

            app.add_route(oauth2_redirect_url, oauth2_redirect, include_in_schema=False)

    if redoc_url is not None:

        async def redoc(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "")
            return get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{static_url}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{static_url}/favicon.png",
                with_google_fonts=False,
            )

        app.add_route(redoc_url, redoc, include_in_schema=False)
