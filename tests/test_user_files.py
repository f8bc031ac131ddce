"""No command destroys or silently replaces a user's files (issue 16).

Output paths that hold something else, predictions written over their own input, thresholds
re-tuned on a handful of rows, run directories whose files disagree, modes of replaced files,
kills while thresholds or an export are written, and links out of a run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from helpers import (
    TOY_LABELS,
    TOY_TEXTS,
    assert_clean_error,
    copy_run,
    invoke,
    subprocess_env,
    train_cli,
    tree,
    write_jsonl,
)
from multihot import Classifier, Predictor
from multihot.core.errors import RunDirError


def train_into(toy_file, output, *extra):
    return train_cli(toy_file, output, "--epochs", 1, "--batch-size", 4, *extra)


# ------------------------------------------------------------------- 1, 4: train --output paths
def test_train_refuses_a_directory_holding_other_files(toy_file, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("important\n")
    (other / "data").mkdir()
    assert_clean_error(train_into(toy_file, other), "other", "notes.txt", "data")
    assert tree(other) == {"notes.txt": b"important\n"}
    assert (other / "data").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]  # no leftovers beside it


def test_train_refuses_a_finished_run_with_a_file_of_the_users_in_it(toy_run, toy_file, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    (run / "notes.txt").write_text("mine\n")
    before = tree(run)
    assert_clean_error(train_into(toy_file, run), "notes.txt")
    assert tree(run) == before


def test_train_replaces_a_finished_run_and_fills_an_empty_directory(toy_run, toy_file, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    (run / "model.onnx").write_bytes(b"an export of the old run")  # multihot's own file
    result = train_into(toy_file, run)
    assert result.exit_code == 0, result.output
    assert not (run / "model.onnx").exists()
    Classifier.load(run)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train_into(toy_file, empty).exit_code == 0
    Classifier.load(empty)


def test_train_refuses_a_directory_without_a_run_in_it(toy_file, tmp_path):
    # Only names multihot uses, but no config.json and no checkpoints: not a run.
    other = tmp_path / "other"
    (other / "tokenizer").mkdir(parents=True)
    (other / "tokenizer" / "vocab.txt").write_text("mine\n")
    assert_clean_error(train_into(toy_file, other), "not a multihot run directory")
    assert tree(other) == {"tokenizer/vocab.txt": b"mine\n"}


def test_train_output_naming_a_file_is_refused_before_training(toy_file, tmp_path, monkeypatch):
    target = tmp_path / "notes.txt"
    target.write_text("important\n")
    import multihot.training.run

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(multihot.training.run, "fit", no_training)
    assert_clean_error(train_into(toy_file, target), "notes.txt", "not a directory")
    assert target.read_text() == "important\n"


def test_baseline_and_save_refuse_directories_with_other_files(toy_run, toy_file, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("important\n")
    result = invoke("baseline", toy_file, "--val", toy_file, "-o", other)
    assert_clean_error(result, "notes.txt")
    with pytest.raises(RunDirError, match="notes.txt"):
        toy_run[0].save(other)
    assert tree(other) == {"notes.txt": b"important\n"}


# --------------------------------------------------------------------- 2: predict over its input
@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_predict_refuses_to_write_over_its_input(toy_run, tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    data = write_jsonl(tmp_path / "data.jsonl", TOY_TEXTS, TOY_LABELS)
    before = data.read_bytes()
    output = {
        "same": "data.jsonl",
        "dot": "./data.jsonl",
        "symlink": "link.jsonl",
        "hardlink": "hard.jsonl",
    }[spelling]
    if spelling == "symlink":
        os.symlink(data, tmp_path / "link.jsonl")
    if spelling == "hardlink":
        os.link(data, tmp_path / "hard.jsonl")
    result = invoke("predict", toy_run[1], "data.jsonl", "-o", output)
    assert_clean_error(result, "input file data.jsonl")
    assert data.read_bytes() == before


# ------------------------------------------------------------------- 3: tune-thresholds safety
def test_tune_thresholds_refuses_too_few_positives_and_keeps_the_thresholds(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    five = write_jsonl(tmp_path / "five.jsonl", TOY_TEXTS[:5], TOY_LABELS[:5])
    before = tree(run)
    result = invoke("tune-thresholds", run, five)
    assert_clean_error(result, "five.jsonl", "too few positives", "--force")
    assert tree(run) == before


def test_tune_thresholds_dry_run_changes_nothing(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    five = write_jsonl(tmp_path / "five.jsonl", TOY_TEXTS[:5], TOY_LABELS[:5])
    before = tree(run)
    result = invoke("tune-thresholds", run, five, "--min-support", 1, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout and "not changed" in result.stdout
    assert tree(run) == before


def test_forced_tuning_names_the_fallback_labels_and_keeps_the_old_thresholds(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    five = write_jsonl(tmp_path / "five.jsonl", TOY_TEXTS[:5], TOY_LABELS[:5])
    old = (run / "thresholds.json").read_text()
    # Five rows: joy has 3 positives, the others 1 each; with min_support 3 only joy is tuned.
    result = invoke("tune-thresholds", run, five, "--min-support", 3, "--force")
    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "3 of 4 labels have fewer than 3 positive texts" in warning
    assert "anger, love, sadness" in warning
    assert (run / "thresholds.previous.json").read_text() == old
    new = json.loads((run / "thresholds.json").read_text())
    assert new["fallback_labels"] == ["anger", "love", "sadness"]
    assert "thresholds.previous.json" in result.stdout
    # The previous thresholds come back by moving the file, as the message says.
    os.replace(run / "thresholds.previous.json", run / "thresholds.json")
    assert Classifier.load(run).thresholds.to_dict(Classifier.load(run).label_names) == json.loads(
        old
    )


# -------------------------------------------------------------- 5: files checked against others
def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _drop(key):
    return lambda data: data.pop(key)


def _set(key, value):
    return lambda data: data.__setitem__(key, value)


BROKEN = {
    "num_labels": ("config.json", _set("num_labels", 5), "num_labels 5, labels.json has 4"),
    "no model section": ("config.json", _drop("model"), "no 'model' section"),
    "no train section": ("config.json", _drop("train"), "no 'train' section"),
    "unknown kind": ("config.json", _set("kind", "forest"), "unknown kind 'forest'"),
    "pooling": (
        "config.json",
        lambda data: data["model"].__setitem__("pooling", "max"),
        "other config.json's pooling",
    ),
    "head activation": (
        "config.json",
        lambda data: data["model"].__setitem__("head_activation", "relu"),
        "other config.json's head_activation",
    ),
    "encoder config": (
        "config.json",
        lambda data: data["encoder_config"].__setitem__("num_attention_heads", 4),
        "other config.json's encoder_config",
    ),
    "labels reordered": ("labels.json", lambda names: names.reverse(), "other labels.json"),
    "labels renamed": (
        "labels.json",
        lambda names: names.__setitem__(0, "rage"),
        "thresholds.json does not fit labels.json",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_run_files_that_disagree_are_a_broken_run_directory(toy_run, tmp_path, case):
    name, edit, fragment = BROKEN[case]
    run = copy_run(toy_run[1], tmp_path / "run")
    _edit_json(run / name, edit)
    assert_clean_error(invoke("predict", run, "--text", "hello"), "broken run directory", fragment)


def test_weights_with_another_head_size_are_a_broken_run_directory(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    for name, edit in (
        ("labels.json", lambda n: n.append("extra")),
        ("config.json", _set("num_labels", 5)),
    ):
        _edit_json(run / name, edit)
    _edit_json(run / "thresholds.json", lambda t: t["thresholds"].__setitem__("extra", 0.5))
    (run / "calibration.json").unlink()  # it would not fit the labels either, and says so first
    weights = load_file(run / "model.safetensors")
    save_file(weights, run / "model.safetensors")  # as written before labels were recorded there
    assert_clean_error(invoke("predict", run, "--text", "hello"), "cannot load weights", "size")


def test_a_run_without_an_encoder_config_is_a_broken_run_directory(toy_run, tmp_path):
    """Weights saved without the record, as the runs written with ``"encoder_config": null`` were:
    loading failed with a TypeError."""
    run = copy_run(toy_run[1], tmp_path / "run")
    _edit_json(run / "config.json", _set("encoder_config", None))
    save_file(load_file(run / "model.safetensors"), run / "model.safetensors")
    assert_clean_error(invoke("predict", run, "--text", "hello"), "'encoder_config' missing")


def test_weights_saved_without_the_record_still_load(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    save_file(load_file(run / "model.safetensors"), run / "model.safetensors")
    probs = Classifier.load(run).predict_proba(TOY_TEXTS, precision="fp32")
    assert (probs == toy_run[0].predict_proba(TOY_TEXTS, precision="fp32")).all()


def test_baseline_labels_reordered_are_a_broken_run_directory(toy_file, tmp_path):
    run = tmp_path / "linear"
    assert invoke("baseline", toy_file, "--val", toy_file, "-o", run).exit_code == 0
    _edit_json(run / "labels.json", lambda names: names.reverse())
    assert_clean_error(
        invoke("predict", run, "--text", "hello"), "broken run directory", "other labels.json"
    )


# ---------------------------------------------------------------------------------- 6: modes
@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_outputs_get_the_umask_mode(toy_run, toy_file, tmp_path, umask_027):
    out = tmp_path / "out.jsonl"
    assert invoke("predict", toy_run[1], toy_file, "-o", out).exit_code == 0
    assert mode(out) == 0o640
    run = tmp_path / "run"
    assert train_into(toy_file, run).exit_code == 0
    assert mode(run) == 0o750 and mode(run / "tokenizer") == 0o750
    for path in run.rglob("*"):
        if path.is_file():
            assert mode(path) == 0o640, path


def test_replaced_outputs_keep_their_mode(toy_run, toy_file, tmp_path, umask_027):
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    out.chmod(0o604)
    assert invoke("predict", toy_run[1], toy_file, "-o", out).exit_code == 0
    assert mode(out) == 0o604 and out.read_text() != "old\n"
    run = copy_run(toy_run[1], tmp_path / "run")
    run.chmod(0o755)
    (run / "thresholds.json").chmod(0o644)
    assert invoke("tune-thresholds", run, toy_file, "--min-support", 1).exit_code == 0
    assert mode(run / "thresholds.json") == 0o644
    (run / "model.safetensors").chmod(0o600)
    (run / "history.jsonl").unlink()
    assert train_into(toy_file, run).exit_code == 0
    assert mode(run) == 0o755 and mode(run / "thresholds.json") == 0o644
    assert mode(run / "model.safetensors") == 0o600
    assert mode(run / "history.jsonl") == 0o640  # not in the run it replaced: the umask's mode


# ------------------------------------------------------------------------------ links outside
def test_a_weights_file_linked_from_outside_the_run_is_refused(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.move(run / "model.safetensors", elsewhere)
    os.symlink(elsewhere, run / "model.safetensors")
    assert_clean_error(
        invoke("predict", run, "--text", "hello"), "model.safetensors", "self-contained"
    )
    with pytest.raises(RunDirError, match="outside the run directory"):
        Predictor.load(run)


def test_a_run_reached_through_a_symlink_loads(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    os.symlink(run, tmp_path / "latest")
    assert Classifier.load(tmp_path / "latest").label_names == toy_run[0].label_names


# ------------------------------------------------------------------- kill -9 while writing a run
# Each patch kills the process with SIGKILL at the n-th os.replace, just before it or just after.
KILL_AT_REPLACE = """
import os, signal
_real, _calls = os.replace, []
def _replace(src, dst, *args, **kwargs):
    _calls.append(1)
    if len(_calls) == {n} and {before}:
        os.kill(os.getpid(), signal.SIGKILL)
    _real(src, dst, *args, **kwargs)
    if len(_calls) == {n}:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = _replace
from multihot.cli.app import main
main()
"""


def run_killed(args, n: int, before: bool, log: Path) -> int:
    code = KILL_AT_REPLACE.format(n=n, before=before)
    with open(log, "w") as fh:
        process = subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            env=subprocess_env(),
            stdout=fh,
            stderr=fh,
            timeout=300,
        )
    return process.returncode


def kill_points(limit: int = 12):
    """(n, before) for each place to kill: before and after the 1st, 2nd, ... os.replace."""
    return [(n, before) for n in range(1, limit + 1) for before in (True, False)]


@pytest.mark.slow
def test_kill_during_tune_thresholds_leaves_old_or_new_thresholds(toy_run, tmp_path):
    names = toy_run[0].label_names
    old = json.loads((toy_run[1] / "thresholds.json").read_text())
    data = write_jsonl(tmp_path / "other.jsonl", TOY_TEXTS[::-1] * 2, TOY_LABELS[::-1] * 2)
    seen, log = [], tmp_path / "log"
    for n, before in kill_points():
        run = copy_run(toy_run[1], tmp_path / f"{n}-{before}" / "run")
        code = run_killed(["tune-thresholds", run, data, "--strategy", "global"], n, before, log)
        thresholds = Classifier.load(run).thresholds.to_dict(names)  # loads, whatever the kill
        if code == 0:  # fewer replaces than n: the command ran to its end
            new = thresholds
            break
        assert code == -signal.SIGKILL, log.read_text()[-2000:]
        seen.append(thresholds)
    else:
        pytest.fail("tune-thresholds made more replaces than tried")
    assert new["strategy"] == "global" and old["strategy"] == "per-label"
    assert all(t in (old, new) for t in seen)
    assert old in seen and new in seen  # the kills fell on both sides of the change


@pytest.mark.slow
def test_kill_during_export_leaves_a_run_that_loads(toy_run, toy_file, tmp_path):
    from multihot.artifacts.rundir import check_output_dir

    reference = copy_run(toy_run[1], tmp_path / "reference" / "run")
    assert invoke("export", reference, "--format", "onnx").exit_code == 0
    expected = Predictor.load(reference, backend="onnx").predict_proba(TOY_TEXTS)
    log = tmp_path / "log"
    for n, before in kill_points():
        run = copy_run(toy_run[1], tmp_path / f"{n}-{before}" / "run")
        shutil.copy(reference / "model.onnx", run / "model.onnx")  # an earlier export, replaced
        code = run_killed(["export", run, "--format", "onnx"], n, before, log)
        assert code in (0, -signal.SIGKILL), log.read_text()[-2000:]
        probs = Predictor.load(run, backend="onnx").predict_proba(TOY_TEXTS)
        assert abs(probs - expected).max() < 1e-6
        Classifier.load(run)
        check_output_dir(run)  # what a kill left is multihot's: training may still replace it
        if code == 0:
            break
    else:
        pytest.fail("export made more replaces than tried")
