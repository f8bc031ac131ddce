"""Cross-validation: folds, out-of-fold probabilities in row order, the summary, thresholds tuned
on every row, resuming after an interruption, the final model, the baseline, the command line.

Every model is the tiny scratch encoder trained for two epochs on 30 texts in three folds.
"""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import multihot.cli.cv  # noqa: F401  (registers the verb until the package imports it)
from helpers import TINY, assert_clean_error, invoke, read_jsonl, tiny_flags, write_jsonl
from multihot import Classifier
from multihot.artifacts import cvdir
from multihot.core.config import PRIMARY_METRICS
from multihot.core.errors import ConfigError, MultihotError, RunDirError
from multihot.data.readers import Dataset
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import tune_thresholds
from multihot.tuning.cv import PER_LABEL_STATS, cross_validate, final_epochs

FOLDS = 3
SETTINGS = {**TINY, "epochs": 2, "batch_size": 8, "compare_baseline": False}
WORDS = {
    "joy": ["happy", "glad", "smile", "sunny"],
    "anger": ["angry", "furious", "rage", "mad"],
    "calm": ["calm", "quiet"],  # the rare label: 5 positives in 30 texts
}
FILLERS = ["today", "again", "really", "so", "now", "here", "there", "then"]


def synthetic(n: int = 30, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Distinct short texts whose words give their labels away; one label rare."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        names = [name for name, rate in (("joy", 0.5), ("anger", 0.4)) if rng.random() < rate]
        names += ["calm"] if i % 6 == 0 else []
        words = [str(rng.choice(WORDS[name])) for name in names]
        words += list(rng.choice(FILLERS, size=2, replace=False)) + [f"n{i}"]
        texts.append(" ".join(rng.permutation(words)))
        labels.append(names)
    return texts, labels


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("cv-data") / "train.jsonl", *synthetic())


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, data_file):
    """One uninterrupted cross-validation: ``(result, its directory)``."""
    output = tmp_path_factory.mktemp("cv") / "cv"
    return cross_validate(data_file, folds=FOLDS, output=output, **SETTINGS), output


class TrainCalls:
    """Counts :meth:`Classifier.train` calls (and whether each resumed); raises on call ``fail``."""

    def __init__(self, monkeypatch, fail: int | None = None):
        self.calls: list[bool] = []
        self.fail = fail
        train = Classifier.train.__func__

        def counting(cls, *args, **kwargs):
            self.calls.append(kwargs.get("resume", False))
            if len(self.calls) == self.fail:
                raise KeyboardInterrupt("killed")
            return train(cls, *args, **kwargs)

        monkeypatch.setattr(Classifier, "train", classmethod(counting))


# -------------------------------------------------------------------------- folds and out-of-fold
def test_folds_cover_every_row_once_and_oof_rows_are_each_fold_runs_predictions(cv_run, data_file):
    result, output = cv_run
    texts, labels = synthetic()
    n, num_labels = len(texts), len(result.label_names)
    assert result.label_names == ["anger", "calm", "joy"]
    rows = np.concatenate([fold.val_rows for fold in result.folds])
    assert np.array_equal(np.sort(rows), np.arange(n))  # every row in exactly one fold
    assert [fold.index for fold in result.folds] == list(range(FOLDS))
    assert result.oof_probs.shape == (n, num_labels) and result.oof_probs.dtype == np.float32
    assert result.targets.shape == (n, num_labels)
    assert result.targets[:, 1].sum() == 5
    for fold in result.folds:
        assert fold.best_epoch in (1.0, 2.0) and fold.seconds > 0
        run = cvdir.fold_dir(output, fold.index)
        clf = Classifier.load(run)
        val_texts = [texts[i] for i in fold.val_rows]
        # Row order: each row's out-of-fold probabilities are its own fold model's prediction,
        # before the calibration that training fitted on those very rows.
        np.testing.assert_allclose(
            result.oof_probs[fold.val_rows],
            sigmoid(clf.uncalibrated_logits(val_texts)),
            atol=1e-5,
        )
        assert fold.metrics == json.loads((run / "metrics.json").read_text())["validation"]
        # Trained on the other folds only.
        assert len(json.loads((run / "labels.json").read_text())) == num_labels
    # oof.jsonl: the same probabilities, exactly, in the data's order.
    fold_of_row, targets, probs = cvdir.read_oof(output, Classifier.load(run).labels)
    assert np.array_equal(fold_of_row, result.fold_of_row)
    assert np.array_equal(targets, result.targets) and np.array_equal(probs, result.oof_probs)
    records = read_jsonl(output / cvdir.OOF)
    assert [r["text"] for r in records] == texts and [r["row"] for r in records] == list(range(n))
    assert [sorted(r["labels"]) for r in records] == [sorted(names) for names in labels]


def test_summary_gives_mean_and_std_over_folds_overall_and_for_every_label(cv_run):
    result, output = cv_run
    fold_f1 = [fold.metrics["macro_f1"] for fold in result.folds]
    assert result.summary["macro_f1"]["mean"] == pytest.approx(np.mean(fold_f1))
    assert result.summary["macro_f1"]["std"] == pytest.approx(np.std(fold_f1, ddof=1))
    assert result.mean("macro_f1") == result.summary["macro_f1"]["mean"]
    assert set(PRIMARY_METRICS) <= set(result.summary)
    assert set(result.summary["per_label"]) == set(result.label_names)
    for name in result.label_names:
        stats = result.summary["per_label"][name]
        assert set(stats) == set(PER_LABEL_STATS)
        for stat in PER_LABEL_STATS:
            assert set(stats[stat]) == {"mean", "std"}
        values = [fold.metrics["per_label"][name]["f1"] for fold in result.folds]
        assert stats["f1"]["mean"] == pytest.approx(np.mean(values))
    with pytest.raises(ConfigError, match="unknown metric"):
        result.mean("per_label")
    saved = cvdir.read_summary(output)
    assert saved["summary"] == result.summary
    assert [f["fold"] for f in saved["per_fold"]] == list(range(FOLDS))
    assert saved["oof"]["macro_f1"] == result.oof_metrics["macro_f1"]


def test_thresholds_are_tuned_on_all_out_of_fold_probabilities_and_saved(cv_run):
    result, output = cv_run
    settings = result.config.train.threshold_settings()
    tuned = tune_thresholds(result.targets, result.oof_probs, **settings)
    np.testing.assert_array_equal(result.thresholds.values, tuned.values)
    labels = Classifier.load(cvdir.fold_dir(output, 0)).labels
    np.testing.assert_array_equal(cvdir.read_thresholds(output, labels).values, tuned.values)
    expected = tuned.metrics(result.targets, result.oof_probs, result.label_names)
    assert result.oof_metrics == expected
    assert result.oof_metrics["num_texts"] == len(result.targets)  # every row counts


def test_in_memory_data_without_an_output_directory(cv_run):
    expected, _ = cv_run
    texts, labels = synthetic()
    seen = []
    result = cross_validate(
        Dataset(texts, labels, source="memory"),
        folds=FOLDS,
        fold_callback=lambda k, fold: seen.append((k, len(fold.val_rows))),
        **SETTINGS,
    )
    assert seen == [(f.index, len(f.val_rows)) for f in expected.folds]
    # The same models; the directory keeps logits to 6 significant digits.
    np.testing.assert_allclose(result.oof_probs, expected.oof_probs, atol=1e-5)
    assert result.final_run is None


# --------------------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def resumed(tmp_path_factory, data_file):
    """A cross-validation killed in fold 2's training after its first epoch (its checkpoint
    saved), then resumed: ``(result, directory, Classifier.train calls of the resume)``."""
    monkeypatch = pytest.MonkeyPatch()
    output = tmp_path_factory.mktemp("cv") / "killed"

    class KillInFoldTwo:
        starts = 0

        def on_train_start(self, total_steps, steps_per_epoch):
            self.starts += 1

        def on_step(self, step, loss, samples_per_second):
            pass

        def on_evaluate(self, record):
            if self.starts == 2:  # after fold 2's checkpoint at epoch 1
                raise KeyboardInterrupt("killed")

        def on_train_end(self):
            pass

    with pytest.raises(KeyboardInterrupt):
        cross_validate(data_file, folds=FOLDS, output=output, callback=KillInFoldTwo(), **SETTINGS)
    manifest = json.loads((output / cvdir.CV_JSON).read_text())
    assert list(manifest["finished"]) == ["0"]
    assert (cvdir.fold_dir(output, 1) / "checkpoints").is_dir()
    folds_seen = []
    try:
        calls = TrainCalls(monkeypatch)
        result = cross_validate(
            data_file, output=output, resume=True, fold_callback=lambda k, f: folds_seen.append(k)
        )
    finally:
        monkeypatch.undo()
    assert folds_seen == [0, 1, 2]
    return result, output, calls.calls


def test_an_interrupted_cv_resumes_without_retraining_finished_folds(resumed, cv_run):
    result, output, calls = resumed
    # Fold 1 finished before the kill: not trained again. Fold 2 continued from its checkpoint,
    # fold 3 started afresh.
    assert calls == [True, False]
    expected, _ = cv_run
    # On a CPU in fp32 a resumed run ends as the uninterrupted one.
    np.testing.assert_array_equal(result.oof_probs, expected.oof_probs)
    np.testing.assert_array_equal(result.thresholds.values, expected.thresholds.values)
    assert [f.best_epoch for f in result.folds] == [f.best_epoch for f in expected.folds]
    assert (output / cvdir.SUMMARY).is_file() and (output / cvdir.OOF).is_file()


def test_resuming_a_finished_cv_trains_nothing(cv_run, data_file, monkeypatch, tmp_path):
    _, output = cv_run
    copy = Path(shutil.copytree(output, tmp_path / "cv"))
    calls = TrainCalls(monkeypatch)
    result = cross_validate(data_file, output=copy, resume=True, **SETTINGS)  # may repeat them
    assert calls.calls == []
    np.testing.assert_array_equal(result.oof_probs, cv_run[0].oof_probs)


def test_resume_refuses_other_data_and_other_settings(cv_run, tmp_path):
    _, output = cv_run
    copy = tmp_path / "cv"
    copy.mkdir()
    shutil.copy(output / cvdir.CV_JSON, copy / cvdir.CV_JSON)
    texts, labels = synthetic()
    other = write_jsonl(tmp_path / "other.jsonl", texts[:-1], labels[:-1])
    with pytest.raises(RunDirError, match="differ from the cross-validation's.*same data"):
        cross_validate(other, output=copy, resume=True)
    with pytest.raises(ConfigError, match=r"its own settings.*epochs=5 \(it has 2\)"):
        cross_validate(tmp_path / "x.jsonl", output=copy, resume=True, epochs=5)
    with pytest.raises(ConfigError, match=r"folds=4 \(it has 3\)"):
        cross_validate(tmp_path / "x.jsonl", output=copy, resume=True, folds=4)
    result = invoke("cv", other, "-o", copy, "--resume")
    assert_clean_error(result, "differ from the cross-validation's")


def test_a_non_empty_directory_without_resume_is_a_clean_error(data_file, tmp_path):
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "notes.txt").write_text("mine")
    assert_clean_error(invoke("cv", data_file, "-o", tmp_path / "cv"), "not empty", "--resume")
    with pytest.raises(RunDirError, match="--resume"):
        cross_validate(data_file, output=tmp_path / "cv", **SETTINGS)
    with pytest.raises(RunDirError, match="not a cross-validation directory"):
        cross_validate(data_file, output=tmp_path / "cv", resume=True, **SETTINGS)
    result = invoke("cv", data_file, "--folds", 1, "-o", tmp_path / "new")
    assert_clean_error(result, "folds must be an integer of at least 2, got 1")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------------- final model
def test_final_trains_on_all_rows_with_the_oof_thresholds_and_predicts(
    resumed, data_file, monkeypatch, tmp_path
):
    _, output, _ = resumed
    copy = Path(shutil.copytree(output, tmp_path / "cv"))
    calls = TrainCalls(monkeypatch)
    result = cross_validate(data_file, output=copy, resume=True, final=True)
    assert calls.calls == [False]  # the final model only
    final = result.final_run
    assert final == copy / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["train"]["epochs"] == final_epochs([f.best_epoch for f in result.folds])
    assert config["train"]["patience"] == 0
    history = read_jsonl(final / "history.jsonl")
    assert len(history) == 1 and history[0]["epoch"] == config["train"]["epochs"]
    assert json.loads((final / "thresholds.json").read_text()) == json.loads(
        (copy / "thresholds.json").read_text()
    )
    metrics = json.loads((final / "metrics.json").read_text())
    assert metrics["validation"]["macro_f1"] == result.oof_metrics["macro_f1"]
    assert metrics["cross_validation"]["folds"] == FOLDS
    clf = Classifier.load(final)
    np.testing.assert_array_equal(clf.thresholds.values, result.thresholds.values)
    texts, _ = synthetic()
    predicted = invoke("predict", final, "--text", texts[0], "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["labels"] == clf.predict([texts[0]])[0]
    # Resumed again, the final model is there already.
    again = cross_validate(data_file, output=copy, resume=True, final=True)
    assert calls.calls == [False] and again.final_run == final


@pytest.mark.parametrize(
    ("best", "epochs"), [([3.0, 5.0, 4.0], 4), ([2.0, 3.0], 3), ([0.25, 0.5, 0.4], 1)]
)
def test_final_epochs_is_the_median_best_epoch_rounded_half_up(best, epochs):
    assert final_epochs(best) == epochs


# ------------------------------------------------------------------------- baseline, command line
def test_baseline_through_the_cli_with_a_final_run(data_file, tmp_path):
    output = tmp_path / "cv"
    result = invoke(
        "cv",
        data_file,
        "--folds",
        FOLDS,
        "-o",
        output,
        "--baseline",
        "--final",
        "--min-support",
        1,
    )
    assert result.exit_code == 0, result.output
    assert "3 folds, the linear baseline per fold" in result.stdout
    for name in ("joy", "anger", "calm"):
        assert name in result.stdout
    assert "out-of-fold, thresholds tuned on all 30 rows: macro F1" in result.stdout
    manifest = json.loads((output / cvdir.CV_JSON).read_text())
    assert manifest["baseline"] is True and sorted(manifest["finished"]) == ["0", "1", "2"]
    for k in range(FOLDS):
        config = json.loads((cvdir.fold_dir(output, k) / "config.json").read_text())
        assert config["kind"] == "tfidf-logreg"
    final = output / "final"
    assert json.loads((final / "thresholds.json").read_text()) == json.loads(
        (output / "thresholds.json").read_text()
    )
    predicted = invoke("predict", final, "--text", "so happy and glad", "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    assert set(json.loads(predicted.stdout)["probs"]) == {"anger", "calm", "joy"}


def test_nested_progress_draws_both_bars_on_a_terminal():
    from rich.console import Console

    from multihot.cli.progress import NestedProgress

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with NestedProgress(console, total=2, unit="folds") as progress:
        for k in range(2):
            progress.on_train_start(total_steps=4, steps_per_epoch=2)
            progress.on_step(2, 0.5, 100.0)
            progress.on_evaluate({"epoch": 1.0, "step": 2, "val_loss": 0.4, "macro_f1": 0.5})
            progress.on_train_end()
            progress.advance(f"fold {k + 1}: macro_f1 0.5000")
    text = console.file.getvalue()
    assert "fold 2: macro_f1 0.5000" in text and "epoch 1.00" in text and "2/2" in text


# ------------------------------------------------------------------- copies of a text, tiny data
def test_copies_of_a_text_share_a_fold_and_cv_says_how_many(tmp_path):
    """The issue's reproduction: 20 texts repeated 5 times read an out-of-fold macro F1 of 1.0,
    every text's copies spread over the folds, with no word."""
    texts, labels = synthetic(20)
    data = write_jsonl(tmp_path / "rep.jsonl", texts * 5, labels * 5)
    output = tmp_path / "cv"
    result = invoke("cv", data, "--folds", 5, "-o", output, "--baseline", "--min-support", 1)
    assert result.exit_code == 0, result.output
    logged = " ".join(result.stderr.split())  # the log lines wrap
    assert "80 of 100 texts repeat an earlier one" in logged
    assert "0 of them with other labels" in logged
    folds_of_text: dict[str, set[int]] = {}
    for record in read_jsonl(output / cvdir.OOF):
        folds_of_text.setdefault(record["text"], set()).add(record["fold"])
    assert len(folds_of_text) == 20
    assert all(len(folds) == 1 for folds in folds_of_text.values()), folds_of_text
    fold_sizes = Counter(record["fold"] for record in read_jsonl(output / cvdir.OOF))
    assert sorted(fold_sizes.values()) == [20] * 5
    data_record = json.loads((output / cvdir.CV_JSON).read_text())["data"]
    assert data_record["repeated_texts"] == 80 and data_record["repeated_with_other_labels"] == 0


def test_a_cv_started_before_copies_shared_a_fold_is_not_resumed_on_data_with_copies(tmp_path):
    texts, labels = synthetic(12)
    data = write_jsonl(tmp_path / "rep.jsonl", texts * 2, labels * 2)
    cross_validate(data, folds=2, output=tmp_path / "cv", baseline=True, min_support=1)
    manifest = json.loads((tmp_path / "cv" / cvdir.CV_JSON).read_text())
    del manifest["data"]["repeated_texts"]  # as the version before this check wrote it
    cvdir.write_manifest(tmp_path / "cv", manifest)
    with pytest.raises(RunDirError, match="copies of a text in different folds.*12 texts"):
        cross_validate(data, output=tmp_path / "cv", resume=True)


def test_cv_of_three_rows_with_the_baseline(tmp_path):
    """min_df=2 left a 1-row fold with no n-gram: a scikit-learn traceback, and cv.json stayed."""
    texts, labels = synthetic(3)
    data = write_jsonl(tmp_path / "tr3.jsonl", texts, labels)
    result = invoke("cv", data, "--baseline", "--folds", 2, "-o", tmp_path / "cv3")
    assert result.exit_code == 0, result.output
    assert "out-of-fold, thresholds tuned on all 3 rows" in result.stdout


def test_a_first_fold_failing_on_bad_input_leaves_nothing_behind(tmp_path):
    """So the same command with corrected input is not refused as an earlier cross-validation."""
    marks = write_jsonl(tmp_path / "marks.jsonl", ["!", "?", "a", "…"], [["joy"], [], ["joy"], []])
    output = tmp_path / "cv"
    result = invoke("cv", marks, "--baseline", "--folds", 2, "-o", output)
    assert_clean_error(result, "hold no word of two or more letters or digits")
    assert not output.exists()
    output.mkdir()  # an empty directory given by the user stays, empty
    assert_clean_error(invoke("cv", marks, "--baseline", "--folds", 2, "-o", output), "no word")
    assert output.is_dir() and not any(output.iterdir())
    texts, labels = synthetic(6)
    fixed = write_jsonl(tmp_path / "fixed.jsonl", texts, labels)
    result = invoke("cv", fixed, "--baseline", "--folds", 2, "-o", output)
    assert result.exit_code == 0, result.output
    # A transformer's first fold that cannot load its encoder: the same.
    with pytest.raises(MultihotError):
        cross_validate(
            fixed,
            folds=2,
            output=tmp_path / "enc",
            **{**SETTINGS, "encoder": str(tmp_path / "none")},
        )
    assert not (tmp_path / "enc").exists()


@pytest.mark.parametrize(
    ("rows", "copies", "folds", "message"),
    [
        (3, 1, 5, "too little data for 5 folds: 3 rows"),
        (2, 2, 3, "too little data for 3 folds: 4 rows hold 2 distinct texts"),
    ],
)
def test_too_little_data_for_the_folds_is_a_clean_error_that_writes_nothing(
    tmp_path, rows, copies, folds, message
):
    texts, labels = synthetic(rows)
    data = write_jsonl(tmp_path / "tiny.jsonl", texts * copies, labels * copies)
    result = invoke("cv", data, "--folds", folds, "-o", tmp_path / "cv", *tiny_flags())
    assert_clean_error(result, message)
    assert not (tmp_path / "cv").exists()
