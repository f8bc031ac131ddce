"""Reading and writing run directories, every kind: the files each holds, checked against each other.

Every kind of run (:data:`RUN_KINDS`) has config.json, labels.json, thresholds.json, metrics.json and
history.jsonl; a transformer run adds model.safetensors and tokenizer/, a linear baseline run
model.safetensors (IDF weights and coefficients) and vocabulary.json. This module is the one place
that writes and reads them; :mod:`multihot.artifacts.rundir` has the layout and the checks on paths.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from multihot.artifacts.rundir import (
    CALIBRATION,
    LINEAR_REQUIRED,
    METRICS,
    ONNX_REQUIRED,
    PREVIOUS_THRESHOLDS,
    REQUIRED,
    THRESHOLDS,
    VOCABULARY,
    WEIGHTS,
    check_output_dir,
    check_regular,
    check_run_dir,
    history_text,
    library_versions,
    read_history,
    read_json,
)
from multihot.artifacts.trainingtexts import write_training_texts
from multihot.artifacts.validation import ValidationPredictions, write_validation
from multihot.core.config import (
    BASELINE_KIND,
    RUN_KINDS,
    TRANSFORMER_KIND,
    ModelConfig,
    RunConfig,
    is_baseline,
)
from multihot.core.errors import MultihotError, RunDirError
from multihot.core.files import dumps, strict_loads, write_atomic, write_dir_atomic
from multihot.data.labels import LabelSet
from multihot.data.texthashes import TextHashes
from multihot.scoring.calibration import Calibration
from multihot.scoring.thresholds import Thresholds

WEIGHTS_DIGEST = "weights_sha256"
"""The key of config.json that holds :func:`weights_digest` of the run's weights."""

INIT_FROM = "init_from"
"""The key of config.json that records the run a run started from (``multihot train --init-from``):
its path and :func:`model_id`, and the labels added and dropped."""

# Keys of config.json that describe the run rather than configure it.
RUN_INFO_KEYS = (
    "kind",
    "encoder_config",
    "baseline",
    "num_labels",
    "versions",
    WEIGHTS_DIGEST,
    INIT_FROM,
)


CONFIG_SECTIONS = ("model", "train", "data")


WEIGHTS_META = "multihot"
"""The key of the weights file's metadata that records what the weights were trained as."""


def broken(path: Path, problem: str) -> RunDirError:
    """The one error for a run directory whose files do not agree with each other."""
    return RunDirError(f"{path}: broken run directory: {problem}")


def read_run(path: Path, raw: dict[str, Any]) -> tuple[RunConfig, LabelSet, Thresholds]:
    """The config, labels and thresholds of a run directory, checked against each other.

    Args:
        path: the run directory.
        raw: its config.json, parsed.

    Raises:
        RunDirError: a file is corrupt, config.json lacks a section, or the files disagree (label
            count, label names of the thresholds).
    """
    try:
        config = RunConfig.from_saved(
            {k: v for k, v in raw.items() if k not in RUN_INFO_KEYS},
            source=str(path / "config.json"),
        )
    except MultihotError as err:
        raise RunDirError(str(err)) from None
    # A section left out would silently become the defaults (another pooling, another length).
    missing = [name for name in CONFIG_SECTIONS if not isinstance(raw.get(name), dict)]
    if missing:
        raise broken(path, f"config.json has no {', '.join(repr(m) for m in missing)} section")
    names = read_json(path / "labels.json", list)
    try:
        labels = LabelSet(names)
    except MultihotError as err:
        raise broken(path, f"labels.json: {err}") from None
    if raw.get("num_labels") != len(labels):
        raise broken(
            path,
            f"config.json says num_labels {raw.get('num_labels')!r}, labels.json has "
            f"{len(labels)} labels",
        )
    saved = read_json(path / THRESHOLDS)
    if not isinstance(saved.get("top1_fallback", False), bool):
        raise broken(
            path,
            f"{THRESHOLDS}: top1_fallback is {saved['top1_fallback']!r}; expected true or false",
        )
    try:
        thresholds = Thresholds.from_dict(saved, labels.names)
    except RunDirError:
        raise
    except MultihotError as err:
        raise broken(path, f"thresholds.json does not fit labels.json: {err}") from None
    return config, labels, thresholds


def weights_metadata(
    labels: LabelSet,
    config: ModelConfig | None = None,
    encoder_config: dict | None = None,
    baseline: dict | None = None,
) -> dict[str, str]:
    """What the weights were trained as, for their safetensors header: the label names in column
    order and, for a transformer, each member's pooling, the head, how a text is read
    (:func:`reading_record`) and a hash of the encoder's config; for a linear baseline, its
    settings. Pooling and reading have no weights and a reordered labels.json has the same
    shapes: only this record catches them."""
    record: dict[str, Any] = {"labels": labels.names}
    if config is not None:
        record["poolings"] = [config.member_pooling(i) for i in range(config.ensemble)]
        record["head"] = config.head
        record["head_activation"] = config.head_activation
        record["reading"] = reading_record(config)
    if encoder_config is not None:
        record["encoder_config_sha256"] = _sha256_json(encoder_config)
    if baseline is not None:
        record["baseline"] = baseline
    return {WEIGHTS_META: json.dumps(record, ensure_ascii=False)}


def reading_record(config: ModelConfig) -> dict[str, Any]:
    """The settings of the model section that change what a text becomes before the head, none
    of which has weights: ``max_length`` and ``long_text`` and, reading in windows, the stride
    (resolved), ``max_chunks`` and ``chunk_pooling``; with preparation steps, ``preprocess``
    (a run without steps, as every run saved before them, records what it did before).
    (``batch_tokens`` only packs passes.)"""
    record: dict[str, Any] = {"max_length": config.max_length, "long_text": config.long_text}
    if config.chunked:
        record["stride"] = config.window_stride
        record["max_chunks"] = config.max_chunks
        record["chunk_pooling"] = config.chunk_pooling
    if config.preprocess:
        record["preprocess"] = list(config.preprocess)
    return record


_RECORDED = {
    "labels": "labels.json (names or order)",
    "poolings": "config.json's pooling",
    "head": "config.json's head",
    "head_activation": "config.json's head_activation",
    "encoder_config_sha256": "config.json's encoder_config",
    "reading": "config.json's model section",
    "baseline": "config.json's baseline section",
}


def check_weights_metadata(path: Path, expected: dict[str, str]) -> None:
    """Raise the broken-run error when the weights were saved for other labels or another model
    than the run's files describe (``expected``: :func:`weights_metadata` of those). Weights saved
    before this record was kept are not checked."""
    try:
        with safe_open(str(path / WEIGHTS), framework="np") as fh:
            raw = (fh.metadata() or {}).get(WEIGHTS_META)
    except Exception:  # not a safetensors file: loading the weights says so
        return
    if raw is None:
        return
    try:
        saved = json.loads(raw)
    except ValueError:
        raise broken(path, f"{WEIGHTS}: corrupt {WEIGHTS_META!r} metadata") from None
    now = json.loads(expected[WEIGHTS_META])
    for key, description in _RECORDED.items():
        if key not in saved or key not in now or saved[key] == now[key]:
            continue
        if isinstance(saved[key], dict) and isinstance(now[key], dict):
            _check_settings(path, saved[key], now[key], description)
        else:
            raise broken(path, f"{WEIGHTS} was trained with other {description} than the run has")


_UNSET = object()


def _check_settings(path: Path, saved: dict, now: dict, description: str) -> None:
    """The broken-run error naming the first setting that differs between what the weights
    recorded (``saved``) and what config.json says (``now``), or that config.json has lost. A
    setting that a later version adds is only in ``now`` for runs saved before it: not compared."""
    for name in (name for name in saved if now.get(name, _UNSET) != saved[name]):
        said = f"{name} {now[name]!r}" if name in now else f"no {name}"
        raise broken(
            path, f"{WEIGHTS} was trained with {name} {saved[name]!r}, {description} says {said}"
        )


def weights_digest(file: Path) -> str | None:
    """SHA-256 of the tensors of a safetensors file: each one's name, dtype, shape and bytes, in
    name order, so that the same weights saved again (without the header's metadata, in another
    order) have the same digest. None when the file is not safetensors (loading it says why).

    About 0.1 s for a MiniLM-sized file (90 MB) on one core: the bytes are read once, from a map.
    """
    try:
        with open(file, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            size = int.from_bytes(data[:8], "little")
            header = strict_loads(data[8 : 8 + size].decode("utf-8"))
            header.pop("__metadata__", None)
            digest = hashlib.sha256()
            with memoryview(data) as view:
                for name in sorted(header):
                    entry = header[name]
                    start, end = (8 + size + offset for offset in entry["data_offsets"])
                    if not 8 + size <= start <= end <= len(data):
                        return None
                    described = [name, entry["dtype"], entry["shape"], end - start]
                    digest.update(json.dumps(described).encode("utf-8") + b"\0")
                    digest.update(view[start:end])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # not safetensors: empty, truncated, or another format
    return digest.hexdigest()


def recorded_digest(path: Path, raw: dict[str, Any]) -> str | None:
    """config.json's ``weights_sha256`` (``raw``: config.json parsed); None for a run saved
    before it was recorded."""
    recorded = raw.get(WEIGHTS_DIGEST)
    if recorded is not None and not isinstance(recorded, str):
        raise broken(path, f"config.json: {WEIGHTS_DIGEST} is {recorded!r}; expected a hex digest")
    return recorded


def check_weights_digest(path: Path, expected: str | None, actual: str | None) -> None:
    """Raise the broken-run error unless the run's weights (of :func:`weights_digest`
    ``actual``) are those config.json records (``expected``: :func:`recorded_digest`). Neither
    known (an older run, or weights that are not safetensors): not checked."""
    if expected is not None and actual is not None and actual != expected:
        raise broken(
            path,
            f"{WEIGHTS} is not the weights config.json's {WEIGHTS_DIGEST} records (another "
            "run's weights, or changed since training); put back the run's own weights",
        )


def first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:200] if str(err).strip() else type(err).__name__


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def load_metrics_and_history(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    metrics = read_json(path / "metrics.json") if (path / "metrics.json").exists() else {}
    return metrics, read_history(path / "history.jsonl")


@dataclass
class RunFiles:
    """What every kind of run directory holds besides its model, read and checked."""

    path: Path
    kind: str
    """One of :data:`RUN_KINDS`."""
    config: RunConfig
    labels: LabelSet
    thresholds: Thresholds
    raw: dict[str, Any]
    """config.json as it was read (with ``encoder_config`` or ``baseline``)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    calibration: Calibration | None = None
    """calibration.json (a temperature and a bias per label), when the run is calibrated."""


def read_calibration(path: Path, labels: LabelSet) -> Calibration | None:
    """calibration.json of a run directory, checked against its labels; None when absent."""
    file = path / CALIBRATION
    if not file.exists():
        return None
    try:
        return Calibration.from_dict(read_json(file), labels.names)
    except RunDirError:
        raise
    except MultihotError as err:
        raise broken(path, f"{CALIBRATION} does not fit labels.json: {err}") from None


def read_run_files(path: str | Path, *, for_onnx: bool = False) -> RunFiles:
    """Check a run directory and read its config, labels, thresholds, metrics and history.

    Args:
        path: the run directory.
        for_onnx: only what ONNX prediction reads must be there (no weights).

    Raises:
        RunDirError: a file is missing, corrupt, a link out of the directory, or disagrees with
            the others (see :func:`read_run`).
    """
    path = check_run_dir(Path(path), required=("config.json",))
    raw = read_json(path / "config.json")
    kind = raw.get("kind", TRANSFORMER_KIND)
    if kind not in RUN_KINDS:
        raise broken(path, f"config.json: unknown kind {kind!r}; expected one of {RUN_KINDS}")
    required = LINEAR_REQUIRED if is_baseline(kind) else ONNX_REQUIRED if for_onnx else REQUIRED
    check_run_dir(path, required=required)
    config, labels, thresholds = read_run(path, raw)
    metrics, history = load_metrics_and_history(path)
    calibration = read_calibration(path, labels)
    return RunFiles(path, kind, config, labels, thresholds, raw, metrics, history, calibration)


def model_id(files: RunFiles, model_file: str | Path | None = None) -> str:
    """A name for the model a run directory holds: the directory's name and the first 12 hex
    digits of a SHA-256 over config.json, labels.json, thresholds.json, calibration.json (when
    there) and ``model_file`` (the weights by default). Re-tuned thresholds, a calibration or
    another export give another id.

    Example:
        >>> model_id(read_run_files("runs/emotions"))  # doctest: +SKIP
        'emotions@3f9a0c2b71de'
    """
    digest = hashlib.sha256()
    model = Path(model_file) if model_file is not None else files.path / WEIGHTS
    calibration = [files.path / CALIBRATION] if (files.path / CALIBRATION).exists() else []
    for path in (
        files.path / "config.json",
        files.path / "labels.json",
        files.path / THRESHOLDS,
        *calibration,
        model,
    ):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return f"{files.path.name}@{digest.hexdigest()[:12]}"


# ----------------------------------------------------------------------------------- writing
def config_json(kind: str, config: RunConfig, num_labels: int, **info: Any) -> str:
    return dumps(
        {
            "kind": kind,
            **config.to_dict(),
            **info,
            "num_labels": num_labels,
            "versions": library_versions(),
        }
    )


def write_outcome(
    directory: Path,
    labels: LabelSet,
    thresholds: Thresholds,
    metrics,
    history,
    calibration: Calibration | None = None,
    validation: ValidationPredictions | None = None,
    training_texts: TextHashes | None = None,
) -> None:
    """The files every kind of run has: labels, thresholds, metrics, history; and the
    calibration, validation predictions and training texts' hashes, when there are any."""
    write_atomic(directory / "labels.json", dumps(labels.names))
    write_atomic(directory / THRESHOLDS, dumps(thresholds.to_dict(labels.names)))
    write_atomic(directory / METRICS, dumps(metrics))
    write_atomic(directory / "history.jsonl", history_text(history))
    if calibration is not None:
        write_atomic(directory / CALIBRATION, dumps(calibration.to_dict(labels.names)))
    if validation is not None:
        write_validation(directory, validation, labels)
    if training_texts is not None:
        write_training_texts(directory, training_texts)


def save_dir(path: Path, fill: Callable[[Path], None]) -> Path:
    path = Path(path)
    check_output_dir(path)
    write_dir_atomic(path, fill)
    return path


def save_linear_run(
    path: str | Path,
    *,
    vocabulary: dict[str, int],
    arrays: dict[str, np.ndarray],
    baseline: dict[str, Any],
    config: RunConfig,
    labels: LabelSet,
    thresholds: Thresholds,
    metrics: dict,
    history: list,
    calibration: Calibration | None = None,
    validation: ValidationPredictions | None = None,
    training_texts: TextHashes | None = None,
) -> Path:
    """Write a linear baseline run: its vocabulary as JSON, ``arrays`` (IDF weights, coefficients,
    intercepts) as safetensors, ``baseline`` (its settings) in config.json; ``training_texts``,
    the hashes of the texts it was fitted on."""

    def fill(tmp: Path) -> None:
        metadata = weights_metadata(labels, baseline=baseline)
        save_file(arrays, str(tmp / WEIGHTS), metadata=metadata)
        info = {"baseline": baseline, WEIGHTS_DIGEST: weights_digest(tmp / WEIGHTS)}
        write_atomic(tmp / "config.json", config_json(BASELINE_KIND, config, len(labels), **info))
        write_atomic(tmp / VOCABULARY, json.dumps(vocabulary, ensure_ascii=False))
        write_outcome(
            tmp, labels, thresholds, metrics, history, calibration, validation, training_texts
        )

    return save_dir(Path(path), fill)


def save_thresholds(path: str | Path, labels: LabelSet, thresholds: Thresholds, metrics: dict):
    """Replace only thresholds.json and metrics.json of an existing run directory.

    The thresholds replaced are kept in ``thresholds.previous.json`` (one generation), so a
    re-tuning can be undone by moving that file back. Each file is replaced in one step: a kill
    leaves the old thresholds or the new ones.
    """
    path = check_run_dir(Path(path), required=("config.json",))
    current = path / THRESHOLDS
    if current.is_file():
        write_atomic(path / PREVIOUS_THRESHOLDS, current.read_text(encoding="utf-8"))
    write_atomic(current, dumps(thresholds.to_dict(labels.names)))
    save_metrics(path, metrics)


def save_calibration(path: str | Path, labels: LabelSet, calibration: Calibration | None) -> None:
    """Replace (or, with None, remove) only calibration.json of an existing run directory."""
    path = check_run_dir(Path(path), required=("config.json",))
    if calibration is None:
        (path / CALIBRATION).unlink(missing_ok=True)
    else:
        write_atomic(path / CALIBRATION, dumps(calibration.to_dict(labels.names)))


def save_metrics(path: str | Path, metrics: dict) -> None:
    """Replace only metrics.json of an existing run directory."""
    path = check_run_dir(Path(path), required=("config.json",))
    write_atomic(path / METRICS, dumps(metrics))


def load_tokenizer(path: Path):
    """The run's Hugging Face tokenizer, or :class:`RunDirError` naming the directory."""
    from transformers import AutoTokenizer  # heavy: transformers (not on the ONNX path)

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # transformers raises many types for broken tokenizer files
        raise RunDirError(f"{path}: cannot load tokenizer ({first_line(err)})") from None


def read_linear_model(files: RunFiles) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """``(vocabulary, arrays)`` of a linear baseline run, as :func:`save_linear_run` wrote them."""
    path = files.path
    check_regular(path / VOCABULARY)
    try:
        vocabulary = strict_loads((path / VOCABULARY).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path / VOCABULARY}: cannot read ({err})") from None
    check_weights_metadata(path, weights_metadata(files.labels, baseline=files.raw.get("baseline")))
    check_weights_digest(path, recorded_digest(path, files.raw), weights_digest(path / WEIGHTS))
    try:
        arrays = load_file(str(path / WEIGHTS))
    except Exception as err:  # safetensors raises several types for truncated or foreign files
        raise RunDirError(f"{path / WEIGHTS}: cannot load weights ({first_line(err)})") from None
    return vocabulary, arrays
