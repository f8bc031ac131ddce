"""Transformer run directories: the weights (safetensors, with what they were trained as in their
header), the tokenizer and the encoder's config. Apart from :mod:`multihot.artifacts.runs` because
this half needs torch, and ONNX prediction reads a run without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model

from multihot.artifacts.rundir import TOKENIZER, WEIGHTS, convert_hint
from multihot.artifacts.runs import (
    INIT_FROM,
    WEIGHTS_DIGEST,
    RunFiles,
    broken,
    check_weights_digest,
    check_weights_metadata,
    config_json,
    first_line,
    load_tokenizer,
    recorded_digest,
    save_dir,
    weights_digest,
    weights_metadata,
    write_outcome,
)
from multihot.artifacts.validation import ValidationPredictions
from multihot.core.config import TRANSFORMER_KIND, RunConfig
from multihot.core.errors import RunDirError
from multihot.core.files import write_atomic
from multihot.core.pickles import is_pickle
from multihot.data.labels import LabelSet
from multihot.data.texthashes import TextHashes
from multihot.modeling.ensemble import build_model
from multihot.scoring.calibration import Calibration
from multihot.scoring.thresholds import Thresholds


def save_transformer_run(
    path: str | Path,
    *,
    model,
    tokenizer,
    encoder_config: dict[str, Any],
    config: RunConfig,
    labels: LabelSet,
    thresholds: Thresholds,
    metrics: dict,
    history: list,
    calibration: Calibration | None = None,
    validation: ValidationPredictions | None = None,
    init_from: dict[str, Any] | None = None,
    training_texts: TextHashes | None = None,
) -> Path:
    """Write a transformer run directory, all or nothing (a finished run there is replaced);
    ``init_from`` is the record of the run it started from, kept in config.json;
    ``training_texts``, the hashes of the texts it learnt from."""

    def fill(tmp: Path) -> None:
        metadata = weights_metadata(labels, config.model, encoder_config)
        save_model(model, str(tmp / WEIGHTS), metadata=metadata)
        # config.json records which weights it describes: a weights file put in from another
        # run of the same shape would otherwise load with this run's labels and thresholds.
        info = {"encoder_config": encoder_config, WEIGHTS_DIGEST: weights_digest(tmp / WEIGHTS)}
        if init_from is not None:
            info[INIT_FROM] = init_from
        write_atomic(
            tmp / "config.json", config_json(TRANSFORMER_KIND, config, len(labels), **info)
        )
        tokenizer.save_pretrained(str(tmp / TOKENIZER))
        write_outcome(
            tmp, labels, thresholds, metrics, history, calibration, validation, training_texts
        )

    return save_dir(Path(path), fill)


# ----------------------------------------------------------------------------------- reading
def load_transformer_model(files: RunFiles):
    """``(model, tokenizer, encoder_config)`` of a transformer run (weights from safetensors
    only), after checking the weights against what config.json records of them."""
    path, raw = files.path, files.raw
    if not isinstance(raw.get("encoder_config"), dict):
        raise RunDirError(f"{path / 'config.json'}: 'encoder_config' missing or not an object")
    encoder_config = raw["encoder_config"]
    check_weights_metadata(path, weights_metadata(files.labels, files.config.model, encoder_config))
    expected = recorded_digest(path, raw)
    if expected is not None:  # about 0.1 s for a MiniLM-sized run (90 MB)
        check_weights_digest(path, expected, weights_digest(path / WEIGHTS))
    model = build_model(encoder_config, len(files.labels), files.config.model)
    _load_weights(model, path)
    return model, load_tokenizer(path / TOKENIZER), encoder_config


def _load_weights(model, path: Path) -> None:
    """The run's weights into ``model``, or :class:`RunDirError` saying why they do not fit."""
    weights = path / WEIGHTS
    try:
        load_model(model, str(weights), strict=True)
    except RuntimeError as err:  # torch: names or shapes differ from the model's
        if "state_dict" not in str(err):
            raise RunDirError(f"{weights}: cannot load weights ({first_line(err)})") from None
        # The first line only says "Error(s) in loading state_dict"; the next one says which.
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise broken(
            path,
            "cannot load weights into the model that config.json and labels.json describe "
            f"({detail[:300]})",
        ) from None
    except Exception as err:  # safetensors raises several types for truncated or foreign files
        if is_pickle(weights):
            raise RunDirError(
                f"{weights}: a pickled PyTorch checkpoint, not safetensors; "
                f"{convert_hint(weights, path)}"
            ) from None
        raise RunDirError(f"{weights}: cannot load weights ({first_line(err)})") from None
