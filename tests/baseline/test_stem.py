"""The baseline's stemming, stop words and text preparation steps: fitted, saved, read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TOY_LABELS, TOY_TEXTS
from multihot import Classifier, RunConfig
from multihot.baseline.linear import BaselineConfig, TfidfLogistic
from multihot.baseline.train import fit_baseline
from multihot.core.config import DEFAULT_PREPROCESS
from multihot.core.errors import ConfigError
from multihot.data.prepare import prepare_data

RUNNING = ["i was running home", "she runs every day", "we run to the sea", "a sad grey day"]
RUNNING_TARGETS = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)


def test_stemming_merges_inflections_into_one_feature():
    model = TfidfLogistic.fit(
        RUNNING, RUNNING_TARGETS, BaselineConfig(min_df=1, ngram_max=1, stem="english")
    )
    assert "run" in model.vocabulary
    assert not {"running", "runs"} & set(model.vocabulary)
    features = model.features(["running", "runs", "run", "RUNS"]).toarray()
    assert features[0].sum() > 0
    for row in features[1:]:
        np.testing.assert_array_equal(row, features[0])
    # Without stemming they are three features, and "run" alone is not "running".
    plain = TfidfLogistic.fit(RUNNING, RUNNING_TARGETS, BaselineConfig(min_df=1, ngram_max=1))
    assert {"running", "runs", "run"} <= set(plain.vocabulary)


def test_stemmed_bigrams_are_made_of_stems():
    model = TfidfLogistic.fit(RUNNING, RUNNING_TARGETS, BaselineConfig(min_df=1, stem="english"))
    assert "run home" in model.vocabulary and "run everi" in model.vocabulary


def test_with_a_stemmer_stop_words_are_stemmed_too():
    """Stop words compared as the words are (scikit-learn asks for that): "called" is "call", a
    stop word; "very" is "veri", as "very" is."""
    model = TfidfLogistic.fit(
        ["they called me very late", "calling late birds", "sad birds", "so sad"],
        RUNNING_TARGETS,
        BaselineConfig(min_df=1, ngram_max=1, stem="english", stop_words="english"),
    )
    assert set(model.vocabulary) == {"late", "bird", "sad"}


def test_the_words_of_the_words_are_the_same_words():
    """An explanation scores the words the vectorizer reads and reads them again joined with
    spaces: stems are stemmed until they stay (agree -> agre -> agr) and stop words compared as
    stems, so the second reading is the first, and an explanation's probability is the model's."""
    from multihot.baseline.linear import _reading

    for stem in ("english", "porter", "french", "german", None):
        config = BaselineConfig(
            stem=stem, stop_words="english", preprocess=list(DEFAULT_PREPROCESS)
        )
        options = _reading(config)
        prepare, words = options["preprocessor"], options["tokenizer"]
        text = " ".join([*TOY_TEXTS, *RUNNING, "Agreed &amp; agreeing, the curiosity Ã©tait Größe"])
        first = words(prepare(text))
        assert first == words(prepare(" ".join(first))), stem


def test_a_stemmed_run_is_explained_in_its_stems(toy_file):
    clf = Classifier.train_baseline(
        toy_file, toy_file, baseline=BaselineConfig(min_df=1, C=100, stem="english")
    )
    text = "I loved waiting in lines"
    explanation = clf.explain(text, label="love")
    entry = explanation.labels[0]
    assert [t.token for t in entry.tokens] == ["love", "wait", "in", "line"]
    np.testing.assert_allclose(entry.probability, clf.predict_proba([text])[0][2], rtol=1e-6)
    assert entry.tokens[0].score > 0


def test_stop_words_are_dropped_before_the_ngrams_as_sklearn_does():
    from sklearn.feature_extraction.text import TfidfVectorizer

    config = BaselineConfig(min_df=1, stop_words="english")
    targets = np.array([[1.0 if "joy" in ls else 0.0] for ls in TOY_LABELS])
    model = TfidfLogistic.fit(TOY_TEXTS, targets, config)
    assert not {"this", "is", "and", "so", "what"} & set(model.vocabulary)
    assert "terrible sad" in model.vocabulary  # "this is terrible and sad": no stop word between
    reference = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english")
    reference.fit(TOY_TEXTS)
    assert model.vocabulary == {k: int(v) for k, v in reference.vocabulary_.items()}
    new = ["what a lovely joy", "so sad and angry", "the and of"]
    np.testing.assert_allclose(
        model.features(new).toarray(), reference.transform(new).toarray(), atol=1e-12
    )


def test_a_stemmed_run_is_saved_with_its_settings_and_predicts_identically(tmp_path, toy_file):
    baseline = BaselineConfig(min_df=1, stem="english", stop_words="english")
    clf = Classifier.train_baseline(toy_file, toy_file, baseline=baseline, output=tmp_path / "run")
    section = json.loads((tmp_path / "run" / "config.json").read_text())["baseline"]
    assert section["stem"] == "english" and section["stop_words"] == "english"
    assert section["preprocess"] == list(DEFAULT_PREPROCESS)
    vocabulary = json.loads((tmp_path / "run" / "vocabulary.json").read_text())
    assert "terribl" in vocabulary and "terrible" not in vocabulary and "this" not in vocabulary

    again = Classifier.load(tmp_path / "run")
    assert again.model.config == clf.model.config
    texts = [*TOY_TEXTS, "Loving the LOVELY weather", "hated waiting &amp; waiting"]
    np.testing.assert_array_equal(clf.predict_proba(texts), again.predict_proba(texts))
    assert clf.predict(texts) == again.predict(texts)


def test_benchmark_spelling_trains_with_and_without_stemming(toy_file):
    """benchmarks/preprocess.py: the same data, stemmed or not, from Python."""
    plain = Classifier.train_baseline(toy_file, toy_file, baseline=BaselineConfig(min_df=1))
    stemmed = Classifier.train_baseline(
        toy_file, toy_file, baseline=BaselineConfig(min_df=1, stem="english")
    )
    assert plain.model.config.stem is None and stemmed.model.config.stem == "english"
    assert "lovely" in plain.model.vocabulary and "love" in stemmed.model.vocabulary


@pytest.mark.parametrize(
    ("settings", "fragments"),
    [
        ({"stem": "klingon"}, ["baseline stem", "'klingon'", "english", "porter", "german"]),
        ({"stop_words": "french"}, ["baseline stop_words", "english", "'french'"]),
        ({"stop_words": "true"}, ["baseline stop_words", "'true'"]),
        ({"preprocess": ["html", "shout"]}, ["baseline preprocess", "'shout'"]),
    ],
)
def test_bad_settings_are_clear_errors(settings, fragments):
    with pytest.raises(ConfigError) as err:
        BaselineConfig(**settings)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_settings_are_read_as_written():
    config = BaselineConfig(stem=" English ", stop_words="ENGLISH", preprocess="whitespace,html")
    assert (config.stem, config.stop_words, config.preprocess) == (
        "english",
        "english",
        ["html", "whitespace"],
    )


AMP_TEXTS = ["salt &amp; pepper", "bread &amp; butter", "sad &lt;grey&gt; day", "a sad story"]
AMP_LABELS = [["food"], ["food"], ["sad"], ["sad"]]


def _amp_data(tmp_path):
    from helpers import write_jsonl

    return write_jsonl(tmp_path / "amp.jsonl", AMP_TEXTS, AMP_LABELS)


def test_the_runs_preprocess_steps_prepare_every_text(tmp_path):
    data = _amp_data(tmp_path)
    clf = Classifier.train_baseline(
        data, data, baseline=BaselineConfig(min_df=1), preprocess="html", output=tmp_path / "run"
    )
    assert clf.config.model.preprocess == ["html"] and clf.model.config.preprocess == ["html"]
    assert "amp" not in clf.model.vocabulary and "lt" not in clf.model.vocabulary
    escaped, plain = ["salt &amp; pepper &lt;3"], ["salt & pepper <3"]
    np.testing.assert_array_equal(clf.predict_proba(escaped), clf.predict_proba(plain))
    again = Classifier.load(tmp_path / "run")
    np.testing.assert_array_equal(again.predict_proba(escaped), clf.predict_proba(plain))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["preprocess"] == [
        "html"
    ]

    # With no steps the entity is a word the model reads ("amp"), so the two texts differ.
    raw = Classifier.train_baseline(
        data, data, baseline=BaselineConfig(min_df=1), preprocess="none"
    )
    assert raw.config.model.preprocess == [] and "amp" in raw.model.vocabulary
    assert not np.array_equal(raw.predict_proba(escaped), raw.predict_proba(plain))


def test_a_new_run_takes_the_default_steps(toy_file):
    clf = Classifier.train_baseline(toy_file, toy_file, baseline=BaselineConfig(min_df=1))
    assert clf.config.model.preprocess == list(DEFAULT_PREPROCESS)
    assert clf.model.config.preprocess == list(DEFAULT_PREPROCESS)


def test_the_baseline_train_compares_with_reads_as_the_transformer_does(toy_file):
    """``multihot train`` fits the baseline through fit_baseline with the transformer's config
    (training/run.py compare_with_baseline): the steps come from it, default ones when none."""
    config = RunConfig().override(encoder="scratch-tiny", preprocess="html,whitespace")
    data = prepare_data(toy_file, toy_file, config)
    run = fit_baseline(data, config.override(encoder="tfidf-logreg"), BaselineConfig(min_df=1))
    assert run.model.config.preprocess == ["html", "whitespace"]
    unset = fit_baseline(data, RunConfig().override(encoder="tfidf-logreg"))
    assert unset.model.config.preprocess == list(DEFAULT_PREPROCESS)
    assert unset.config.model.preprocess == list(DEFAULT_PREPROCESS)


def test_steps_given_in_the_baseline_settings_must_be_the_runs(toy_file):
    with pytest.raises(ConfigError, match="the run's preprocess setting decides the steps"):
        Classifier.train_baseline(
            toy_file, toy_file, baseline=BaselineConfig(preprocess=["html"]), preprocess="none"
        )
    same = BaselineConfig(min_df=1, preprocess=["html"])
    clf = Classifier.train_baseline(toy_file, toy_file, baseline=same, preprocess="html")
    assert clf.model.config.preprocess == ["html"]


def test_an_old_run_without_steps_reads_texts_as_they_are(tmp_path):
    """A baseline run saved before stem, stop_words and preprocess existed: no such keys in its
    config.json; it loads with no steps and predicts exactly what it did."""
    from multihot.artifacts.runs import save_linear_run
    from multihot.data.labels import LabelSet
    from multihot.scoring.probabilities import sigmoid
    from multihot.scoring.thresholds import Thresholds

    labels = LabelSet(["food", "sad"])
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    model = TfidfLogistic.fit(AMP_TEXTS, targets, BaselineConfig(min_df=1))
    old_section = {
        k: v
        for k, v in model.config_dict().items()
        if k not in ("stem", "stop_words", "preprocess")
    }
    run = save_linear_run(
        tmp_path / "old",
        vocabulary=model.vocabulary,
        arrays=model.arrays(),
        baseline=old_section,
        config=RunConfig().override(encoder="tfidf-logreg"),
        labels=labels,
        thresholds=Thresholds.fixed(2, 0.5),
        metrics={},
        history=[],
    )
    raw = json.loads((run / "config.json").read_text())
    raw["model"].pop("preprocess", None)
    (run / "config.json").write_text(json.dumps(raw))

    loaded = Classifier.load(run)
    assert loaded.config.model.preprocess == []
    assert loaded.model.config.preprocess is None and loaded.model.config.stem is None
    texts = ["salt &amp; pepper", "salt & pepper", "a sad &lt;grey&gt; story"]
    np.testing.assert_allclose(loaded.predict_proba(texts), sigmoid(model.logits(texts)))
    assert "amp" in loaded.model.vocabulary  # the entity stays a word, as it was fitted


def test_texts_of_stop_words_only_are_a_clean_error():
    from multihot.core.errors import DataError

    with pytest.raises(DataError, match="no word of two or more letters or digits but stop words"):
        TfidfLogistic.fit(
            ["the and of", "it is"], RUNNING_TARGETS[:2], BaselineConfig(stop_words="english")
        )
