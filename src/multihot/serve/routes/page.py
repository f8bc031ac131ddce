"""``GET /``: a page to try the model by hand (left out of the OpenAPI schema)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = resources.files("multihot.serve").joinpath("page.html").read_text(encoding="utf-8")
"""The page at ``/``: plain HTML, CSS and JavaScript, nothing fetched from elsewhere."""


def router() -> APIRouter:
    """The route of the page, the same for every server."""
    routes = APIRouter()

    @routes.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE)

    return routes
