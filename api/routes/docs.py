"""`/docs` (Swagger UI) and `/redoc` (ReDoc) served whole from this server, so both work on a
machine without internet: FastAPI's own pages load their scripts from a CDN.

The scripts and styles are the ones the `fastapi-offline` package ships; they are served
from a fixed table of file names (never a path built from the request), open like the pages
themselves (api/auth.py `OPEN_PATHS`), and cached by the browser for a day.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response

ASSETS_PATH = "/docs/assets"
# name → media type: the only files served from the bundle.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSET_PATHS = frozenset(f"{ASSETS_PATH}/{name}" for name in ASSETS)

router = APIRouter(include_in_schema=False)
_cache: dict[str, bytes] = {}


def _asset(name: str) -> bytes:
    data = _cache.get(name)
    if data is None:
        data = (files("fastapi_offline") / "static" / name).read_bytes()
        _cache[name] = data
    return data


def _urls(request: Request) -> tuple[str, str]:
    """(the OpenAPI document's URL, the assets' folder URL), under the proxy's root path."""
    root = request.scope.get("root_path", "")
    app = request.app
    assert isinstance(app, FastAPI)
    return f"{root}{app.openapi_url}", f"{root}{ASSETS_PATH}"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title="Session Ledger - Swagger UI",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    return get_redoc_html(
        openapi_url=openapi_url,
        title="Session Ledger - ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,  # fonts from Google would be one more thing fetched outside
    )


@router.get(ASSETS_PATH + "/{name}")
def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such document asset")
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return Response(_asset(name), media_type=media_type, headers=headers)
