"""A ``/v1/predict`` body parsed without a server: each refusal's status, code and message."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from multihot.serve.body import parse_predict  # noqa: E402
from multihot.serve.config import ServeConfig  # noqa: E402
from multihot.serve.errors import ApiError  # noqa: E402

CONFIG = ServeConfig(max_texts=3, max_chars=10)


def test_a_body_gives_its_texts_and_return_probs():
    assert parse_predict(b'{"texts": ["a", "b"]}', CONFIG) == (["a", "b"], False)
    assert parse_predict(b'{"return_probs": true, "texts": ["\xc3\xa9"]}', CONFIG) == (
        ["\u00e9"],
        True,
    )


@pytest.mark.parametrize(
    "body, status, code, message",
    [
        (b"\xff", 400, "invalid_encoding", "the body is not UTF-8 (invalid start byte at byte 0)"),
        (b"{", 400, "invalid_json", "the body is not JSON"),
        (b'{"texts": ["a"], "texts": ["b"]}', 422, "invalid_request", "give each key once"),
        (b"[1]", 422, "invalid_request", 'expected a JSON object {"texts": [...]}'),
        (
            b'{"b": 1, "a": 2, "texts": []}',
            422,
            "invalid_request",
            "unknown field(s) 'a', 'b'; expected texts and return_probs",
        ),
        (b"{}", 422, "invalid_request", 'missing "texts": a list of strings'),
        (b'{"texts": 1, "return_probs": 1}', 422, "invalid_request", "return_probs: expected"),
        (b'{"texts": {}}', 422, "invalid_request", "texts: expected a list of strings, got an"),
        (b'{"texts": []}', 422, "invalid_request", "texts: the list is empty"),
        (b'{"texts": [1, "a", "b", "c"]}', 413, "too_many_texts", "4 texts in one request; at"),
        (
            b'{"texts": ["a", null]}',
            422,
            "invalid_request",
            "texts[1]: expected a string, got null",
        ),
        (b'{"texts": ["a", "' + b"x" * 11 + b'"]}', 413, "text_too_long", "texts[1]: 11 char"),
        (
            b'{"texts": ["a", "\xc3\xa9\\ud800"]}',
            422,
            "invalid_request",
            "texts[1]: a lone surrogate (U+D800) at character 1; expected Unicode text",
        ),
    ],
)
def test_each_refusal_says_what_is_wrong(body, status, code, message):
    with pytest.raises(ApiError) as caught:
        parse_predict(body, CONFIG)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert message in caught.value.message
