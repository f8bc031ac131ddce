"""training-texts.safetensors: every kind of run records its training texts as hashes (each
normalised text once), keeps them through load and save, and refuses a file that is not such a set.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import TINY, TOY_LABELS, TOY_TEXTS, read_jsonl, write_jsonl
from multihot import Classifier
from multihot.artifacts.rundir import TRAINING_TEXTS
from multihot.artifacts.trainingtexts import HASHES, read_training_texts
from multihot.baseline.linear import BaselineConfig
from multihot.core.errors import RunDirError
from multihot.data.texthashes import HASH_SCHEME, TextHashes

# The training rows: the toy texts and a copy of the first in other case and spacing.
TRAIN_TEXTS = [*TOY_TEXTS, "  I LOVE this  so much "]
TRAIN_LABELS = [*TOY_LABELS, ["joy", "love"]]
VAL_TEXTS = ["i adore you, what a day", "so gloomy and down", "furious about the delay", "nice"]
VAL_LABELS = [["joy", "love"], ["sadness"], ["anger"], ["joy"]]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return (
        write_jsonl(folder / "train.jsonl", TRAIN_TEXTS, TRAIN_LABELS),
        write_jsonl(folder / "val.jsonl", VAL_TEXTS, VAL_LABELS),
    )


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """``{kind: run directory}``: a tiny transformer and a linear baseline on the same data."""
    train, val = data
    folder = tmp_path_factory.mktemp("runs")
    settings = dict(epochs=1, batch_size=8, compare_baseline=False, **TINY)
    Classifier.train(train, val, output=folder / "transformer", **settings)
    baseline = BaselineConfig(min_df=1)
    Classifier.train_baseline(train, val, baseline=baseline, output=folder / "baseline")
    return {"transformer": folder / "transformer", "baseline": folder / "baseline"}


@pytest.mark.parametrize("kind", ["transformer", "baseline"])
def test_a_run_records_each_normalised_training_text_once(runs, kind):
    recorded = read_training_texts(runs[kind])
    assert len(recorded) == len(TOY_TEXTS)  # the copy counts once
    assert recorded.holds(TRAIN_TEXTS).all() and not recorded.holds(VAL_TEXTS).any()
    assert (runs[kind] / TRAINING_TEXTS).stat().st_size < 200 + 8 * len(TOY_TEXTS)


@pytest.mark.parametrize("kind", ["transformer", "baseline"])
def test_load_and_save_keep_the_training_texts(runs, kind, tmp_path):
    clf = Classifier.load(runs[kind])
    assert np.array_equal(clf.training_texts.values, read_training_texts(runs[kind]).values)
    clf.save(tmp_path / "again")
    assert (tmp_path / "again" / TRAINING_TEXTS).read_bytes() == (
        runs[kind] / TRAINING_TEXTS
    ).read_bytes()


def test_held_out_validation_texts_are_not_training_texts(data, tmp_path):
    clf = Classifier.train_baseline(
        data[0], baseline=BaselineConfig(min_df=1), output=tmp_path / "run", val_fraction=0.25
    )
    validation = [r["text"] for r in read_jsonl(tmp_path / "run" / "validation.jsonl")]
    assert len(validation) >= 1
    assert not clf.training_texts.holds(validation).any()
    every = clf.training_texts.union(TextHashes.of(validation))
    assert np.array_equal(every.values, TextHashes.of(TRAIN_TEXTS).values)


def test_a_file_that_is_not_a_set_of_hashes_is_refused(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    file = run / TRAINING_TEXTS
    file.write_bytes(b"not safetensors")
    with pytest.raises(RunDirError, match="cannot read the training texts"):
        read_training_texts(run)
    unsorted = np.array([3, 1], dtype=np.uint64)
    save_file({HASHES: unsorted}, str(file), metadata={"hash": HASH_SCHEME})
    with pytest.raises(RunDirError, match="sorted uint64"):
        read_training_texts(run)
    save_file({HASHES: np.array([1.0])}, str(file), metadata={"hash": HASH_SCHEME})
    with pytest.raises(RunDirError, match="sorted uint64"):
        read_training_texts(run)
    # Another scheme (a later version's): unknown, said, not an error.
    save_file({HASHES: np.array([1, 3], dtype=np.uint64)}, str(file), metadata={"hash": "sha3"})
    with caplog.at_level(logging.WARNING, logger="multihot"):
        assert read_training_texts(run) is None
    assert "another scheme" in caplog.text
    file.unlink()
    assert read_training_texts(run) is None  # a run saved before they were kept
