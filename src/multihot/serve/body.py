"""The request body: read within its limits of size and time, and a ``/v1/predict`` body parsed
into texts, or the :class:`~multihot.serve.errors.ApiError` it earns. The TEI-compatible route
(:mod:`multihot.serve.routes.tei`) parses its own shape with the same :func:`parse_json` and
:func:`check_texts`, so both routes refuse the same bodies and texts the same way."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from multihot.core.files import RepeatedKeyError, unique_keys
from multihot.data.encoding import lone_surrogate
from multihot.serve.config import ServeConfig
from multihot.serve.errors import CLOSE, ApiError

logger = logging.getLogger(__name__)

DRAIN_MIN_BYTES = 16 * 1024 * 1024
"""A body past the limit is still read and dropped, up to 4 x ``max_body_bytes`` and at least
this, before the 413 goes out (:func:`read_body`)."""
FIELDS = ("texts", "return_probs")
"""The fields of a ``/v1/predict`` body."""


# --------------------------------------------------------------------------- a /v1/predict body
def parse_predict(body: bytes, config: ServeConfig) -> tuple[list[str], bool]:
    """``(texts, return_probs)`` of a ``/v1/predict`` body, or the :class:`ApiError` it earns."""
    texts, return_probs = _fields(parse_json(body))
    check_texts(texts, config)
    return texts, return_probs


def parse_json(body: bytes) -> Any:
    """The body parsed: 400 unless it is UTF-8 JSON, 422 for a key given twice."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(
            400, "invalid_encoding", f"the body is not UTF-8 ({err.reason} at byte {err.start})"
        ) from None
    try:
        # Integers are read as floats: no field takes one, and int() refuses past 4,300 digits.
        return json.loads(text, parse_int=float, object_pairs_hook=unique_keys)
    except RepeatedKeyError as err:
        raise ApiError(422, "invalid_request", f"{err}; give each key once") from None
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise ApiError(400, "invalid_json", f"the body is not JSON ({err})") from None


def _fields(payload: Any) -> tuple[Any, bool]:
    """``(texts, return_probs)`` of an object with those fields and no other; texts unchecked."""
    if not isinstance(payload, dict):
        raise invalid('expected a JSON object {"texts": [...]}')
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise invalid(f"unknown field(s) {names}; expected texts and return_probs")
    if "texts" not in payload:
        raise invalid('missing "texts": a list of strings')
    return_probs = payload.get("return_probs", False)
    if not isinstance(return_probs, bool):
        raise invalid("return_probs: expected true or false")
    return payload["texts"], return_probs


def check_texts(texts: Any, config: ServeConfig, field: str = "texts") -> None:
    """422 unless ``texts`` is a list of Unicode strings; 413 for too many or too long.
    ``field`` is what the messages call the list (``inputs`` on the TEI route)."""
    if not isinstance(texts, list):
        raise invalid(f"{field}: expected a list of strings, got {json_type(texts)}")
    if not texts:
        raise invalid(f"{field}: the list is empty")
    if len(texts) > config.max_texts:
        message = f"{len(texts)} texts in one request; at most {config.max_texts}"
        raise ApiError(413, "too_many_texts", message, config.max_texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise invalid(f"{field}[{i}]: expected a string, got {json_type(text)}")
        if len(text) > config.max_chars:
            message = f"{field}[{i}]: {len(text)} characters; at most {config.max_chars}"
            raise ApiError(413, "text_too_long", message, config.max_chars)
        # JSON may spell a lone surrogate (\ud800), which is no Unicode text
        if (at := lone_surrogate(text)) is not None:
            raise invalid(
                f"{field}[{i}]: a lone surrogate (U+{ord(text[at]):04X}) at character {at}; "
                "expected Unicode text"
            )


def invalid(message: str) -> ApiError:
    """The 422 of a body of the wrong shape or types."""
    return ApiError(422, "invalid_request", message)


def json_type(value: Any) -> str:
    """What a JSON value is, in the words of an error message ("a list", "null")."""
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


# ------------------------------------------------------------------------- reading the body
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
