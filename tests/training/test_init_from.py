"""Continuing a finished run (``init_from``): the new run starts from the run's weights, label by
label; it keeps the run's model settings and refuses others; it records where it started.

"The first evaluation equals the run's" is tested two ways: the model a run starts from gives the
run's logits exactly, before any step; and a run whose steps are too small to move an fp32 weight
(lr 1e-30: the update and the weight decay round away) evaluates first exactly as the run did.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import TINY, TOY_LABELS, TOY_TEXTS, copy_run, read_jsonl, write_jsonl
from multihot import Classifier
from multihot.artifacts.rundir import TRAINING_TEXTS
from multihot.artifacts.runs import model_id, read_run_files
from multihot.artifacts.trainingtexts import read_training_texts
from multihot.core.errors import ConfigError, RunDirError
from multihot.data.encoding import Reading
from multihot.data.labels import LabelSet
from multihot.data.texthashes import TextHashes
from multihot.inference.torch_backend import TorchBackend
from multihot.modeling.ensemble import build_model
from multihot.training.init_from import StartingRun

SETTINGS = dict(batch_size=4, warmup_ratio=0.0, patience=0, compare_baseline=False, **TINY)
STILL = dict(epochs=1, lr=1e-30, head_lr=1e-30, **SETTINGS)
"""Steps too small to change an fp32 weight: what the new run evaluates is what it started from."""
# Every parameter with one row per label in the starting run (mlp head, label attention).
LABEL_ROWS = ("head.out.weight", "head.out.bias", "pooling.queries")


@pytest.fixture(scope="module")
def start(tmp_path_factory, toy_file) -> Path:
    """A finished run with a row per label in its pooling and head: the run to start from."""
    out = tmp_path_factory.mktemp("init") / "start"
    Classifier.train(
        toy_file,
        toy_file,
        output=out,
        epochs=3,
        lr=2e-3,
        pooling="label-attention",
        head="mlp",
        head_hidden=32,
        **SETTINGS,
    )
    return out


def logits(model, start: StartingRun, texts=TOY_TEXTS) -> np.ndarray:
    backend = TorchBackend(
        model, start.tokenizer, start.encoder_config, Reading.of(start.config.model)
    )
    return backend.predict_logits(texts, precision="fp32")


def fresh_model(start: StartingRun, labels: LabelSet):
    return build_model(start.encoder_config, len(labels), start.config.model)


# ------------------------------------------------------------------------ the starting weights
def test_the_starting_model_gives_the_runs_logits(start):
    run = StartingRun.read(start)
    model = fresh_model(run, run.labels)
    run.initialise(model, 0, run.labels)
    assert np.array_equal(
        logits(model, run), Classifier.load(start).uncalibrated_logits(TOY_TEXTS, precision="fp32")
    )


def test_labels_keep_their_rows_by_name_and_a_new_label_gets_a_fresh_row(start):
    run = StartingRun.read(start)
    labels = LabelSet(["surprise", *reversed(run.labels.names)])  # another order, one label more
    model = fresh_model(run, labels)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    run.initialise(model, 0, labels)
    old, new = run.model.state_dict(), model.state_dict()
    for key in LABEL_ROWS:
        for name in run.labels:
            assert torch.equal(new[key][labels.index[name]], old[key][run.labels.index[name]]), key
        assert torch.equal(new[key][0], fresh[key][0]), key  # surprise: as the model was built
    others = [k for k in old if k not in LABEL_ROWS]
    assert others and all(torch.equal(new[k], old[k]) for k in others)
    # The old labels' logits are the run's, moved to their new columns.
    expected = Classifier.load(start).uncalibrated_logits(TOY_TEXTS, precision="fp32")
    columns = [labels.index[name] for name in run.labels]
    assert np.array_equal(logits(model, run)[:, columns], expected)


def test_the_first_evaluation_equals_the_runs(start, toy_file, tmp_path):
    clf = Classifier.train(toy_file, toy_file, init_from=start, output=tmp_path / "next", **STILL)
    saved = read_jsonl(start / "history.jsonl")
    best_step = json.loads((start / "metrics.json").read_text())["best"]["step"]
    before = next(record for record in saved if record["step"] == best_step)
    when = ("step", "epoch", "train_loss", "seconds")  # the scores are what must be equal
    first = {k: v for k, v in clf.history[0].items() if k not in when}
    assert first == {k: v for k, v in before.items() if k not in when}
    assert "macro_f1" in first and "val_loss" in first
    # And what it ends with is still the run's model.
    assert np.array_equal(
        clf.uncalibrated_logits(TOY_TEXTS, precision="fp32"),
        Classifier.load(start).uncalibrated_logits(TOY_TEXTS, precision="fp32"),
    )


# ------------------------------------------------------------------------------------ labels
def test_a_new_label_is_added(start, tmp_path):
    labels = [names + (["surprise"] if i % 3 == 0 else []) for i, names in enumerate(TOY_LABELS)]
    data = write_jsonl(tmp_path / "more.jsonl", TOY_TEXTS, labels)
    clf = Classifier.train(data, data, init_from=start, output=tmp_path / "next", **STILL)
    assert "surprise" in clf.label_names
    assert clf.init_from["new_labels"] == ["surprise"] and clf.init_from["dropped_labels"] == []
    old, new = (
        load_file(start / "model.safetensors"),
        load_file(tmp_path / "next" / "model.safetensors"),
    )
    old_names = json.loads((start / "labels.json").read_text())
    for key in LABEL_ROWS:
        for row, name in enumerate(old_names):
            assert torch.equal(new[key][clf.labels.index[name]], old[key][row]), (key, name)


def test_a_label_the_data_lacks_is_refused_unless_dropped(start, tmp_path):
    labels = [[name for name in names if name != "love"] for names in TOY_LABELS]
    data = write_jsonl(tmp_path / "nolove.jsonl", TOY_TEXTS, labels)
    with pytest.raises(ConfigError, match=r"labels the data lacks: love;.*--drop-labels"):
        Classifier.train(data, data, init_from=start, output=tmp_path / "refused", **STILL)
    assert not (tmp_path / "refused").exists()
    clf = Classifier.train(
        data, data, init_from=start, drop_labels=True, output=tmp_path / "next", **STILL
    )
    assert "love" not in clf.label_names
    assert clf.init_from["dropped_labels"] == ["love"]


# ---------------------------------------------------------------------------- model settings
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"pooling": "mean"}, "--pooling mean (the run has label-attention)"),
        ({"head": "linear"}, "--head linear (the run has mlp)"),
        ({"head_hidden": 64}, "--head-hidden 64 (the run has 32)"),
        ({"max_length": 64}, "--max-length 64 (the run has 32)"),
        ({"encoder": "scratch-mini"}, "--encoder scratch-mini (the run has scratch-tiny)"),
        ({"preprocess": "none"}, "--preprocess none (the run has unicode,html,whitespace)"),
        ({"ensemble": 2}, "--ensemble 2 (the run has 1)"),
    ],
)
def test_a_model_setting_other_than_the_runs_is_refused(
    start, toy_file, tmp_path, setting, message
):
    with pytest.raises(ConfigError) as err:
        Classifier.train(
            toy_file, toy_file, init_from=start, output=tmp_path / "x", **{**STILL, **setting}
        )
    assert message in str(err.value) and "--init-from" in str(err.value)


def test_the_runs_model_settings_may_be_repeated_and_training_settings_are_free(
    start, toy_file, tmp_path
):
    clf = Classifier.train(
        toy_file,
        toy_file,
        init_from=start,
        output=tmp_path / "next",
        pooling="label-attention",
        batch_tokens=4096,
        loss="bce",
        **STILL,
    )
    assert clf.config.model.pooling == "label-attention" and clf.config.model.head == "mlp"
    assert clf.config.model.batch_tokens == 4096 and clf.config.train.loss == "bce"


def test_a_baseline_run_and_its_own_directory_are_refused(start, baseline_run, toy_file):
    with pytest.raises(ConfigError, match="linear baseline"):
        Classifier.train(toy_file, toy_file, init_from=baseline_run, **STILL)
    with pytest.raises(ConfigError, match="would replace the run it starts from"):
        Classifier.train(toy_file, toy_file, init_from=start, output=start, **STILL)


# ---------------------------------------------------------------------------------- the record
def test_the_new_run_records_where_it_started(start, toy_file, tmp_path):
    Classifier.train(toy_file, toy_file, init_from=start, output=tmp_path / "next", **STILL)
    record = json.loads((tmp_path / "next" / "config.json").read_text())["init_from"]
    assert record == {
        "run": str(start.resolve()),
        "model_id": model_id(read_run_files(start)),
        "new_labels": [],
        "dropped_labels": [],
    }
    # Loaded and saved again, the run keeps it.
    Classifier.load(tmp_path / "next").save(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["init_from"] == record


def test_the_new_run_records_the_starting_runs_training_texts_with_its_own(start, tmp_path, caplog):
    more = ["a brand new happy text", "another sad one", "cross again today", "love it"]
    data = write_jsonl(tmp_path / "more.jsonl", more, [["joy"], ["sadness"], ["anger"], ["love"]])
    clf = Classifier.train(data, data, init_from=start, output=tmp_path / "next", **STILL)
    expected = TextHashes.of([*TOY_TEXTS, *more]).values
    assert np.array_equal(clf.training_texts.values, expected)
    assert np.array_equal(read_training_texts(tmp_path / "next").values, expected)
    # A starting run saved before runs kept their training texts: the new run's own, said so.
    old = copy_run(start, tmp_path / "old")
    (old / TRAINING_TEXTS).unlink()
    with caplog.at_level(logging.WARNING, logger="multihot"):
        clf = Classifier.train(data, data, init_from=old, **STILL)
    assert "does not record its training texts" in caplog.text
    assert np.array_equal(clf.training_texts.values, TextHashes.of(more).values)


# ---------------------------------------------------------------------------- ensembles, resume
def test_an_ensemble_continues_member_by_member(toy_file, tmp_path):
    run = tmp_path / "ensemble"
    Classifier.train(
        toy_file,
        toy_file,
        output=run,
        epochs=1,
        ensemble=2,
        ensemble_pooling="mean,max",
        **SETTINGS,
    )
    start = StartingRun.read(run)
    model = fresh_model(start, start.labels)
    for member in range(2):
        start.initialise(model.members[member], member, start.labels)
    assert np.array_equal(
        logits(model, start), Classifier.load(run).uncalibrated_logits(TOY_TEXTS, precision="fp32")
    )
    clf = Classifier.train(toy_file, toy_file, init_from=run, output=tmp_path / "next", **STILL)
    assert clf.config.model.ensemble == 2 and clf.config.model.ensemble_pooling == ["mean", "max"]


class Crash(Exception):
    """Stands for a kill: raised from a callback, it leaves the run directory as a kill would."""


class CrashAt:
    def __init__(self, step: int):
        self.step = step

    def on_train_start(self, total_steps, steps_per_epoch):
        pass

    def on_step(self, step, loss, samples_per_second):
        if step == self.step:
            raise Crash(step)

    def on_evaluate(self, record):
        pass

    def on_train_end(self):
        pass


def test_an_interrupted_run_resumes_from_the_same_start(start, toy_file, tmp_path):
    source = copy_run(start, tmp_path / "start")
    settings = dict(SETTINGS, epochs=2, batch_size=2, eval_every=3, lr=1e-3)
    whole = Classifier.train(
        toy_file, toy_file, init_from=source, output=tmp_path / "whole", **settings
    )
    with pytest.raises(Crash):
        Classifier.train(
            toy_file,
            toy_file,
            init_from=source,
            output=tmp_path / "cut",
            callback=CrashAt(5),
            **settings,
        )
    thresholds = source / "thresholds.json"
    kept = thresholds.read_bytes()
    thresholds.write_text(kept.decode().replace("0.", "0.0", 1))  # the run changed meanwhile
    with pytest.raises(RunDirError, match="has changed since"):
        Classifier.resume(tmp_path / "cut")
    thresholds.write_bytes(kept)
    resumed = Classifier.resume(tmp_path / "cut")
    assert resumed.init_from == whole.init_from
    texts = (tmp_path / "whole" / TRAINING_TEXTS).read_bytes()
    assert (tmp_path / "cut" / TRAINING_TEXTS).read_bytes() == texts
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
