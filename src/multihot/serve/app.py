"""The HTTP API: a run directory served as it was tuned (its labels, sigmoid per label, its thresholds).

Endpoints:

- ``POST /v1/predict`` ``{"texts": [...], "return_probs": false}``: per text, the labels above
  their thresholds, and with ``return_probs`` every label's probability;
- ``POST /predict``: the same in the shape of Hugging Face text-embeddings-inference's route
  (``{"inputs": ...}``, answered with ``[{"label", "score", "threshold", "predicted"}]`` per text),
  for clients written for TEI (:mod:`multihot.serve.routes.tei`);
- ``GET /v1/labels``, ``GET /v1/model``: labels and thresholds; the model's id, kind, encoder,
  validation metrics, the rates of each label on the validation rows, versions and the server's
  limits;
- ``GET /healthz`` (the process answers), ``GET /readyz`` (the model is loaded, has answered, and the
  server is not shutting down), ``GET /metrics`` (Prometheus text format, with how often each
  label is predicted and its mean probability, served and on validation);
- ``GET /``: a page to try the model by hand; ``GET /docs``: the OpenAPI page (Swagger UI, served
  from the installed package: it works offline).

Every response carries the model's id in the ``X-Model-Id`` header (and JSON bodies in
``model_id``), so a client can tell which model answered. Errors are JSON,
``{"error": {"code", "message", "limit"?}, "model_id"}``: 400 for a body that is not UTF-8 JSON,
413 for a body, a list of texts or a text past its limit, 422 for the wrong shape or types, an
empty text, text that is not Unicode (a lone surrogate) or a duplicate key, 408 for a body that
does not arrive within ``read_timeout_s``, 503 with ``Retry-After`` when the queue is full or the
server holds ``max_connections`` connections. Before any endpoint, :mod:`multihot.serve.access`
refuses a Host that is not the server's (400), a missing or wrong API key (401) and a JSON endpoint's
body of another type (415). Nothing here reads a file a client names.

The routes are in :mod:`multihot.serve.routes`, the body's parsing in :mod:`multihot.serve.body`,
what they share in :class:`multihot.serve.state.ServerState`; this module puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from multihot import __version__
from multihot.serve.access import AccessControl, AccessPolicy
from multihot.serve.config import ServeConfig
from multihot.serve.errors import CLOSE, RETRY_AFTER, ApiError, error_response
from multihot.serve.routes import docs, info, page, predict, tei
from multihot.serve.state import ServerState

logger = logging.getLogger(__name__)

OPENAPI = "/openapi.json"
ENDPOINTS = (
    "/",
    "/v1/predict",
    tei.PATH,
    "/v1/labels",
    "/v1/model",
    "/healthz",
    "/readyz",
    "/metrics",
    docs.PATH,
    *docs.ASSET_PATHS,
    OPENAPI,
)
"""Paths the request metrics name; every other path is counted as ``other``."""
OPEN_CONNECTIONS = "multihot.open_connections"
"""The scope extension in which the server (:mod:`multihot.serve.protocol`) says how many
connections it holds open; past ``max_connections`` a request gets 503."""
JSON_PATHS = ["/v1/predict", tei.PATH]
"""The paths that take a JSON body (any other type gets 415)."""


def create_app(predictor, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app that serves ``predictor``
    (a :class:`multihot.inference.predictor.Predictor`).

    Example:
        >>> import uvicorn  # doctest: +SKIP
        >>> app = create_app(Predictor.load("runs/emotions"))  # doctest: +SKIP
        >>> uvicorn.run(app, port=8000)  # doctest: +SKIP
    """
    config = config or ServeConfig()
    state = ServerState(predictor, config)
    app = FastAPI(
        title="multihot",
        version=__version__,
        description="Multi-label text classification: a run directory served with its labels "
        "and tuned thresholds.",
        lifespan=_lifespan(state),
        openapi_url=OPENAPI,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: docs.router serves it here
        redoc_url=None,  # undocumented, and it loads from a CDN
    )
    app.state.multihot = state
    _add_error_handlers(app, state.model_id)
    for routes in (
        predict.router(state),
        tei.router(state),
        info.router(state),
        page.router(),
        docs.router(OPENAPI, app.title),
    ):
        app.include_router(routes)
    policy = AccessPolicy(config.host, config.allowed_hosts, config.api_key, JSON_PATHS)
    app.add_middleware(AccessControl, policy=policy, model_id=state.model_id)
    app.add_middleware(Instrumented, state=state)  # outermost: refusals are counted too
    return app


def _lifespan(state: ServerState):
    """Start the batcher and warm the model up before serving; stop the batcher after."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.batcher.start()
        await asyncio.get_running_loop().run_in_executor(None, state.warm_up)
        logger.info("serving %s (%s backend)", state.model_id, state.predictor.backend)
        yield
        state.draining = True
        state.batcher.stop()

    return lifespan


def _add_error_handlers(app: FastAPI, model_id: str) -> None:
    """Every error in the API's JSON shape: an :class:`ApiError`, a 404 or 405, a body that
    FastAPI's own validation refuses."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return error_response(err, model_id)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return error_response(
            ApiError(err.status_code, code, str(err.detail), headers=err.headers), model_id
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        return error_response(ApiError(422, "invalid_request", str(err.errors())), model_id)


class Instrumented:
    """ASGI middleware: counts and times every HTTP request by endpoint and status, and puts the
    model's id on every response; refuses a request past ``max_connections``. (Plain ASGI rather
    than Starlette's BaseHTTPMiddleware, which would stand between the endpoint and the client's
    disconnect.)"""

    def __init__(self, app, state: ServerState):
        self.app, self.state = app, state
        self._header = (b"x-model-id", state.model_id.encode("latin-1", "replace"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        status = {"code": 500}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        try:
            await self._app_for(scope)(scope, receive, send_wrapped)
        finally:
            metrics = self.state.metrics
            metrics.requests.inc(endpoint=endpoint, status=str(status["code"]))
            metrics.latency.observe(time.perf_counter() - started, endpoint=endpoint)

    def _app_for(self, scope):
        limit = self.state.config.max_connections
        if scope.get("extensions", {}).get(OPEN_CONNECTIONS, 0) <= limit:
            return self.app
        return error_response(
            ApiError(
                503,
                "too_many_connections",
                f"the server holds more than {limit} connections; retry later",
                limit,
                headers={**RETRY_AFTER, **CLOSE},
            ),
            self.state.model_id,
        )
