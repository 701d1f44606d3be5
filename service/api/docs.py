"""The interactive API documentation (``/docs``, ``/redoc``), served with no request leaving the server.

FastAPI's default pages fetch Swagger UI and ReDoc from a CDN: they cannot work offline, and they pull
third-party code into a page a token is typed into. Here the same pages load the scripts and styles that
the ``fastapi-offline`` package ships, from ``/docs/static``, under a policy that forbids anything else.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
STATIC_PATH = "/docs/static"
# The pages start their viewer with an inline script; everything else must come from this server.
_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; font-src 'self' data:"
)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from bundled assets (create ``app`` with ``docs_url=None`` and
    ``redoc_url=None``, so that FastAPI's CDN pages are not served as well)."""
    app.mount(STATIC_PATH, StaticFiles(directory=ASSETS), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="hps API",
            swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/favicon.png",
        )
        page.headers["Content-Security-Policy"] = _POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url="/openapi.json",
            title="hps API",
            redoc_js_url=f"{STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PATH}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = _POLICY
        return page
