"""How long training runs when the user does not say (epochs follow the data, early stopping on),
and the linear baseline fitted on the same split for comparison."""

from __future__ import annotations

import pytest

from helpers import TINY, TOY_TEXTS, train_cli
from multihot import Classifier
from multihot.core.config import AUTO_EPOCHS, AUTO_STEPS, TrainConfig, auto_epochs


def test_auto_epochs_aim_at_a_step_budget_within_bounds():
    assert auto_epochs(43410, 64) == 3  # GoEmotions: the 3 epochs the defaults were chosen with
    assert auto_epochs(7769, 64) == 17  # Reuters-21578 ModApte
    assert auto_epochs(7769, 32, grad_accum=2) == 17  # what counts is texts per optimiser step
    assert auto_epochs(10, 64) == AUTO_EPOCHS[1]
    assert auto_epochs(10_000_000, 64) == AUTO_EPOCHS[0]
    for n in (500, 3000, 20000):
        steps = auto_epochs(n, 64) * -(-n // 64)
        assert steps >= min(AUTO_STEPS, AUTO_EPOCHS[1] * -(-n // 64))


def test_defaults_leave_epochs_to_the_data_and_stop_early():
    assert TrainConfig().epochs is None and TrainConfig().patience > 0
    with pytest.raises(Exception, match="epochs"):
        TrainConfig(epochs=0)


def test_a_run_records_the_epochs_it_was_given(toy_file):
    clf = Classifier.train(toy_file, toy_file, batch_size=8, compare_baseline=False, **TINY)
    assert clf.config.train.epochs == auto_epochs(len(TOY_TEXTS), 8)
    history = clf.history
    # Early stopping ends the run once `patience` evaluations bring nothing better.
    last = history[-1]["epoch"]
    assert last == clf.config.train.epochs or clf.metrics["stopped_early"]
    explicit = Classifier.train(toy_file, toy_file, epochs=2, batch_size=8, **TINY)
    assert explicit.config.train.epochs == 2 and len(explicit.history) == 2


def test_the_baseline_is_fitted_on_the_same_split_and_reported(toy_file):
    clf = Classifier.train(toy_file, toy_file, epochs=1, batch_size=8, **TINY)
    baseline = clf.metrics["linear_baseline"]
    assert 0.0 <= baseline["macro_f1"] <= 1.0 and baseline["seconds"] >= 0
    assert baseline["num_texts"] == clf.metrics["validation"]["num_texts"]
    off = Classifier.train(
        toy_file, toy_file, epochs=1, batch_size=8, compare_baseline=False, **TINY
    )
    assert "linear_baseline" not in off.metrics


def test_train_says_plainly_when_the_baseline_wins(toy_file, tmp_path):
    # One epoch of a tiny random encoder against TF-IDF on texts it can memorise: the baseline wins.
    result = train_cli(toy_file, tmp_path / "run", "--epochs", "1", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    assert "beside the linear baseline" in result.stdout
    assert "The linear baseline beats this model on validation macro_f1" in result.stdout
    result = train_cli(toy_file, tmp_path / "off", "--epochs", "1", "--no-compare-baseline")
    assert result.exit_code == 0, result.output
    assert "linear baseline" not in result.stdout
