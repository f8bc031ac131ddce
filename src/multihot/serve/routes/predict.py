"""``POST /v1/predict``: per text, the labels at or above their thresholds and, with
``return_probs``, every label's probability, computed in the server's micro-batches."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from multihot.core.errors import MultihotError
from multihot.serve.batcher import QueueFull
from multihot.serve.body import parse_predict, read_body
from multihot.serve.errors import RETRY_AFTER, ApiError
from multihot.serve.schemas import ErrorResponse, PredictResponse, predict_schema
from multihot.serve.state import ServerState

DISCONNECT_CHECK = "http.disconnect"
ERROR_STATUSES = (400, 408, 413, 415, 422, 503)
"""What ``/v1/predict`` may answer but 200, as ``/docs`` lists it (and 401 with an API key)."""


def router(state: ServerState) -> APIRouter:
    """The ``/v1/predict`` route of the server ``state`` holds; its documented limits and error
    statuses are this server's."""
    config, predictor = state.config, state.predictor
    routes = APIRouter()
    statuses = sorted(ERROR_STATUSES + ((401,) if config.api_key else ()))
    errors: dict[int | str, dict[str, Any]] = {int(s): {"model": ErrorResponse} for s in statuses}
    schema = {"content": {"application/json": {"schema": predict_schema(config)}}}

    @routes.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=errors,
        openapi_extra={"requestBody": {"required": True, **schema}},
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
        job = _submit(state, encoded)
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            await asyncio.wait({job.future, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not job.future.done():  # the client went away first: its texts are not computed
            state.batcher.cancel(job)
            return Response(status_code=499)
        predictions = _predictions(predictor, job.future.result(), return_probs)
        return JSONResponse({"model_id": state.model_id, "predictions": predictions})

    return routes


def _submit(state: ServerState, encoded):
    """The batcher's job for ``encoded``, or 503 when its queue is full or it has stopped."""
    try:
        return state.batcher.submit_job(encoded)
    except QueueFull as err:
        raise ApiError(503, "queue_full", f"{err}; retry later", headers=RETRY_AFTER) from None
    except RuntimeError as err:
        raise ApiError(503, "shutting_down", str(err), headers=RETRY_AFTER) from None


def _predictions(predictor, probs: np.ndarray, return_probs: bool) -> list[dict[str, Any]]:
    """Per row of ``probs`` (``(n_texts, num_labels)``), the labels that fired and, with
    ``return_probs``, every label's probability by name."""
    labels = predictor.labels.decode(predictor.thresholds.apply(probs))
    names = predictor.label_names
    predictions = []
    for fired, row in zip(labels, probs.tolist(), strict=True):
        item: dict[str, Any] = {"labels": fired}
        if return_probs:
            item["probs"] = dict(zip(names, row, strict=True))
        predictions.append(item)
    return predictions


async def _disconnected(receive) -> None:
    """Return once the client has gone away (or the response is complete)."""
    while (await receive())["type"] != DISCONNECT_CHECK:
        pass
