"""What the server says about itself: ``/v1/labels``, ``/v1/model``, ``/healthz``, ``/readyz``
and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from multihot.serve.errors import RETRY_AFTER, ApiError
from multihot.serve.schemas import ErrorResponse
from multihot.serve.state import ServerState

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus's text format."""


def router(state: ServerState) -> APIRouter:
    """The routes that describe the model and the server ``state`` holds."""
    routes = APIRouter()

    @routes.get("/v1/labels")
    async def labels():
        """The labels, in the model's order, with their thresholds."""
        thresholds = state.model_info["thresholds"]
        return {
            "model_id": state.model_id,
            "labels": [
                {"name": n, "threshold": thresholds[n]} for n in state.predictor.label_names
            ],
        }

    @routes.get("/v1/model")
    async def model():
        """The model: id, kind, encoder, labels, thresholds, validation metrics, per label the
        share of the validation texts it was predicted for and its mean probability there
        (``validation_rates``; null for a run without validation rows), versions, and the
        server's limits."""
        return state.model_info

    @routes.get("/healthz")
    async def healthz():
        """The process answers."""
        return {"status": "ok", "model_id": state.model_id}

    @routes.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz():
        """The model is loaded and has answered, its batcher runs, and the server is not
        shutting down."""
        if state.ready and not state.draining and state.batcher.alive():
            return {"status": "ready", "model_id": state.model_id}
        why = "shutting down" if state.draining else "not ready"
        raise ApiError(503, "not_ready", why, headers=RETRY_AFTER)

    @routes.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        """Prometheus text format: requests by endpoint and status, latency, queue depth,
        batch sizes; per label, the texts answered with it and the sum and count of its
        probability, and the same rates on the run's validation rows."""
        return PlainTextResponse(state.metrics.render(), media_type=METRICS_TYPE)

    return routes
