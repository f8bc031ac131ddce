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
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

from multihot.core.errors import MultihotError


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

    Attributes:
        model_id: the id of the model that gave the last answer.
    """

    def __init__(self, url: str, timeout: float = 60.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.model_id: str | None = None
        self._labels: list[str] | None = None

    def _call(self, path: str, payload: dict | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                self.model_id = response.headers.get("X-Model-Id", self.model_id)
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read()).get("error", {})
            except (ValueError, AttributeError):
                body = {}
            raise ServerError(err.code, body.get("code", "http_error"),
                              body.get("message", err.reason)) from None  # fmt: skip
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
        answer = self._call("/v1/predict", {"texts": _texts(texts)})
        return [p["labels"] for p in answer["predictions"]]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of shape ``(n_texts, num_labels)``; column ``j`` is ``label_names[j]``."""
        answer = self._call("/v1/predict", {"texts": _texts(texts), "return_probs": True})
        names = self.label_names
        return np.array([[p["probs"][n] for n in names] for p in answer["predictions"]],
                        dtype=np.float64).reshape(len(answer["predictions"]), len(names))  # fmt: skip


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise MultihotError("expected a list of texts, got a single string; wrap it in a list")
    return list(texts)
