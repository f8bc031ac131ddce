"""``POST /predict``: the sequence-classification route of Hugging Face text-embeddings-inference
(TEI), so clients written for TEI label texts with a multihot run, multi-label done right.

The request is TEI's: ``{"inputs": ..., "truncate": bool | null, "truncation_direction":
"right" | "left", "raw_scores": bool}``; other fields are ignored, as TEI ignores them
(``huggingface_hub``'s ``InferenceClient.text_classification`` sends ``"parameters"``).

- ``inputs``: a string (one text), answered with one list; or a list whose items are texts,
  each a string or, as TEI writes a batch, a list of one string (``[["a"], ["b"]]``), answered with
  one list per text. TEI reads a list of two strings as a *pair* of texts for a cross-encoder;
  multihot classifies single texts, so a list of strings is a batch here, and a pair inside a
  batch (``[["a", "b"]]``) is refused.
- ``truncate`` (default: the model's own reading): true or null reads each text as the model was
  trained to (its first ``max_length`` tokens, or with ``long_text`` chunking up to ``max_chunks``
  windows); false refuses, with 422 as TEI does, a text longer than that.
- ``truncation_direction``: ``right`` (TEI's default) cuts the end, as the model always does;
  ``left`` cannot be honoured (the model reads a text's first tokens), so a text that would be cut
  is refused with 422; one that fits is read whole either way.
- ``raw_scores``: false gives each label's probability, a sigmoid per label (TEI would apply a
  softmax across labels, wrong for labels that are not exclusive); true gives the log-odds of that
  probability, ``log(p / (1 - p))``: the model's logit (after calibration, when the run is
  calibrated), recovered from the float32 probability the predictor computes (the ONNX graph
  returns probabilities, not logits). It is the logit within float32 rounding, but for logits
  above about 16.6, whose probability rounds to 1: they read 16.6 (:data:`MAX_LOG_ODDS`).

Each item is TEI's ``{"label", "score"}``, sorted by score, highest first, with two more keys
TEI's clients ignore: ``threshold``, the run's threshold for the label in the same units as
``score``, and ``predicted``, whether the run predicts the label (what ``/v1/predict`` lists,
the top-1 fallback included). Errors keep this server's JSON shape and statuses (413 for too many
or too long texts, 503 with ``Retry-After`` when the queue is full); TEI's are ``{"error",
"error_type"}``. The same API key, limits and micro-batches as ``/v1/predict`` apply, and the texts
answered count in the label metrics alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from multihot.data.encoding import text_lengths, tokens_read
from multihot.data.preprocess import prepare_texts
from multihot.serve.body import check_texts, invalid, json_type, parse_json, read_body
from multihot.serve.config import ServeConfig
from multihot.serve.errors import ApiError
from multihot.serve.routes.predict import CLIENT_LEFT, Answer, answer_texts, error_responses
from multihot.serve.schemas import TeiPrediction, tei_schema
from multihot.serve.state import ServerState

PATH = "/predict"
DIRECTIONS = {"right": "right", "Right": "right", "left": "left", "Left": "left"}
"""The values of ``truncation_direction`` TEI accepts, and what each means."""
BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))
"""The largest float32 probability below 1."""
MAX_LOG_ODDS = float(np.log(BELOW_ONE) - np.log1p(-BELOW_ONE))
"""The largest score ``raw_scores`` gives (about 16.6): the log-odds of :data:`BELOW_ONE`."""


@dataclass(frozen=True)
class TeiQuery:
    """A TEI ``/predict`` body, read.

    Attributes:
        texts: the texts, one or more.
        single: ``inputs`` was one string: the answer is one list, not a list of lists.
        truncate: read a text longer than the model reads as the model does (True), or refuse it.
        direction: ``right`` or ``left``.
        raw_scores: scores are log-odds instead of probabilities.
    """

    texts: list[str]
    single: bool
    truncate: bool
    direction: str
    raw_scores: bool


def router(state: ServerState) -> APIRouter:
    """The TEI-compatible ``/predict`` route of the server ``state`` holds."""
    config = state.config
    routes = APIRouter()

    @routes.post(
        PATH,
        summary="Label texts (text-embeddings-inference's shape)",
        response_model=list[TeiPrediction] | list[list[TeiPrediction]],
        responses=error_responses(config),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": tei_schema(config)}},
            }
        },
    )
    async def predict_tei(request: Request):
        """Label texts as Hugging Face text-embeddings-inference's ``/predict`` does, multi-label:
        per text, every label with its probability (a sigmoid per label; its log-odds with
        ``raw_scores``), highest first, with the run's threshold and whether it is predicted."""
        body = await read_body(request, config.max_body_bytes, config.read_timeout_s)
        query = parse_tei(parse_json(body), config)
        _check_lengths(state, query)
        answer = await answer_texts(state, request, query.texts)
        if answer is None:
            return Response(status_code=CLIENT_LEFT)
        ranked = tei_predictions(state.predictor, answer, query.raw_scores)
        return JSONResponse(ranked[0] if query.single else ranked)

    return routes


def parse_tei(payload: Any, config: ServeConfig) -> TeiQuery:
    """A TEI ``/predict`` body (parsed JSON) as a :class:`TeiQuery`, or the 422 or 413 it earns."""
    if not isinstance(payload, dict):
        raise invalid('expected a JSON object {"inputs": ...}')
    if "inputs" not in payload:
        raise invalid('missing "inputs": a string, or a list of strings')
    inputs = payload["inputs"]
    single = isinstance(inputs, str)
    texts = [inputs] if single else _batch(inputs)
    check_texts(texts, config, field="inputs")
    truncate = payload.get("truncate")
    if truncate is not None and not isinstance(truncate, bool):
        raise invalid(f"truncate: expected true, false or null, got {json_type(truncate)}")
    direction = payload.get("truncation_direction", "right")
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise invalid(f'truncation_direction: expected "right" or "left", got {direction!r}')
    raw_scores = payload.get("raw_scores", False)
    if not isinstance(raw_scores, bool):
        raise invalid(f"raw_scores: expected true or false, got {json_type(raw_scores)}")
    return TeiQuery(texts, single, truncate is not False, DIRECTIONS[direction], raw_scores)


def _batch(inputs: Any) -> list:
    """The texts of a batch: its strings, and the string of each one-string list (TEI's
    ``[["a"], ["b"]]``); other items are left for :func:`check_texts` to refuse, but a pair."""
    if not isinstance(inputs, list):
        raise invalid(f"inputs: expected a string or a list of strings, got {json_type(inputs)}")
    texts = []
    for i, item in enumerate(inputs):
        if isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item):
            raise invalid(
                f"inputs[{i}]: a pair of texts; this model classifies single texts (send "
                'each as a string, or as ["text"])'
            )
        texts.append(item[0] if isinstance(item, list) and len(item) == 1 else item)
    return texts


def _check_lengths(state: ServerState, query: TeiQuery) -> None:
    """422 for a text longer than the model reads when ``truncate`` is false or the direction is
    ``left`` (the model keeps a text's first tokens only). A linear baseline reads every word."""
    if query.truncate and query.direction == "right":
        return
    engine = state.predictor.engine
    tokenizer, reading = getattr(engine, "tokenizer", None), getattr(engine, "reading", None)
    if tokenizer is None or reading is None:
        return
    limit = tokens_read(tokenizer, reading)
    lengths = text_lengths(tokenizer, prepare_texts(query.texts, reading.preprocess))
    for i, tokens in enumerate(lengths):
        if tokens <= limit:
            continue
        what = f"inputs[{i}]: {tokens} tokens; the model reads at most {limit}"
        if not query.truncate:
            raise ApiError(422, "input_too_long", f"{what} and truncate is false", limit)
        raise ApiError(
            422,
            "truncation_direction_unsupported",
            f'{what}, from the start of a text: truncation_direction "left" cannot be '
            'honoured; send "right", or a shorter text',
            limit,
        )


def tei_predictions(predictor, answer: Answer, raw_scores: bool) -> list[list[dict[str, Any]]]:
    """Per text, TEI's ``[{"label", "score"}, ...]`` sorted by score, highest first, each item
    with the label's ``threshold`` (in the units of ``score``) and whether it is ``predicted``."""
    scores = log_odds(answer.probs) if raw_scores else answer.probs
    thresholds = np.asarray(predictor.thresholds.values, dtype=np.float64)
    if raw_scores:
        thresholds = log_odds(thresholds)
    names, limits = predictor.label_names, thresholds.tolist()
    ranked = []
    for row, fired in zip(scores.tolist(), answer.decisions.tolist(), strict=True):
        order = sorted(range(len(names)), key=lambda j: -row[j])
        ranked.append(
            [
                {"label": names[j], "score": row[j], "threshold": limits[j], "predicted": fired[j]}
                for j in order
            ]
        )
    return ranked


def log_odds(probs: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` in float64, for float32 probabilities: a probability of 0 reads as the
    smallest float32 (about -103.3), one of 1 as :data:`BELOW_ONE` (:data:`MAX_LOG_ODDS`).

    Example:
        >>> log_odds(np.array([0.5, 0.880797, 1.0], dtype=np.float32)).round(3).tolist()
        [0.0, 2.0, 16.636]
    """
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    p = np.clip(np.asarray(probs, dtype=np.float64), tiny, BELOW_ONE)
    return np.log(p) - np.log1p(-p)
