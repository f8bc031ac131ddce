"""The TF-IDF + logistic regression baseline: same run directory, same predict, no pickles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TOY_LABELS, TOY_TEXTS, assert_clean_error, copy_run, invoke, write_jsonl
from multihot import Classifier
from multihot.baseline.linear import BaselineConfig, TfidfLogistic


def test_baseline_logits_match_sklearn_pipeline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    targets = np.array([[1.0 if "joy" in ls else 0.0] for ls in TOY_LABELS])
    model = TfidfLogistic.fit(TOY_TEXTS, targets, BaselineConfig(min_df=1))
    # Our vectorizer is rebuilt from the vocabulary and IDF: it must equal sklearn's own transform.
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit(TOY_TEXTS)
    reference = LogisticRegression(C=4.0, solver="liblinear", random_state=0).fit(
        vectorizer.transform(TOY_TEXTS), targets[:, 0]
    )
    new = ["what a lovely joy", "so sad and angry"]
    np.testing.assert_allclose(
        model.features(new).toarray(), vectorizer.transform(new).toarray(), atol=1e-12
    )
    np.testing.assert_allclose(
        model.logits(new)[:, 0], reference.decision_function(vectorizer.transform(new)), atol=1e-5
    )


def test_baseline_run_directory_and_reload(baseline_run):
    assert {p.name for p in baseline_run.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "vocabulary.json",
        "labels.json",
        "thresholds.json",
        "metrics.json",
    }
    assert not list(baseline_run.glob("*.pkl")) and not list(baseline_run.glob("*.bin"))
    config = json.loads((baseline_run / "config.json").read_text())
    assert config["kind"] == "tfidf-logreg" and config["baseline"]["C"] == 100
    clf = Classifier.load(baseline_run)
    assert clf.kind == "tfidf-logreg" and isinstance(clf.model, TfidfLogistic)
    assert clf.metrics["validation"]["macro_f1"] == 1.0
    assert clf.predict(TOY_TEXTS) == [sorted(x) for x in TOY_LABELS]


def test_baseline_predicts_and_evaluates_through_the_cli(baseline_run, toy_file, tmp_path):
    out = tmp_path / "out.csv"
    assert invoke("predict", baseline_run, toy_file, "-o", out).exit_code == 0
    assert out.read_text().splitlines()[0] == "text,labels,anger,joy,love,sadness"
    metrics = json.loads(invoke("evaluate", baseline_run, toy_file, "--json").stdout)
    assert metrics["macro_f1"] == 1.0


def test_baseline_python_api_round_trip(tmp_path, toy_file):
    clf = Classifier.train_baseline(
        toy_file, toy_file, baseline=BaselineConfig(min_df=1), output=tmp_path / "run"
    )
    again = Classifier.load(tmp_path / "run")
    np.testing.assert_array_equal(clf.predict_proba(TOY_TEXTS), again.predict_proba(TOY_TEXTS))


def test_broken_baseline_run(baseline_run, tmp_path):
    run = copy_run(baseline_run, tmp_path / "broken")
    (run / "vocabulary.json").write_text("{}")
    assert_clean_error(invoke("predict", run, "--text", "hello"), "do not match")
    (run / "vocabulary.json").unlink()
    assert_clean_error(invoke("predict", run, "--text", "hello"), "missing vocabulary.json")


def test_resuming_a_baseline_run_is_a_clear_error(baseline_run, tmp_path):
    """A baseline run is a run kind, not a Classifier missing its state: resuming one says why
    it cannot be done, from Python and from the command line, and changes nothing."""
    from multihot.core.errors import RunDirError

    run = copy_run(baseline_run, tmp_path / "linear")
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(RunDirError, match="the run is complete; there is nothing to resume"):
        Classifier.resume(run)
    assert_clean_error(invoke("train", "--resume", run), "nothing to resume")
    assert sorted(p.name for p in run.iterdir()) == before
    assert Classifier.load(run).kind == "tfidf-logreg"


@pytest.mark.parametrize("rows", [[0], [2, 3, 5]])
def test_too_few_texts_for_min_df_keep_every_ngram(tmp_path, rows):
    """One text (or three sharing no word) left min_df=2 with nothing: a scikit-learn traceback."""
    texts, labels = [TOY_TEXTS[i] for i in rows], [TOY_LABELS[i] for i in rows]
    data = write_jsonl(tmp_path / "tiny.jsonl", texts, labels)
    result = invoke("baseline", data, "--val", data, "-o", tmp_path / "run")
    assert result.exit_code == 0, result.output
    logged = " ".join(result.stderr.split())  # the log lines wrap
    assert f"no n-gram is in 2 or more of the {len(rows)} training texts" in logged
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["baseline"]["min_df"] == 1  # what the saved vocabulary was built with
    assert Classifier.load(tmp_path / "run").predict(texts) == [sorted(x) for x in labels]


def test_texts_without_words_are_a_clean_error_and_write_nothing(tmp_path):
    data = write_jsonl(tmp_path / "marks.jsonl", ["!", "?", "a", "…"], [["joy"], [], ["joy"], []])
    result = invoke("baseline", data, "--val", data, "-o", tmp_path / "run")
    assert_clean_error(result, "training texts hold no word of two or more letters or digits")
    assert not (tmp_path / "run").exists()
