"""``POST /v1/predict``: per text, the labels at or above their thresholds and, with
``return_probs``, every label's probability, computed in the server's micro-batches.

:func:`answer_texts` is the part every prediction route shares (this one and the TEI-compatible
:mod:`multihot.serve.routes.tei`): encode, queue in the batcher, wait for the probabilities
unless the client leaves, apply the thresholds and count the answer in the label metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from multihot.core.errors import MultihotError
from multihot.serve.batcher import QueueFull
from multihot.serve.body import parse_predict, read_body
from multihot.serve.config import ServeConfig
from multihot.serve.errors import RETRY_AFTER, ApiError
from multihot.serve.schemas import ErrorResponse, PredictResponse, predict_schema
from multihot.serve.state import ServerState

DISCONNECT_CHECK = "http.disconnect"
CLIENT_LEFT = 499
"""The status logged for a request whose client went away before its answer (nginx's code)."""
ERROR_STATUSES = (400, 408, 413, 415, 422, 503)
"""What ``/v1/predict`` may answer but 200, as ``/docs`` lists it (and 401 with an API key)."""


def router(state: ServerState) -> APIRouter:
    """The ``/v1/predict`` route of the server ``state`` holds; its documented limits and error
    statuses are this server's."""
    config, predictor = state.config, state.predictor
    routes = APIRouter()
    schema = {"content": {"application/json": {"schema": predict_schema(config)}}}

    @routes.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=error_responses(config),
        openapi_extra={"requestBody": {"required": True, **schema}},
    )
    async def predict(request: Request):
        """Label texts: per text, the labels at or above their thresholds and, with
        ``return_probs``, every label's probability."""
        body = await read_body(request, config.max_body_bytes, config.read_timeout_s)
        texts, return_probs = parse_predict(body, config)
        answer = await answer_texts(state, request, texts)
        if answer is None:
            return Response(status_code=CLIENT_LEFT)
        predictions = _predictions(predictor, answer, return_probs)
        return JSONResponse({"model_id": state.model_id, "predictions": predictions})

    return routes


def error_responses(config: ServeConfig) -> dict[int | str, dict[str, Any]]:
    """The statuses but 200 a prediction route may answer, as ``/docs`` lists them: those of
    :data:`ERROR_STATUSES`, and 401 when the server has an API key."""
    statuses = sorted(ERROR_STATUSES + ((401,) if config.api_key else ()))
    return {int(s): {"model": ErrorResponse} for s in statuses}


@dataclass(frozen=True)
class Answer:
    """What the model says of a request's texts.

    Attributes:
        probs: ``(n_texts, num_labels)`` float32, the probabilities (sigmoid per label).
        decisions: ``(n_texts, num_labels)`` bool, the run's thresholds applied.
    """

    probs: np.ndarray
    decisions: np.ndarray


async def answer_texts(state: ServerState, request: Request, texts: list[str]) -> Answer | None:
    """The model's answer for ``texts`` (checked already), computed in the batcher's
    micro-batches and counted in the label metrics; None when the client went away first (its
    texts are dropped, not computed: answer :data:`CLIENT_LEFT`).

    Raises:
        ApiError: 422 for a text the model cannot read (empty once prepared, as training refuses
            one); 503 when the queue is full or the server is stopping.
    """
    try:
        encoded = state.predictor.encode(texts)
    except MultihotError as err:
        raise ApiError(422, "invalid_request", str(err)) from None
    job = _submit(state, encoded)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({job.future, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not job.future.done():  # the client went away first: its texts are not computed
        state.batcher.cancel(job)
        return None
    probs = job.future.result()
    answer = Answer(probs, state.predictor.thresholds.apply(probs))
    state.metrics.record_served(answer.probs, answer.decisions)
    return answer


def _submit(state: ServerState, encoded):
    """The batcher's job for ``encoded``, or 503 when its queue is full or it has stopped."""
    try:
        return state.batcher.submit_job(encoded)
    except QueueFull as err:
        raise ApiError(503, "queue_full", f"{err}; retry later", headers=RETRY_AFTER) from None
    except RuntimeError as err:
        raise ApiError(503, "shutting_down", str(err), headers=RETRY_AFTER) from None


def _predictions(predictor, answer: Answer, return_probs: bool) -> list[dict[str, Any]]:
    """Per text, the labels that fired and, with ``return_probs``, every label's probability by
    name."""
    labels = predictor.labels.decode(answer.decisions)
    names = predictor.label_names
    predictions = []
    for fired, row in zip(labels, answer.probs.tolist(), strict=True):
        item: dict[str, Any] = {"labels": fired}
        if return_probs:
            item["probs"] = dict(zip(names, row, strict=True))
        predictions.append(item)
    return predictions


async def _disconnected(receive) -> None:
    """Return once the client has gone away (or the response is complete)."""
    while (await receive())["type"] != DISCONNECT_CHECK:
        pass
