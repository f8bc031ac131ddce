"""The HTTP API: a run directory served as it was tuned (its labels, sigmoid per label, its thresholds).

Endpoints:

- ``POST /v1/predict`` ``{"texts": [...], "return_probs": false}``: per text, the labels above
  their thresholds, and with ``return_probs`` every label's probability;
- ``GET /v1/labels``, ``GET /v1/model``: labels and thresholds; the model's id, kind, encoder,
  validation metrics, versions and the server's limits;
- ``GET /healthz`` (the process answers), ``GET /readyz`` (the model is loaded, has answered, and the
  server is not shutting down), ``GET /metrics`` (Prometheus text format);
- ``GET /``: a page to try the model by hand; ``GET /docs``: the OpenAPI page.

Every response carries the model's id in the ``X-Model-Id`` header (and JSON bodies in
``model_id``), so a client can tell which model answered. Errors are JSON,
``{"error": {"code", "message", "limit"?}, "model_id"}``: 400 for a body that is not UTF-8 JSON,
413 for a body, a list of texts or a text past its limit, 422 for the wrong shape or types, an
empty text, text that is not Unicode (a lone surrogate) or a duplicate key, 408 for a body that
does not arrive within ``read_timeout_s``, 503 with ``Retry-After`` when the queue is full or the
server holds ``max_connections`` connections. Before any endpoint, :mod:`multihot.serve.access`
refuses a Host that is not the server's (400), a missing or wrong API key (401) and a JSON endpoint's
body of another type (415). Nothing here reads a file a client names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from importlib import metadata, resources
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from multihot import __version__
from multihot.core.config import BASELINE_KIND, is_baseline
from multihot.core.errors import MultihotError
from multihot.core.files import RepeatedKeyError, json_safe, unique_keys
from multihot.serve.access import AccessControl, AccessPolicy, http_model_id
from multihot.serve.batcher import MicroBatcher, QueueFull
from multihot.serve.config import ServeConfig
from multihot.serve.metrics import ServerMetrics

logger = logging.getLogger(__name__)

ENDPOINTS = (
    "/",
    "/v1/predict",
    "/v1/labels",
    "/v1/model",
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/openapi.json",
)
"""Paths the request metrics name; every other path is counted as ``other``."""
RETRY_AFTER = {"Retry-After": "1"}
"""The header of every 503: try again in a second."""
CLOSE = {"Connection": "close"}
"""The header of an answer sent before the body was read: the connection cannot be reused."""
DISCONNECT_CHECK = "http.disconnect"
OPEN_CONNECTIONS = "multihot.open_connections"
"""The scope extension in which the server (:mod:`multihot.serve.protocol`) says how many
connections it holds open; past ``max_connections`` a request gets 503."""
DRAIN_MIN_BYTES = 16 * 1024 * 1024
"""A body past the limit is still read and dropped, up to 4 x ``max_body_bytes`` and at least
this, before the 413 goes out (:func:`read_body`)."""


# ---------------------------------------------------------------------- schemas (for /docs)
TEXT_PATTERN = r"[\p{L}\p{N}\p{P}\p{S}]"
"""A text's rule as the schema states it (an ECMA-262 regex, searched anywhere in the text): a
letter, digit, punctuation mark or symbol, the rule the server applies
(:data:`multihot.data.encoding.TEXT_CLASSES`)."""


class PredictRequest(BaseModel):
    """Texts to label."""

    model_config = {"extra": "forbid"}
    texts: list[Annotated[str, Field(min_length=1, pattern=TEXT_PATTERN)]] = Field(
        description="The texts, one or more, none empty: each with a letter, digit, "
        "punctuation mark or symbol, not whitespace, control or format characters and combining "
        "marks alone.",
        min_length=1,
    )
    return_probs: bool = Field(False, description="Also return every label's probability.")


class Prediction(BaseModel):
    labels: list[str] = Field(description="The labels whose probability reached its threshold.")
    probs: dict[str, float] | None = Field(
        None, description="Every label's probability (with return_probs), in the model's order."
    )


class PredictResponse(BaseModel):
    model_id: str
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    code: str
    message: str
    limit: int | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
    model_id: str | None


class ApiError(Exception):
    """An answer other than 200 that the request earned: status, a code and a message."""

    def __init__(
        self, status: int, code: str, message: str, limit: int | None = None, headers=None
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.limit = status, code, message, limit
        self.headers = headers or {}


def predict_schema(config: ServeConfig) -> dict[str, Any]:
    """The JSON schema of a ``/v1/predict`` body, with this server's limits on texts."""
    schema = PredictRequest.model_json_schema()
    texts = schema["properties"]["texts"]
    texts["maxItems"], texts["items"]["maxLength"] = config.max_texts, config.max_chars
    return schema


# ----------------------------------------------------------------------------- the request body
def parse_predict(body: bytes, config: ServeConfig) -> tuple[list[str], bool]:
    """``(texts, return_probs)`` of a ``/v1/predict`` body, or the :class:`ApiError` it earns."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(
            400, "invalid_encoding", f"the body is not UTF-8 ({err.reason} at byte {err.start})"
        ) from None
    try:
        # Integers are read as floats: no field takes one, and int() refuses past 4,300 digits.
        payload = json.loads(text, parse_int=float, object_pairs_hook=unique_keys)
    except RepeatedKeyError as err:
        raise ApiError(422, "invalid_request", f"{err}; give each key once") from None
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise ApiError(400, "invalid_json", f"the body is not JSON ({err})") from None
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_request", 'expected a JSON object {"texts": [...]}')
    unknown = sorted(set(payload) - {"texts", "return_probs"})
    if unknown:
        raise ApiError(
            422,
            "invalid_request",
            f"unknown field(s) {', '.join(map(repr, unknown))}; expected texts and return_probs",
        )
    if "texts" not in payload:
        raise ApiError(422, "invalid_request", 'missing "texts": a list of strings')
    texts, return_probs = payload["texts"], payload.get("return_probs", False)
    if not isinstance(return_probs, bool):
        raise ApiError(422, "invalid_request", "return_probs: expected true or false")
    if not isinstance(texts, list):
        raise ApiError(
            422, "invalid_request", f"texts: expected a list of strings, got {_json_type(texts)}"
        )
    if not texts:
        raise ApiError(422, "invalid_request", "texts: the list is empty")
    if len(texts) > config.max_texts:
        raise ApiError(
            413,
            "too_many_texts",
            f"{len(texts)} texts in one request; at most {config.max_texts}",
            config.max_texts,
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ApiError(
                422, "invalid_request", f"texts[{i}]: expected a string, got {_json_type(t)}"
            )
        if len(t) > config.max_chars:
            raise ApiError(
                413,
                "text_too_long",
                f"texts[{i}]: {len(t)} characters; at most {config.max_chars}",
                config.max_chars,
            )
        try:  # JSON may spell a lone surrogate (\ud800), which is no Unicode text
            t.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ApiError(
                422,
                "invalid_request",
                f"texts[{i}]: a lone surrogate (U+"
                f"{ord(t[err.start]):04X}) at character {err.start}; expected Unicode "
                "text",
            ) from None
    return texts, return_probs


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, refused (413) past ``limit`` bytes, whether or not the client declared
    its length, and (408) when it has not all arrived within ``timeout_s`` seconds.

    A body past the limit is still read, and dropped, up to 4 x ``limit`` (at least
    :data:`DRAIN_MIN_BYTES`) before the 413 goes out: a client that closes its connection after
    each request (Python's urllib, and so :class:`multihot.Client`) would otherwise be reset while
    it still sends, and never read the answer. One past that bound is answered at once and its
    connection closed. A client that leaves mid-body is logged in one line, not as an error.
    """
    try:
        return await asyncio.wait_for(_read_body(request, limit), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(
            408, "body_timeout", f"the body did not arrive within {timeout_s:g} s", headers=CLOSE
        ) from None
    except ClientDisconnect:
        logger.info("a client left while sending its body to %s", request.url.path)
        raise ApiError(499, "client_disconnected", "the client left mid-body") from None


async def _read_body(request: Request, limit: int) -> bytes:
    drain = max(4 * limit, DRAIN_MIN_BYTES)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > drain:
        raise _body_too_large(f"{int(declared)} bytes", limit, headers=CLOSE)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > drain:
            raise _body_too_large(f"{size} bytes or more", limit, headers=CLOSE)
        if size <= limit:  # past it, the rest is read only to be dropped
            chunks.append(chunk)
    if size > limit:
        raise _body_too_large(f"{size} bytes", limit)
    return b"".join(chunks)


def _body_too_large(size: str, limit: int, headers=None) -> ApiError:
    return ApiError(
        413, "body_too_large", f"the body has {size}; at most {limit}", limit, headers=headers
    )


async def _disconnected(receive) -> None:
    """Return once the client has gone away (or the response is complete)."""
    while (await receive())["type"] != DISCONNECT_CHECK:
        pass


def error_response(err: ApiError, model_id: str) -> JSONResponse:
    """The JSON answer of an :class:`ApiError`."""
    body = {"code": err.code, "message": err.message}
    if err.limit is not None:
        body["limit"] = err.limit
    return JSONResponse({"error": body, "model_id": model_id}, err.status, headers=err.headers)


# ------------------------------------------------------------------------------------ the app
class ServerState:
    """What the endpoints share: the predictor, its batcher, metrics, readiness."""

    def __init__(self, predictor, config: ServeConfig):
        self.predictor, self.config = predictor, config
        self.model_id = http_model_id(predictor.model_id or "unnamed")  # it goes in a header
        self.metrics = ServerMetrics(queue_depth=lambda: self.batcher.depth)
        self.batcher = MicroBatcher(
            predictor,
            max_batch=config.max_batch,
            max_batch_tokens=config.max_batch_tokens,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            on_batch=self._on_batch,
            on_drop=lambda n: self.metrics.dropped.inc(n),
        )
        self.ready = False
        self.draining = False
        self.model_info = self._model_info()

    def _on_batch(self, texts: int, padded_tokens: int) -> None:
        self.metrics.batch_size.observe(texts)
        self.metrics.batch_tokens.observe(padded_tokens)
        self.metrics.texts.inc(texts)

    def _model_info(self) -> dict[str, Any]:
        p, files = self.predictor, self.predictor.files
        linear = files is not None and is_baseline(files.kind)
        validation = files.metrics.get("validation", {}) if files is not None else {}
        return {
            "model_id": self.model_id,
            "run": files.path.name if files is not None else None,
            "kind": files.kind if files is not None else None,
            "backend": p.backend,
            "precision": p.precision,
            "encoder": BASELINE_KIND if linear else p.config.model.encoder,
            "max_length": p.config.model.max_length,
            "long_text": None if linear else p.config.model.long_text,
            "max_chunks": p.config.model.max_chunks if p.config.model.chunked else None,
            "labels": p.label_names,
            "thresholds": dict(zip(p.label_names, map(float, p.thresholds.values), strict=True)),
            "threshold_strategy": p.thresholds.strategy,
            "calibration": (
                None
                if files is None or files.calibration is None
                else json_safe(files.calibration.to_dict(p.label_names))
            ),
            "validation": json_safe(validation),
            "versions": {
                "trained_with": files.raw.get("versions", {}) if files is not None else {},
                "serving": serving_versions(p.backend),
            },
            "limits": self.config.limits(),
        }

    def warm_up(self) -> None:
        """One forward pass before the server says it is ready (builds the inference copy)."""
        self.predictor.predict_proba_encoded(self.predictor.encode(["warm up"]), batch_size=1)
        self.ready = True


def serving_versions(backend: str) -> dict[str, str]:
    """The versions of what answers requests, read from the installed packages' metadata (the
    ONNX backend's server never imports torch)."""
    engine = "onnxruntime" if backend == "onnx" else "torch"
    versions = {"multihot": __version__}
    for name in ("fastapi", "uvicorn", "tokenizers", engine):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


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

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.batcher.start()
        await asyncio.get_running_loop().run_in_executor(None, state.warm_up)
        logger.info("serving %s (%s backend)", state.model_id, predictor.backend)
        yield
        state.draining = True
        state.batcher.stop()

    app = FastAPI(
        title="multihot",
        version=__version__,
        description="Multi-label text classification: a run directory served with its labels "
        "and tuned thresholds.",
        lifespan=lifespan,
        redoc_url=None,  # undocumented, and it loads from a CDN
    )
    app.state.multihot = state

    def error(err: ApiError) -> JSONResponse:
        return error_response(err, state.model_id)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return error(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return error(ApiError(err.status_code, code, str(err.detail), headers=err.headers))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        return error(ApiError(422, "invalid_request", str(err.errors())))

    statuses = sorted((400, 408, 413, 415, 422, 503) + ((401,) if config.api_key else ()))
    errors = {int(s): {"model": ErrorResponse} for s in statuses}
    schema = predict_schema(config)

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=errors,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
        },
    )
    async def predict(request: Request):
        """Label texts: per text, the labels at or above their thresholds and, with
        ``return_probs``, every label's probability."""
        body = await read_body(request, config.max_body_bytes, config.read_timeout_s)
        texts, return_probs = parse_predict(body, config)
        try:
            encoded = predictor.encode(texts)
        except MultihotError as err:  # an empty text, as training refuses one
            raise ApiError(422, "invalid_request", str(err)) from None
        try:
            job = state.batcher.submit_job(encoded)
        except QueueFull as err:
            raise ApiError(503, "queue_full", f"{err}; retry later", headers=RETRY_AFTER) from None
        except RuntimeError as err:
            raise ApiError(503, "shutting_down", str(err), headers=RETRY_AFTER) from None
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            await asyncio.wait({job.future, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not job.future.done():  # the client went away first: its texts are not computed
            state.batcher.cancel(job)
            return Response(status_code=499)
        probs = job.future.result()
        labels = predictor.labels.decode(predictor.thresholds.apply(probs))
        names = predictor.label_names
        predictions = []
        for fired, row in zip(labels, probs.tolist(), strict=True):
            item: dict[str, Any] = {"labels": fired}
            if return_probs:
                item["probs"] = dict(zip(names, row, strict=True))
            predictions.append(item)
        return JSONResponse({"model_id": state.model_id, "predictions": predictions})

    @app.get("/v1/labels")
    async def labels():
        """The labels, in the model's order, with their thresholds."""
        thresholds = state.model_info["thresholds"]
        return {
            "model_id": state.model_id,
            "labels": [{"name": n, "threshold": thresholds[n]} for n in predictor.label_names],
        }

    @app.get("/v1/model")
    async def model():
        """The model: id, kind, encoder, labels, thresholds, validation metrics, versions, and the
        server's limits."""
        return state.model_info

    @app.get("/healthz")
    async def healthz():
        """The process answers."""
        return {"status": "ok", "model_id": state.model_id}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz():
        """The model is loaded and has answered, its batcher runs, and the server is not
        shutting down."""
        if state.ready and not state.draining and state.batcher.alive():
            return {"status": "ready", "model_id": state.model_id}
        why = "shutting down" if state.draining else "not ready"
        raise ApiError(503, "not_ready", why, headers=RETRY_AFTER)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        """Prometheus text format: requests by endpoint and status, latency, queue depth,
        batch sizes."""
        return PlainTextResponse(
            state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE)

    policy = AccessPolicy(config.host, config.allowed_hosts, config.api_key, ["/v1/predict"])
    app.add_middleware(AccessControl, policy=policy, model_id=state.model_id)
    app.add_middleware(Instrumented, state=state)  # outermost: refusals are counted too
    return app


PAGE = resources.files("multihot.serve").joinpath("page.html").read_text(encoding="utf-8")
"""The page at ``/``: plain HTML, CSS and JavaScript, nothing fetched from elsewhere."""


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
