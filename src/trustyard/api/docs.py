"""The API's Swagger UI, served from trustyard itself (the `swagger-ui-bundle` package): the page
works offline and loads nothing from a CDN. None of these routes is in the OpenAPI document."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from swagger_ui_bundle import swagger_ui_path

# The files the page loads, and nothing else of the bundle (no source maps, no index.html).
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def install(api: FastAPI, prefix: str) -> None:
    """GET (and HEAD) `{prefix}/docs`, its assets below `{prefix}/docs/static/` and the OAuth2
    redirect page the UI sends its login flow back to."""
    openapi_url = api.openapi_url or f"{prefix}/openapi.json"
    static = f"{prefix}/docs/static"
    redirect = f"{prefix}/docs/oauth2-redirect"

    async def page(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{api.title} - Swagger UI",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png",
            oauth2_redirect_url=redirect,
        )

    async def oauth2_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = ASSETS.get(name)
        if media_type is None:
            return PlainTextResponse("no such file", status_code=404)
        return FileResponse(
            str(swagger_ui_path / name),
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    api.add_route(f"{prefix}/docs", page, include_in_schema=False)
    api.add_route(redirect, oauth2_redirect, include_in_schema=False)
    api.add_route(f"{static}/{{name}}", asset, include_in_schema=False)
