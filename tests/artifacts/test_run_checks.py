"""A run directory's weights are checked against what they were trained with, and its files are
read strictly: a tampered or mixed-up run is a "broken run directory", never a different answer.

The weights' header records how they read a text (``max_length``, ``long_text``, ...) and
config.json records a digest of the weights; runs written before either was kept load unchecked
(``tests/artifacts/test_old_runs.py``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from safetensors.numpy import load_file, save_file

from helpers import TOY_TEXTS, assert_clean_error, copy_run, invoke
from multihot import Classifier
from multihot.core.errors import RunDirError


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _model(key, value):
    return lambda data: data["model"].__setitem__(key, value)


def _header_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        return fh.metadata() or {}


def _nudge_weights(weights: Path) -> None:
    """The weights of another run of the same shape: every tensor moved a little, the header's
    record (labels, poolings, reading) kept as it was."""
    metadata = _header_metadata(weights)
    tensors = {name: array + 1e-3 for name, array in load_file(weights).items()}
    save_file(tensors, weights, metadata=metadata)


def _predict(run: Path, *args):
    return invoke("predict", run, "--text", "hello", *args)


# ------------------------------------------------------------- what the weights were trained with
READING = {
    "max_length": (_model("max_length", 16), "max_length 32", "max_length 16"),
    "long_text": (_model("long_text", "chunk"), "long_text 'truncate'", "'chunk'"),
}


@pytest.mark.parametrize("case", READING)
def test_a_changed_reading_is_a_broken_run_directory(tiny_run, tmp_path, case):
    edit, trained, now = READING[case]
    run = copy_run(tiny_run, tmp_path / "run")
    _edit_json(run / "config.json", edit)
    result = _predict(run)
    assert_clean_error(result, "broken run directory", "model.safetensors", trained, now)


def test_the_reading_is_recorded_in_the_weights(tiny_run):
    record = json.loads(_header_metadata(tiny_run / "model.safetensors")["multihot"])
    assert record["reading"] == {
        "max_length": 32,
        "long_text": "truncate",
        "preprocess": ["unicode", "html", "whitespace"],  # the default steps
    }


def test_the_weights_digest_is_recorded_in_config_json(tiny_run):
    from multihot.artifacts.runs import weights_digest

    config = json.loads((tiny_run / "config.json").read_text())
    assert config["weights_sha256"] == weights_digest(tiny_run / "model.safetensors")
    assert len(config["weights_sha256"]) == 64


def test_weights_of_another_run_of_the_same_shape_are_refused(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    _nudge_weights(run / "model.safetensors")
    assert_clean_error(_predict(run), "broken run directory", "model.safetensors", "weights_sha256")


def test_the_digest_is_of_the_tensors_not_of_the_header(tiny_run, tmp_path):
    from multihot.artifacts.runs import weights_digest

    run = copy_run(tiny_run, tmp_path / "run")
    weights = run / "model.safetensors"
    before = weights_digest(weights)
    save_file(load_file(weights), weights)  # the same tensors, without the header's record
    assert weights_digest(weights) == before
    assert Classifier.load(run).predict(TOY_TEXTS[:2]) == Classifier.load(tiny_run).predict(
        TOY_TEXTS[:2]
    )


def test_a_run_without_the_digest_loads_unchecked(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    _edit_json(run / "config.json", lambda data: data.pop("weights_sha256"))
    _nudge_weights(run / "model.safetensors")
    assert _predict(run).exit_code == 0


def test_a_digest_that_is_not_a_digest_is_refused(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    _edit_json(run / "config.json", lambda data: data.__setitem__("weights_sha256", 7))
    assert_clean_error(_predict(run), "broken run directory", "weights_sha256")


def test_retuned_and_calibrated_runs_still_load(tiny_run, toy_file, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    weights = (run / "model.safetensors").read_bytes()
    tuned = invoke("tune-thresholds", run, toy_file, "--calibrate", "--force")
    assert tuned.exit_code == 0, tuned.output
    assert (run / "calibration.json").is_file()
    assert (run / "model.safetensors").read_bytes() == weights
    assert _predict(run).exit_code == 0


def test_baseline_weights_of_another_run_are_refused(baseline_run, tmp_path):
    run = copy_run(baseline_run, tmp_path / "run")
    _nudge_weights(run / "model.safetensors")
    assert_clean_error(_predict(run), "broken run directory", "weights_sha256")


BASELINE = {
    "changed": (lambda section: section.__setitem__("ngram_max", 1), "says ngram_max 1"),
    "removed": (lambda section: section.pop("ngram_max"), "says no ngram_max"),
}


@pytest.mark.parametrize("case", BASELINE)
def test_a_changed_baseline_setting_is_a_broken_run_directory(baseline_run, tmp_path, case):
    edit, now = BASELINE[case]
    run = copy_run(baseline_run, tmp_path / "run")
    _edit_json(run / "config.json", lambda data: edit(data["baseline"]))
    result = _predict(run)
    assert_clean_error(result, "broken run directory", "model.safetensors", "ngram_max 2", now)


def test_an_onnx_graph_exported_for_another_reading_is_refused(onnx_run, tmp_path):
    run = copy_run(onnx_run[1], tmp_path / "run")
    _edit_json(run / "config.json", _model("max_length", 16))
    assert_clean_error(_predict(run, "--backend", "onnx"), "model.onnx", "max_length")


def test_an_onnx_graph_exported_before_the_reading_was_recorded_is_checked(onnx_run, tmp_path):
    import onnx

    run = copy_run(onnx_run[1], tmp_path / "run")
    graph = onnx.load(str(run / "model.onnx"))
    kept = [p for p in graph.metadata_props if p.key not in ("reading", "weights_sha256")]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)  # as exported before: max_length and long_text only
    onnx.save(graph, str(run / "model.onnx"))
    assert _predict(run, "--backend", "onnx").exit_code == 0
    _edit_json(run / "config.json", _model("max_length", 16))
    assert_clean_error(_predict(run, "--backend", "onnx"), "model.onnx", "max_length 32")


def test_an_onnx_graph_of_other_weights_is_refused(onnx_run, tmp_path):
    run = copy_run(onnx_run[1], tmp_path / "run")
    (run / "model.safetensors").unlink()  # ONNX prediction reads the graph, not the weights
    assert _predict(run, "--backend", "onnx").exit_code == 0
    _edit_json(run / "config.json", lambda data: data.__setitem__("weights_sha256", "0" * 64))
    assert_clean_error(_predict(run, "--backend", "onnx"), "model.onnx", "weights")


# ------------------------------------------------------------------------ strictly read run files
def _calibration(labels: list[str]) -> str:
    """A calibration.json that fits the run, but names its first label's temperature twice."""
    temperatures = ", ".join(f'"{name}": 2.0' for name in labels)
    return f'{{"temperatures": {{{json.dumps(labels[0])}: 0.5, {temperatures}}}}}'


@pytest.mark.parametrize("name", ["thresholds.json", "config.json", "calibration.json"])
def test_a_repeated_key_in_a_run_file_is_refused(tiny_run, tmp_path, name):
    run = copy_run(tiny_run, tmp_path / "run")
    if name == "calibration.json":
        text = _calibration(json.loads((run / "labels.json").read_text()))
    else:  # the file's first key named once more, before it: the last one would win
        original = (run / name).read_text()
        key = next(iter(json.loads(original)))
        text = original.replace("{", f"{{{json.dumps(key)}: null, ", 1)
    (run / name).write_text(text)
    assert_clean_error(_predict(run), f"{name}: corrupt JSON", "more than once")


def test_a_repeated_key_in_a_baseline_vocabulary_is_refused(baseline_run, tmp_path):
    run = copy_run(baseline_run, tmp_path / "run")
    original = (run / "vocabulary.json").read_text()
    word = next(iter(json.loads(original)))
    (run / "vocabulary.json").write_text(original.replace("{", f"{{{json.dumps(word)}: 0, ", 1))
    assert_clean_error(_predict(run), "vocabulary.json", "more than once")


def test_top1_fallback_must_be_a_boolean(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    _edit_json(run / "thresholds.json", lambda data: data.__setitem__("top1_fallback", "yes"))
    assert_clean_error(_predict(run), "thresholds.json", "top1_fallback", "true or false")


def _load_error(run: Path, queue) -> None:
    try:
        Classifier.load(run)
        queue.put("loaded")
    except RunDirError as err:
        queue.put(str(err))


@pytest.mark.parametrize(
    "name", ["labels.json", "thresholds.json", "metrics.json", "model.safetensors", "tokenizer"]
)
def test_a_run_file_that_is_a_fifo_is_refused_without_hanging(tiny_run, tmp_path, name):
    run = copy_run(tiny_run, tmp_path / "run")
    target = run / name
    if target.is_dir():  # a file the tokenizer reads
        target = target / "tokenizer.json"
    target.unlink()
    os.mkfifo(target)
    # In a child process: a reader blocked opening a FIFO may hold the GIL (safetensors does),
    # so only a process can be given up on.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_load_error, args=(run, queue), daemon=True)
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"loading a run whose {name} is a FIFO hung")
    message = queue.get(timeout=5)
    assert str(target) in message and "not a regular file (a FIFO)" in message
