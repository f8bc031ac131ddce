"""A model's weights carried to another label set: what continuing a run (``init_from``) starts from.

Every parameter is copied as it is, except those with one row per label: the output layer's
weights and biases, and label attention's queries (each module names them in ``label_rows``).
There a label the source knew gets its own row back, found by name wherever it sits now, and a
label the source did not know keeps the row the target was built with: a fresh one, initialised
as a new model's is. A label the source knew and the target lacks is left behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def label_parameters(model: nn.Module) -> set[str]:
    """The names (as in ``model.state_dict()``) of the parameters with one row per label.

    Example:
        >>> from multihot.modeling.heads import LinearHead
        >>> sorted(label_parameters(LinearHead(hidden_size=4, num_labels=3)))
        ['out.bias', 'out.weight']
    """
    return {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in getattr(module, "label_rows", ())
    }


def copy_by_label(
    target: nn.Module,
    source: nn.Module,
    target_labels: Sequence[str],
    source_labels: Sequence[str],
) -> list[str]:
    """Load ``source``'s weights into ``target``, a module of the same shape but for its labels.

    Args:
        target: the model to fill; its rows of labels that ``source`` lacks stay as they are.
        source: the model to copy; its rows of labels that ``target`` lacks are left out.
        target_labels: ``target``'s label names, in the order of its rows.
        source_labels: ``source``'s, in the order of its rows.

    Returns:
        The labels of ``target`` that kept their fresh rows (those ``source`` did not know).

    Raises:
        RuntimeError: the two differ other than in their label rows (torch's ``load_state_dict``).

    Example:
        >>> from multihot.modeling.heads import LinearHead
        >>> old, new = LinearHead(4, num_labels=2), LinearHead(4, num_labels=3)
        >>> copy_by_label(new, old, ["b", "c", "a"], ["a", "b"])
        ['c']
        >>> torch.equal(new.out.weight[2], old.out.weight[0])  # "a": row 0 before, row 2 now
        True
    """
    known = {name: row for row, name in enumerate(source_labels)}
    pairs = [(row, known[name]) for row, name in enumerate(target_labels) if name in known]
    rows = torch.tensor([row for row, _ in pairs], dtype=torch.long)
    from_rows = torch.tensor([row for _, row in pairs], dtype=torch.long)
    per_label = label_parameters(target)
    state = target.state_dict()
    for key, value in source.state_dict().items():
        if key in per_label and key in state:
            moved = state[key].clone()
            moved[rows] = value[from_rows].to(moved.dtype)
            state[key] = moved
        else:
            state[key] = value  # a key target lacks fails the strict load below
    target.load_state_dict(state, strict=True)
    return [name for name in target_labels if name not in known]
