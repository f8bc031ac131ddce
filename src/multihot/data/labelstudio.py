"""Label Studio's import format: texts as tasks, the model's labels as a pre-annotation.

A task is ``{"data": {"text": ..., ...}, "predictions": [prediction]}``; the prediction chooses
labels in the multiple-choice control of the labelling configuration
(:func:`labelling_config`), whose names are :data:`FROM_NAME` and :data:`TO_NAME`. The audit's
relabelling tasks (:mod:`multihot.artifacts.auditdir`) and the texts ``multihot suggest`` picks
(:mod:`multihot.quality.suggest`) are both written with these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

FROM_NAME, TO_NAME = "labels", "text"
"""The names of the Choices control and of the Text object in :func:`labelling_config`."""


def choices_prediction(
    choices: Sequence[str], *, model_version: str, score: float, result_id: str
) -> dict[str, Any]:
    """A prediction that chooses ``choices`` (no labels at all: an empty result, which Label
    Studio shows as nothing chosen, not as an empty choice).

    Example:
        >>> choices_prediction(["joy"], model_version="m", score=0.5, result_id="r0")["result"]
        [{'id': 'r0', 'from_name': 'labels', 'to_name': 'text', 'type': 'choices', 'value': {'choices': ['joy']}}]
    """
    result = []
    if choices:
        result.append(
            {
                "id": result_id,
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "choices",
                "value": {"choices": list(choices)},
            }
        )
    return {"model_version": model_version, "score": score, "result": result}


def task_labels(tasks: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every label a task's prediction chooses, in order of first use."""
    names = (
        name
        for task in tasks
        for prediction in task["predictions"]
        for item in prediction["result"]
        for name in item["value"]["choices"]
    )
    return list(dict.fromkeys(names))


def labelling_config(label_names: Sequence[str], shown: Sequence[tuple[str, str]] = ()) -> str:
    """The labelling configuration of such tasks: the text, then each ``(header, field)`` of
    ``shown`` (a header above the task's ``data[field]``), above one multiple-choice control with
    a choice per label.

    Example:
        >>> print(labelling_config(["joy"]), end="")
        <View>
          <Text name="text" value="$text"/>
          <Choices name="labels" toName="text" choice="multiple" showInLine="true">
            <Choice value="joy"/>
          </Choices>
        </View>
    """
    fields = "".join(
        f"  <Header value={quoteattr(header)}/>\n"
        f"  <Text name={quoteattr(field)} value={quoteattr('$' + field)}/>\n"
        for header, field in shown
    )
    choices = "".join(f"    <Choice value={quoteattr(str(n))}/>\n" for n in label_names)
    return (
        "<View>\n"
        f'  <Text name="{TO_NAME}" value="${TO_NAME}"/>\n'
        f"{fields}"
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="multiple" '
        'showInLine="true">\n'
        f"{choices}"
        "  </Choices>\n"
        "</View>\n"
    )
