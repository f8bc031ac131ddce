"""``GET /docs``: the OpenAPI page (Swagger UI), its scripts and styles served by this server from
the ``swagger-ui-bundle`` package, so that it works without the internet (FastAPI's own page
loads them from a CDN).

Only the three files the page loads are served, under :data:`ASSETS`, by fixed names: nothing
here reads a file a client names. They need the API key as ``/docs`` does (a browser cannot send
it: with ``--api-key``, read ``/openapi.json`` with the key instead).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse

from multihot.serve.errors import ApiError

logger = logging.getLogger(__name__)

PATH = "/docs"
ASSETS = "/docs/assets"
"""Where the page's files are served."""
FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
"""The files of Swagger UI the page loads, and their types."""
ASSET_PATHS = tuple(f"{ASSETS}/{name}" for name in FILES)
OPENAPI_SUPPORT = 5
"""The first major version of Swagger UI that reads OpenAPI 3.1, the version FastAPI writes
(Swagger UI 4 shows "Unable to render this definition")."""
INSTALL = "pip install 'swagger-ui-bundle-v2>=5'"
"""How to install a Swagger UI that reads FastAPI's schema."""
CACHE = {"Cache-Control": "public, max-age=86400"}
"""The files change only with the installed package."""


def swagger_ui_folder() -> tuple[Path | None, str]:
    """The installed Swagger UI's folder, or None and why there is none fit to serve."""
    try:
        # optional: swagger-ui-bundle (the serve extra); without it only /docs is missing
        import swagger_ui_bundle  # type: ignore[import-untyped]
    except ImportError:
        return None, f"Swagger UI is not installed: {INSTALL}"
    folder = Path(str(swagger_ui_bundle.swagger_ui_path))
    version = folder.name.removeprefix("swagger-ui-")
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) < OPENAPI_SUPPORT:
        return None, (
            f"the installed Swagger UI ({version}) cannot read OpenAPI 3.1; {INSTALL} "
            "(it replaces swagger-ui-bundle)"
        )
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        return None, f"{folder} lacks {', '.join(missing)}; reinstall: {INSTALL}"
    return folder, ""


def router(openapi_url: str, title: str) -> APIRouter:
    """``/docs`` and its files; when no usable Swagger UI is installed, ``/docs`` answers 503
    saying how to install one (logged once, at startup), and the API works as ever."""
    routes = APIRouter()
    folder, why = swagger_ui_folder()
    if folder is None:
        logger.warning("%s is unavailable: %s", PATH, why)

    @routes.get(PATH, include_in_schema=False)
    async def docs():
        if folder is None:
            raise ApiError(503, "docs_unavailable", f"{PATH} is unavailable: {why}")
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            # No badge that sends the schema to swagger.io's online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

    for name, media_type in FILES.items():
        _add_asset(routes, folder, name, media_type)
    return routes


def _add_asset(routes: APIRouter, folder: Path | None, name: str, media_type: str) -> None:
    @routes.get(f"{ASSETS}/{name}", include_in_schema=False)
    async def asset():
        if folder is None:
            raise ApiError(404, "not_found", f"{ASSETS}/{name}: Swagger UI is not installed")
        return FileResponse(folder / name, media_type=media_type, headers=CACHE)
