"""The shapes of the API's bodies as ``/docs`` states them (pydantic models for the OpenAPI schema).

The server reads a ``/v1/predict`` body itself (:func:`multihot.serve.body.parse_predict`); these
models describe it, they do not parse it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from multihot.serve.config import ServeConfig

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


def predict_schema(config: ServeConfig) -> dict[str, Any]:
    """The JSON schema of a ``/v1/predict`` body, with this server's limits on texts."""
    schema = PredictRequest.model_json_schema()
    texts = schema["properties"]["texts"]
    texts["maxItems"], texts["items"]["maxLength"] = config.max_texts, config.max_chars
    return schema
