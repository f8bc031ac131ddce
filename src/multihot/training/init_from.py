"""Continuing a finished run (``init_from``): a new run whose model starts from a run's encoder,
pooling and head instead of the pretrained encoder.

What the new run takes from the run it starts from:

- the tokenizer and the whole model section of its config (encoder, pooling, head, how a text is
  read, the preparation steps, the ensemble): the weights fit that shape and learned to read texts
  that way, so a model setting given that differs from the run's is refused (:func:`init_config`);
  ``batch_tokens``, which only packs passes, is free;
- its weights, label by label: the new run's labels are the data's; a label the run knew gets its
  rows back (output weight and bias, and with label attention its query), found by name; a new
  label gets fresh rows, initialised as a new model's are; a label of the run that the data lacks
  is refused unless ``drop_labels``, which leaves its rows behind.

What it does not take: the training settings (a fresh optimizer and schedule; the settings given,
and a new run's defaults for the rest), the thresholds and the calibration (tuned again on the new
validation data). An ensemble run continues member by member: member ``i`` starts from the run's
member ``i``. A linear baseline run has no encoder to start from and is refused.

The new run records where it started in its config.json (:data:`~multihot.artifacts.runs.INIT_FROM`:
the run's path and :func:`~multihot.artifacts.runs.model_id`, the labels added and dropped), and so
does its checkpoint: resuming an interrupted run reads the same run again, and refuses one that
changed since.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from multihot.artifacts.runs import model_id, read_run_files
from multihot.artifacts.trainingtexts import read_training_texts
from multihot.artifacts.transformer import load_transformer_model
from multihot.core.config import ModelConfig, RunConfig, is_baseline
from multihot.core.errors import ConfigError, RunDirError
from multihot.data.labels import LabelSet
from multihot.data.texthashes import TextHashes
from multihot.modeling.encoders import encoder_from_config
from multihot.modeling.ensemble import SeedEnsemble
from multihot.modeling.model import MultiLabelModel
from multihot.modeling.relabel import copy_by_label

logger = logging.getLogger(__name__)

FREE_MODEL_SETTINGS = ("batch_tokens",)
"""The settings of the model section that a run started from another may change: they only pack
the encoder's passes. Every other one is the run's."""


@dataclass
class StartingRun:
    """A finished run read to start a new one from: its config, labels, model and tokenizer."""

    path: Path
    """The run directory, absolute."""
    config: RunConfig
    labels: LabelSet
    model: MultiLabelModel | SeedEnsemble
    tokenizer: Any
    encoder_config: dict[str, Any]
    model_id: str
    """:func:`multihot.artifacts.runs.model_id` of the run: which weights, labels and thresholds."""
    drop_labels: bool = False
    """Whether the run's labels that the new data lacks are left behind (else refused)."""
    training_texts: TextHashes | None = None
    """The run's recorded training texts (None for a run saved before they were kept): the new
    run records them with its own, since its starting weights learnt from them."""

    @classmethod
    def read(cls, path: str | Path, *, drop_labels: bool = False) -> StartingRun:
        """Read and check the run directory ``path`` (weights from safetensors only).

        Raises:
            RunDirError: not a complete run directory, or its files disagree.
            ConfigError: a linear baseline run.
        """
        files = read_run_files(path)
        if is_baseline(files.kind):
            raise ConfigError(
                f"init_from {path}: a linear baseline run (TF-IDF + logistic regression) has no "
                "encoder to start from; give a run that multihot train wrote"
            )
        model, tokenizer, encoder_config = load_transformer_model(files)
        return cls(
            files.path.resolve(),
            files.config,
            files.labels,
            model,
            tokenizer,
            encoder_config,
            model_id(files),
            drop_labels,
            read_training_texts(files.path),
        )

    @classmethod
    def resumed(cls, recorded: dict[str, Any] | None, given: str | Path | None, run: Path):
        """The run that the interrupted run ``run`` started from (``recorded``: what its
        checkpoint says, None when it started from the encoder), read again; None for none.

        Raises:
            ConfigError: ``given`` is not the run it started from.
            RunDirError: that run changed since the interrupted one started from it.
        """
        if recorded is None:
            if given is not None:
                raise ConfigError(
                    f"{run}: the interrupted run did not start from another; resume it without "
                    "init_from"
                )
            return None
        if given is not None and Path(given).resolve() != Path(recorded["run"]):
            raise ConfigError(
                f"{run}: the interrupted run started from {recorded['run']}, not {given}; "
                "resume it without init_from"
            )
        start = cls.read(recorded["run"], drop_labels=bool(recorded.get("drop_labels")))
        if start.model_id != recorded.get("model_id"):
            raise RunDirError(
                f"{run}: the run it started from, {start.path}, has changed since (model "
                f"{recorded.get('model_id')} then, {start.model_id} now); it cannot be resumed"
            )
        return start

    def check_output(self, output: str | Path | None) -> None:
        """Refuse to write the new run over the run it starts from."""
        if output is not None and Path(output).resolve() == self.path:
            raise ConfigError(
                f"init_from {self.path}: the new run would replace the run it starts from; "
                "give it another output directory (-o)"
            )

    def check_labels(self, labels: LabelSet) -> None:
        """Refuse data that lacks some of the run's labels, unless ``drop_labels``."""
        dropped = self.dropped(labels)
        if dropped and not self.drop_labels:
            raise ConfigError(
                f"init_from {self.path}: the run has labels the data lacks: {', '.join(dropped)}; "
                "add them to the data, or leave them behind with --drop-labels (drop_labels=True)"
            )
        if dropped:
            logger.info("leaving behind the run's labels the data lacks: %s", ", ".join(dropped))
        added = self.added(labels)
        if added:
            logger.info("new labels, with fresh head rows: %s", ", ".join(added))

    def added(self, labels: LabelSet) -> list[str]:
        """The labels of ``labels`` the run does not know."""
        return [name for name in labels if name not in self.labels]

    def dropped(self, labels: LabelSet) -> list[str]:
        """The run's labels that ``labels`` lacks."""
        return [name for name in self.labels if name not in labels]

    def encoder(self):
        """An encoder of the run's shape; its weights come with :meth:`initialise`."""
        return encoder_from_config(self.encoder_config)

    def member(self, member: int) -> MultiLabelModel:
        """The run's ensemble member ``member`` (its one model when it is no ensemble)."""
        if isinstance(self.model, SeedEnsemble):
            return self.model.members[member]  # type: ignore[return-value]
        return self.model

    def initialise(self, model: MultiLabelModel, member: int, labels: LabelSet) -> None:
        """Give ``model`` (built for ``labels``) the weights of the run's member ``member``."""
        copy_by_label(model, self.member(member), labels.names, self.labels.names)

    def invocation(self) -> dict[str, Any]:
        """What a checkpoint records to read the same run again on resume."""
        return {"run": str(self.path), "model_id": self.model_id, "drop_labels": self.drop_labels}

    def record(self, labels: LabelSet) -> dict[str, Any]:
        """What the new run (of ``labels``) records of where it started."""
        return {
            "run": str(self.path),
            "model_id": self.model_id,
            "new_labels": self.added(labels),
            "dropped_labels": self.dropped(labels),
        }


def init_config(
    start: StartingRun, given: RunConfig | None, overrides: dict[str, Any]
) -> RunConfig:
    """The config of a run that starts from ``start``, before defaults are filled in: the run's
    model section (but :data:`FREE_MODEL_SETTINGS`), and ``given`` with ``overrides`` for the
    training and data settings.

    A model setting counts as given when it is in ``overrides`` or differs from its default in
    ``given``; one given that differs from the run's is refused.

    Raises:
        ConfigError: naming each such setting, the value given and the run's.
    """
    asked = (given or RunConfig()).override(**overrides)
    explicit = {str(key).replace("-", "_") for key, value in overrides.items() if value is not None}
    defaults, own = ModelConfig(), start.config.model
    differ = []
    for name in (f.name for f in fields(ModelConfig) if f.name not in FREE_MODEL_SETTINGS):
        value = getattr(asked.model, name)
        is_given = name in explicit or (
            given is not None and getattr(given.model, name) != getattr(defaults, name)
        )
        if is_given and value != getattr(own, name):
            differ.append(
                f"--{name.replace('_', '-')} {_shown(value)} (the run has "
                f"{_shown(getattr(own, name))})"
            )
    if differ:
        raise ConfigError(
            f"init_from {start.path}: the encoder, the tokenizer and the model's shape come from "
            f"the run, and these settings differ from it: {'; '.join(differ)}; drop them, or train "
            "a new run without --init-from"
        )
    free = {name: getattr(asked.model, name) for name in FREE_MODEL_SETTINGS}
    return RunConfig(model=replace(own, **free), train=asked.train, data=asked.data)


def _shown(value: Any) -> str:
    """A setting as its flag spells it: a list comma-separated, none as ``none``."""
    if isinstance(value, list):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)
