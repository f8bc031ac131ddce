"""The shapes of the API's bodies as ``/docs`` states them (pydantic models for the OpenAPI schema).

The server reads a ``/v1/predict`` body itself (:func:`multihot.serve.body.parse_predict`), and a
TEI-shaped ``/predict`` body (:func:`multihot.serve.routes.tei.parse_tei`); these models describe
them, they do not parse them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from multihot.serve.config import ServeConfig

TEXT_PATTERN = r"[\p{L}\p{N}\p{P}\p{S}]"
"""A text's rule as the schema states it (an ECMA-262 regex, searched anywhere in the text): a
letter, digit, punctuation mark or symbol, the rule the server applies
(:data:`multihot.data.encoding.TEXT_CLASSES`)."""


Text = Annotated[str, Field(min_length=1, pattern=TEXT_PATTERN)]
"""A text, as the schema states it: not empty, with a letter, digit, punctuation mark or symbol."""


class PredictRequest(BaseModel):
    """Texts to label."""

    model_config = {"extra": "forbid"}
    texts: list[Text] = Field(
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


class TeiRequest(BaseModel):
    """Texts to label, as Hugging Face text-embeddings-inference's ``/predict`` takes them
    (read by :func:`multihot.serve.routes.tei.parse_tei`; other fields are ignored, as TEI
    ignores them)."""

    inputs: (
        Text
        | Annotated[
            list[Text | Annotated[list[Text], Field(min_length=1, max_length=1)]],
            Field(min_length=1),
        ]
    ) = Field(
        description="One text (answered with one list), or a batch: a list of texts, each a "
        'string or a list of one string (TEI\'s [["a"], ["b"]]), answered with one list per '
        "text. Pairs of texts are not read: the model classifies single texts.",
        examples=["I like you.", [["I like you."], ["I hate pineapples"]]],
    )
    truncate: bool | None = Field(
        None,
        description="true or null: a text longer than the model reads is read as the model "
        "does (its first max_length tokens, or its windows); false: such a text gets 422.",
    )
    truncation_direction: Literal["right", "left", "Right", "Left"] = Field(
        "right",
        description="The model keeps a text's first tokens: left is refused (422) for a text "
        "that would be cut.",
    )
    raw_scores: bool = Field(
        False,
        description="false: each label's probability (a sigmoid per label); true: its "
        "log-odds, log(p / (1 - p)), the model's (calibrated) logit.",
    )


class TeiPrediction(BaseModel):
    label: str
    score: float = Field(description="The label's probability, or its log-odds with raw_scores.")
    threshold: float = Field(description="The run's threshold for the label, in score's units.")
    predicted: bool = Field(
        description="Whether the run predicts the label: score at or above threshold, or the "
        "text's top label when no label reaches its threshold and the run falls back to one."
    )


class ErrorBody(BaseModel):
    code: str
    message: str
    limit: int | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
    model_id: str | None


def tei_schema(config: ServeConfig) -> dict[str, Any]:
    """The JSON schema of a TEI-shaped ``/predict`` body, with this server's limits on texts."""
    schema = TeiRequest.model_json_schema()
    text, batch = schema["properties"]["inputs"]["anyOf"]
    batch["maxItems"] = config.max_texts
    for node in (text, batch["items"]["anyOf"][0], batch["items"]["anyOf"][1]["items"]):
        node["maxLength"] = config.max_chars
    return schema


def predict_schema(config: ServeConfig) -> dict[str, Any]:
    """The JSON schema of a ``/v1/predict`` body, with this server's limits on texts."""
    schema = PredictRequest.model_json_schema()
    texts = schema["properties"]["texts"]
    texts["maxItems"], texts["items"]["maxLength"] = config.max_texts, config.max_chars
    return schema
