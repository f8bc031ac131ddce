"""A Python client for ``multihot serve``: the standard library only, so any program can use it.

Example:
    >>> client = Client("http://127.0.0.1:8000")  # doctest: +SKIP
    >>> client.predict(["so happy for you!"])  # doctest: +SKIP
    [['joy']]
    >>> client.predict_proba(["so happy for you!"]).shape  # doctest: +SKIP
    (1, 28)
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

from multihot.core.errors import MultihotError
from multihot.serve.access import API_KEY_ENV


class ServerError(MultihotError):
    """The server answered with an error (``status``, and its ``code`` such as ``queue_full``)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class Client:
    """Talks to a multihot server.

    Args:
        url: the server's address, e.g. ``http://127.0.0.1:8000``.
        timeout: seconds to wait for each answer.
        api_key: the server's key (``multihot serve --api-key``), sent as
            ``Authorization: Bearer``; default: the ``MULTIHOT_API_KEY`` variable, if set.

    Attributes:
        model_id: the id of the model that gave the last answer.

    Before its first prediction it reads the server's limits from ``GET /v1/model``, and refuses
    locally, as :class:`ServerError` 413 naming the limit, a request the server would refuse.
    """

    def __init__(self, url: str, timeout: float = 60.0, api_key: str | None = None):
        self.url, self.timeout = url.rstrip("/"), timeout
        api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        if api_key is not None and not (api_key and all("!" <= c <= "~" for c in api_key)):
            raise MultihotError("api_key: expected printable ASCII characters without spaces")
        self._headers = {"Content-Type": "application/json"}
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.model_id: str | None = None
        self._labels: list[str] | None = None
        self._limits: dict[str, int] | None = None  # the server's, read before the first predict

    def _call(self, path: str, payload: dict | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                self.model_id = response.headers.get("X-Model-Id", self.model_id)
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read()).get("error", {})
            except (ValueError, AttributeError):
                body = {}
            message = body.get("message", err.reason)
            if err.code == 401:
                message += f"; pass Client(url, api_key=...) or set {API_KEY_ENV}"
            raise ServerError(err.code, body.get("code", "http_error"), message) from None
        except urllib.error.URLError as err:
            raise MultihotError(f"{self.url}: cannot reach the server ({err.reason})") from None

    @property
    def label_names(self) -> list[str]:
        """The model's labels, in the order of :meth:`predict_proba`'s columns."""
        if self._labels is None:
            self._labels = [label["name"] for label in self._call("/v1/labels")["labels"]]
        return self._labels

    def model(self) -> dict[str, Any]:
        """``GET /v1/model``: id, kind, encoder, labels, thresholds, validation metrics, limits."""
        return self._call("/v1/model")

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        """The labels that fire, per text, with the model's thresholds."""
        answer = self._call("/v1/predict", self._within_limits({"texts": _texts(texts)}))
        return [p["labels"] for p in answer["predictions"]]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of shape ``(n_texts, num_labels)``; column ``j`` is ``label_names[j]``."""
        payload = {"texts": _texts(texts), "return_probs": True}
        answer = self._call("/v1/predict", self._within_limits(payload))
        names = self.label_names
        return np.array(
            [[p["probs"][n] for n in names] for p in answer["predictions"]], dtype=np.float64
        ).reshape(len(answer["predictions"]), len(names))

    def _within_limits(self, payload: dict) -> dict:
        """``payload``, or the :class:`ServerError` 413 the server would answer it with: a body
        past the limit is better not sent (the server may close the connection while it comes)."""
        limits, texts = self._server_limits(), payload["texts"]
        if len(texts) > limits.get("max_texts", len(texts)):
            raise _too_large(
                "too_many_texts", f"{len(texts)} texts in one request", limits, "max_texts"
            )
        for i, text in enumerate(texts):
            if isinstance(text, str) and len(text) > limits.get("max_chars", len(text)):
                raise _too_large(
                    "text_too_long", f"texts[{i}]: {len(text)} characters", limits, "max_chars"
                )
        size = len(json.dumps(payload).encode("utf-8"))
        if size > limits.get("max_body_bytes", size):
            raise _too_large(
                "body_too_large", f"a request body of {size} bytes", limits, "max_body_bytes"
            )
        return payload

    def _server_limits(self) -> dict[str, int]:
        """The server's limits, read once; none from a server that does not report them."""
        if self._limits is None:
            try:
                self._limits = dict(self.model().get("limits") or {})
            except ServerError:  # the server checks for itself
                return {}
        return self._limits


def _too_large(code: str, what: str, limits: dict[str, int], name: str) -> ServerError:
    return ServerError(
        413,
        code,
        f"{what}; the server takes at most {name}={limits[name]} (refused before sending)",
    )


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise MultihotError("expected a list of texts, got a single string; wrap it in a list")
    return list(texts)
