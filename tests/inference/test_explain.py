"""Per-label explanations on a task whose answer is known: each label has one trigger word.

Texts are random filler words with zero to two trigger words inserted at random places, and a
label is on exactly when its trigger is in the text. A model that learned the task must be reading
the trigger, so an explanation of a fired label should rank its trigger first, and deleting the
top-ranked tokens should hurt the label more than deleting random ones. Two tiny models are
trained once for the module (a few seconds each): one pooling with label-attention (explained by
its attention weights), one with cls (explained by integrated gradients).
"""

from __future__ import annotations

import copy
import json
import random
import sys

import numpy as np
import pytest

from helpers import TINY
from multihot.core.errors import ConfigError, MultihotError
from multihot.inference.explain import explain

TRIGGERS = {"zebra": "animal", "quartz": "mineral", "violin": "music"}
FILLER = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "it",
    "for",
    "on",
    "with",
    "as",
    "at",
    "by",
    "from",
    "this",
    "that",
    "have",
    "not",
    "but",
    "all",
    "they",
    "one",
    "had",
    "were",
    "there",
    "her",
    "his",
    "can",
    "more",
    "when",
    "your",
    "what",
    "some",
    "would",
    "make",
    "like",
    "time",
    "just",
    "him",
    "know",
    "take",
    "year",
    "good",
    "people",
    "into",
]
TRIGGER_OF = {label: word for word, label in TRIGGERS.items()}


def trigger_texts(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """``n`` texts of 5-10 filler words with 0, 1 or 2 trigger words (1 most often) inserted."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(5, 10))
        chosen = rng.sample(list(TRIGGERS), rng.choice([0, 1, 1, 2]))
        for word in chosen:
            words.insert(rng.randint(0, len(words)), word)
        texts.append(" ".join(words))
        labels.append(sorted(TRIGGERS[word] for word in chosen))
    return texts, labels


def train(pooling: str):
    from multihot import Classifier
    from multihot.data.readers import Dataset

    train_set = Dataset(*trigger_texts(120, seed=0), "train", None)
    val_set = Dataset(*trigger_texts(60, seed=1), "val", None)
    # A quick head (head_lr) lets the label queries sharpen within 4 short epochs. Uncalibrated:
    # calibration would push the surest probabilities to exactly 1 (the threshold nothing reaches).
    settings = {**TINY, "vocab_size": 200, "calibrate": False}
    return Classifier.train(
        train_set,
        val_set,
        pooling=pooling,
        epochs=4,
        lr=3e-3,
        head_lr=1e-2,
        batch_size=16,
        warmup_ratio=0.0,
        patience=0,
        compare_baseline=False,
        **settings,
    )


@pytest.fixture(scope="module")
def attention_clf():
    return train("label-attention")


@pytest.fixture(scope="module")
def ig_clf():
    return train("cls")


def faithfulness(backend, clf, texts, labels, **kwargs) -> dict[str, float]:
    """Over the texts: the share of fired true labels whose trigger ranks first, and the deletion
    check's pass rate and mean probability drops over every label explained."""
    first, fired, checks = 0, 0, []
    for text, names in zip(texts, labels, strict=True):
        for entry in explain(backend, text, clf.labels, clf.thresholds, **kwargs).labels:
            if entry.fired and entry.label in names:
                fired += 1
                first += entry.top_tokens(1) == [TRIGGER_OF[entry.label]]
            if entry.check is not None:
                checks.append(entry.check)
    return {
        "trigger_first": first / fired,
        "fired": fired,
        "held": np.mean([c.held for c in checks]),
        "drop_top_k": np.mean([c.drop_top_k for c in checks]),
        "drop_random": np.mean([c.drop_random for c in checks]),
    }


def test_label_attention_ranks_each_trigger_first(attention_clf):
    texts, labels = trigger_texts(40, seed=7)
    found = faithfulness(attention_clf.backend, attention_clf, texts, labels)
    print("label-attention", found)
    assert found["fired"] >= 25
    assert found["trigger_first"] >= 0.8
    assert found["held"] >= 0.8
    assert found["drop_top_k"] > found["drop_random"]

    entry = explain(attention_clf.backend, texts[0], attention_clf.labels, attention_clf.thresholds)
    entry = entry.labels[0]
    assert entry.method == "label-attention" and entry.convergence_delta is None
    # The label's weights over the whole sequence ([CLS] and [SEP] too) sum to one.
    assert sum(t.score for t in entry.tokens) == pytest.approx(1.0, abs=1e-5)
    assert entry.tokens[0].token == "[CLS]" and entry.tokens[0].special


def test_integrated_gradients_rank_each_trigger_first(ig_clf):
    texts, labels = trigger_texts(25, seed=7)
    found = faithfulness(ig_clf.backend, ig_clf, texts, labels, n_steps=32)
    print("integrated-gradients", found)
    assert found["fired"] >= 15
    assert found["trigger_first"] >= 0.8
    assert found["held"] >= 0.8
    assert found["drop_top_k"] > found["drop_random"]


def test_integrated_gradients_add_up_to_the_logit_difference(ig_clf):
    text = "have more but zebra by time people violin"
    explanation = explain(
        ig_clf.backend, text, ig_clf.labels, ig_clf.thresholds, label=ig_clf.labels.names
    )
    ids = ig_clf.backend.encode([text])[0]
    baseline = [ids[0]] + [ig_clf.tokenizer.pad_token_id] * (len(ids) - 2) + [ids[-1]]
    logits = ig_clf.backend.logits_encoded([ids, baseline], precision="fp32")
    for j, entry in enumerate(explanation.labels):
        assert entry.method == "integrated-gradients"
        # [CLS] and [SEP] are in the baseline as they are in the text: nothing to attribute.
        assert entry.tokens[0].score == 0.0 and entry.tokens[-1].score == 0.0
        total = sum(t.score for t in entry.tokens)
        assert total - entry.convergence_delta == pytest.approx(
            logits[0, j] - logits[1, j], abs=1e-3
        )
        assert abs(entry.convergence_delta) < 0.01 * max(1.0, abs(total))
        assert entry.probability == pytest.approx(1 / (1 + np.exp(-logits[0, j])), abs=1e-6)


def test_which_labels_are_explained(attention_clf):
    clf = attention_clf
    text = "the zebra and the violin"
    fired = clf.predict([text], precision="fp32")[0]
    assert [e.label for e in explain(clf.backend, text, clf.labels, clf.thresholds).labels] == fired
    one = explain(clf.backend, text, clf.labels, clf.thresholds, label="mineral").labels
    assert [e.label for e in one] == ["mineral"] and not one[0].fired
    both = explain(clf.backend, text, clf.labels, clf.thresholds, label=["music", "animal"])
    assert [e.label for e in both.labels] == ["animal", "music"]  # in label order

    # Nothing fires (no probability reaches 1): the most probable label alone.
    none = explain(clf.backend, text, clf.labels, [1.0] * len(clf.labels))
    probs = clf.predict_proba([text], precision="fp32")[0]
    assert [e.label for e in none.labels] == [clf.labels.names[int(np.argmax(probs))]]
    assert not none.labels[0].fired and none.labels[0].threshold == 1.0


def test_unknown_labels_methods_and_settings_are_config_errors(attention_clf, ig_clf):
    clf = attention_clf
    with pytest.raises(ConfigError, match=r"'plant'.*animal, mineral, music"):
        explain(clf.backend, "a zebra", clf.labels, clf.thresholds, label=["animal", "plant"])
    with pytest.raises(ConfigError, match="linear baseline"):
        explain(clf.backend, "a zebra", clf.labels, clf.thresholds, method="linear")
    with pytest.raises(ConfigError, match="label-attention"):
        explain(
            ig_clf.backend, "a zebra", ig_clf.labels, ig_clf.thresholds, method="label-attention"
        )
    with pytest.raises(ConfigError, match="method"):
        explain(clf.backend, "a zebra", clf.labels, clf.thresholds, method="shap")
    with pytest.raises(ConfigError, match="top_k"):
        explain(clf.backend, "a zebra", clf.labels, clf.thresholds, top_k=0)
    with pytest.raises(MultihotError, match="empty text"):
        explain(clf.backend, "  ", clf.labels, clf.thresholds)


def test_label_attention_needs_no_captum(attention_clf, ig_clf, monkeypatch):
    # None in sys.modules makes `import captum...` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    clf = attention_clf
    explanation = explain(clf.backend, "a zebra ran", clf.labels, clf.thresholds)
    assert explanation.labels[0].method == "label-attention"
    with pytest.raises(MultihotError, match=r"pip install 'multihot\[explain\]'"):
        explain(ig_clf.backend, "a zebra ran", ig_clf.labels, ig_clf.thresholds)


def test_a_label_attention_model_can_be_explained_by_integrated_gradients(attention_clf):
    clf = attention_clf
    explanation = explain(
        clf.backend,
        "the zebra ran",
        clf.labels,
        clf.thresholds,
        label="animal",
        method="integrated-gradients",
        n_steps=16,
    )
    assert explanation.labels[0].method == "integrated-gradients"
    assert explanation.labels[0].top_tokens(1) == ["zebra"]


def test_short_texts_delete_fewer_tokens(attention_clf):
    clf = attention_clf
    e = explain(clf.backend, "zebra of time", clf.labels, clf.thresholds, label="animal")
    assert e.labels[0].check.k == 1  # half of three tokens, so a random draw is not the top set
    e = explain(clf.backend, "zebra", clf.labels, clf.thresholds, label="animal")
    assert e.labels[0].check is None
    assert [t.token for t in e.labels[0].tokens] == ["[CLS]", "zebra", "[SEP]"]


def test_the_deletion_check_is_seeded(attention_clf):
    clf = attention_clf
    text = "have more but zebra by time people"
    a, b, c = (
        explain(clf.backend, text, clf.labels, clf.thresholds, seed=s).labels[0].check
        for s in (0, 0, 1)
    )
    assert a == b and a.prob_random != c.prob_random
    assert a.prob_before == pytest.approx(
        clf.predict_proba([text], precision="fp32")[0][0], abs=1e-6
    )
    assert a.deleted == sorted(a.deleted) and 0 not in a.deleted  # never [CLS]


def test_seed_ensembles(attention_clf, ig_clf):
    from multihot.inference.torch_backend import TorchBackend
    from multihot.modeling.ensemble import SeedEnsemble

    clf = attention_clf
    # Same texts, same seed: the same vocabulary, so the two models can form one ensemble.
    assert clf.tokenizer.get_vocab() == ig_clf.tokenizer.get_vocab()
    text = "have more but zebra by time people"

    def backend(*models):
        members = [copy.deepcopy(m) for m in models]
        return TorchBackend(SeedEnsemble(members), clf.tokenizer, clf.encoder_config, 32)

    # Every member attends per label: the members' weights averaged (here twice the same).
    twins = explain(backend(clf.model, clf.model), text, clf.labels, clf.thresholds, label="animal")
    single = explain(clf.backend, text, clf.labels, clf.thresholds, label="animal")
    assert twins.labels[0].method == "label-attention"
    np.testing.assert_allclose(
        [t.score for t in twins.labels[0].tokens],
        [t.score for t in single.labels[0].tokens],
        atol=1e-6,
    )

    # Mixed poolings: integrated gradients through the ensemble's forward, all members' embeddings.
    mixed = explain(
        backend(clf.model, ig_clf.model),
        text,
        clf.labels,
        clf.thresholds,
        label="animal",
        n_steps=32,
    ).labels[0]
    assert mixed.method == "integrated-gradients"
    assert mixed.top_tokens(1) == ["zebra"]
    assert abs(mixed.convergence_delta) < 0.01 * max(1.0, abs(sum(t.score for t in mixed.tokens)))


def test_the_linear_baseline_is_explained_exactly():
    from multihot.baseline.linear import BaselineConfig, TfidfLogistic
    from multihot.data.labels import LabelSet
    from multihot.scoring.calibration import Calibration

    texts, names = trigger_texts(120, seed=0)
    labels = LabelSet(sorted(TRIGGERS.values()))
    model = TfidfLogistic.fit(texts, labels.encode(names), BaselineConfig(min_df=1, C=10.0))
    thresholds = [0.5] * len(labels)
    probe, probe_names = trigger_texts(20, seed=7)
    first = fired = 0
    for text, true in zip(probe, probe_names, strict=True):
        explanation = explain(model, text, labels, thresholds, label=labels.names)
        logits = model.logits([text])[0]
        for j, entry in enumerate(explanation.labels):
            assert entry.method == "linear" and entry.convergence_delta is None
            # Exact: coefficient x tf-idf, each n-gram shared by its words; only the intercept left.
            total = sum(t.score for t in entry.tokens)
            assert total == pytest.approx(logits[j] - model.intercept[j], abs=1e-5)
            if entry.fired and entry.label in true:
                fired += 1
                first += entry.top_tokens(1) == [TRIGGER_OF[entry.label]]
                assert entry.check.held
    assert fired >= 10 and first == fired

    # Calibrated: probabilities of logit / T, and the scores are contributions to logit / T.
    calibration = Calibration(np.array([2.0, 2.0, 2.0]))
    text = "the zebra is good"
    plain = explain(model, text, labels, thresholds, label="animal").labels[0]
    calibrated = explain(model, text, labels, thresholds, label="animal", calibration=calibration)
    calibrated = calibrated.labels[0]
    logit = model.logits([text])[0][0]
    assert calibrated.probability == pytest.approx(1 / (1 + np.exp(-logit / 2)), abs=1e-6)
    assert [t.score / 2 for t in plain.tokens] == pytest.approx(
        [t.score for t in calibrated.tokens]
    )
    assert [t.token for t in plain.tokens] == ["the", "zebra", "is", "good"]


def test_an_explanation_is_plain_json(attention_clf):
    clf = attention_clf
    explanation = explain(clf.backend, "the zebra and the violin", clf.labels, clf.thresholds)
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["text"] == "the zebra and the violin"
    entry = data["labels"][0]
    assert {"label", "probability", "threshold", "fired", "method", "tokens", "check"} <= set(entry)
    assert {"prob_before", "prob_top_k", "prob_random", "drop_top_k", "held"} <= set(entry["check"])


def test_a_calibrated_backend_is_calibrated_once(attention_clf):
    from multihot.scoring.calibration import Calibration

    clf = attention_clf
    text = "a zebra by the quartz"
    clf.calibration = Calibration(np.array([2.0, 0.5, 1.0]), np.array([-1.0, 0.5, 0.0]))
    try:
        e = explain(clf.backend, text, clf.labels, clf.thresholds, label=list(clf.label_names))
        expected = clf.predict_proba([text], precision="fp32")[0]
    finally:
        clf.calibration = None
    assert [entry.probability for entry in e.labels] == pytest.approx(expected.tolist(), abs=1e-6)


# ---------------------------------------------------------------- the deletion check's verdict
@pytest.mark.parametrize(
    ("before", "top_k", "random_", "held"),
    [
        (0.80, 0.30, 0.70, True),  # the top tokens' deletion lowered it more than chance
        (0.80, 0.70, 0.30, False),  # chance lowered it more
        (0.80, 0.85, 0.95, False),  # both raised it, the top tokens less: no drop, not held
        (0.80, 0.80, 0.90, False),  # no change is no drop either
        (0.80, 0.75, 0.95, True),  # a drop, while chance raised it
    ],
)
def test_the_check_holds_only_on_a_drop_larger_than_chance(before, top_k, random_, held):
    from multihot.inference.explain import DeletionCheck

    check = DeletionCheck(
        k=2, prob_before=before, prob_top_k=top_k, prob_random=random_, draws=10, deleted=[0, 1]
    )
    assert check.held is held
