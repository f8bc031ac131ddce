"""The overfit test and the Python API end to end (spaCy's textcat overfit test, for multi-label)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import TINY, TOY_LABELS, TOY_TEXTS, write_jsonl
from multihot import Classifier
from multihot.core.errors import DataError, MultihotError
from multihot.data.readers import Dataset, read_dataset


def test_overfit_reaches_f1_one(toy_run):
    clf, _ = toy_run
    assert clf.metrics["validation"]["macro_f1"] == 1.0
    assert clf.predict(TOY_TEXTS, precision="fp32") == [sorted(x) for x in TOY_LABELS]
    assert (
        clf.evaluate(Dataset(TOY_TEXTS, TOY_LABELS, "toy", None), precision="fp32")["micro_f1"]
        == 1.0
    )


def test_save_load_gives_identical_probabilities(toy_run):
    clf, path = toy_run
    loaded = Classifier.load(path)
    assert loaded.label_names == clf.label_names
    np.testing.assert_array_equal(loaded.thresholds.values, clf.thresholds.values)
    np.testing.assert_array_equal(
        loaded.predict_proba(TOY_TEXTS, precision="fp32"),
        clf.predict_proba(TOY_TEXTS, precision="fp32"),
    )


def test_a_model_without_its_encoder_config_is_not_saved(toy_run, tmp_path):
    """Saving it wrote ``"encoder_config": null``, a run that loading then failed on (TypeError in
    encoder_from_config); it still predicts."""
    clf = toy_run[0]
    bare = Classifier(
        clf.model,
        clf.tokenizer,
        clf.labels,
        clf.thresholds,
        clf.config,
        calibration=clf.calibration,
    )
    np.testing.assert_array_equal(
        bare.predict_proba(TOY_TEXTS[:2], precision="fp32"),
        clf.predict_proba(TOY_TEXTS[:2], precision="fp32"),
    )
    with pytest.raises(MultihotError, match="encoder_config"):
        bare.save(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_batched_equals_one_by_one(toy_run):
    clf, _ = toy_run
    batched = clf.predict_proba(TOY_TEXTS, batch_size=8, precision="fp32")
    single = np.stack([clf.predict_proba([t], precision="fp32")[0] for t in TOY_TEXTS])
    # Not bit-exact: a batch pads short texts to its longest, and the BLAS kernels sum the (zero)
    # padded positions in a different order, which moves the last bit or two of float32 (and the
    # run's calibration, a temperature below 1 for some labels, makes that a few bits more).
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    batched_bf16 = clf.predict_proba(TOY_TEXTS, batch_size=8, precision="bf16")
    single_bf16 = np.stack([clf.predict_proba([t], precision="bf16")[0] for t in TOY_TEXTS])
    # bf16 keeps 8 bits of mantissa: probabilities agree to about 1e-2.
    np.testing.assert_allclose(batched_bf16, single_bf16, rtol=0, atol=2e-2)
    np.testing.assert_allclose(batched_bf16, batched, rtol=0, atol=2e-2)


def test_predictions_come_back_in_input_order(toy_run):
    clf, _ = toy_run
    # Lengths vary, so the length-sorted batches differ from the input order.
    order = [3, 0, 7, 1, 6, 2, 5, 4]
    texts = [TOY_TEXTS[i] for i in order]
    probs = clf.predict_proba(texts, batch_size=3, precision="fp32")
    reference = clf.predict_proba(TOY_TEXTS, batch_size=3, precision="fp32")
    np.testing.assert_allclose(probs, reference[order], atol=1e-6)
    assert clf.predict(texts, precision="fp32") == [sorted(TOY_LABELS[i]) for i in order]


def test_predict_proba_shape_and_columns(toy_run):
    clf, _ = toy_run
    probs = clf.predict_proba(["a new text", "another"])
    assert probs.shape == (2, 4) and probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()
    assert clf.label_names == ["anger", "joy", "love", "sadness"]
    assert clf.predict_proba([]).shape == (0, 4)


def test_single_string_is_refused(toy_run):
    clf, _ = toy_run
    with pytest.raises(MultihotError, match="single string"):
        clf.predict_proba("just one text")


@pytest.mark.parametrize("blank", ["", "   ", "\t\n", "\u3000"])
def test_empty_text_is_refused_at_prediction_as_at_training(toy_run, tmp_path, blank):
    """Training data refuses an empty or whitespace-only text; prediction labelled it."""
    clf, _ = toy_run
    with pytest.raises(MultihotError, match=r"^text 3: empty text; "):
        clf.predict_proba(["fine", "also fine", blank])
    path = write_jsonl(tmp_path / "train.jsonl", ["fine", blank], [["joy"], []])
    with pytest.raises(DataError, match="row 2: column 'text': empty text$"):
        read_dataset(path)


def test_unknown_label_at_evaluation(toy_run):
    clf, _ = toy_run
    with pytest.raises(DataError, match="unknown label 'surprise'"):
        clf.evaluate(Dataset(["wow"], [["surprise"]], "eval.jsonl", None))


def test_training_without_val_holds_out_a_stratified_split(toy_file):
    texts = TOY_TEXTS * 4
    labels = TOY_LABELS * 4
    clf = Classifier.train(Dataset(texts, labels, "x", None), epochs=1, val_fraction=0.25, **TINY)
    assert clf.metrics["validation"]["num_texts"] == 8
    assert len(clf.history) == 1


def test_same_seed_same_model(toy_file):
    a = Classifier.train(toy_file, toy_file, epochs=2, **TINY)
    b = Classifier.train(toy_file, toy_file, epochs=2, **TINY)
    np.testing.assert_array_equal(
        a.predict_proba(TOY_TEXTS, precision="fp32"), b.predict_proba(TOY_TEXTS, precision="fp32")
    )


def test_label_without_positives_warns_and_trains(tmp_path, caplog):
    texts = TOY_TEXTS
    data = Dataset(texts, TOY_LABELS, "zeros.csv", None)
    val = Dataset(["a surprise"], [["surprise"]], "val.csv", None)
    with caplog.at_level("WARNING"):
        clf = Classifier.train(data, val, epochs=1, **TINY)
    assert "surprise" in clf.label_names
    assert any(
        "'surprise' has no positive example in training" in r.message for r in caplog.records
    )


def test_eval_every_steps_and_early_stopping(toy_file):
    clf = Classifier.train(
        toy_file, toy_file, epochs=6, batch_size=4, eval_every=1, patience=2, lr=1e-6, **TINY
    )
    steps = [r["step"] for r in clf.history]
    assert steps[:3] == [1, 2, 3]
    # lr this small cannot improve macro F1 for long: early stopping ends well before 12 steps.
    assert clf.metrics["stopped_early"] and len(steps) < 12


def test_tune_thresholds_changes_and_reports(toy_run):
    """The thresholds are replaced (values, not only the strategy's name), and what is reported,
    and recorded in the metrics, is what the new thresholds give: what evaluate says afterwards.
    Comparing the report with evaluate alone would pass with the old thresholds left in place."""
    clf = Classifier.load(toy_run[1])  # a copy: the session fixture stays as trained
    data = Dataset(TOY_TEXTS, TOY_LABELS, "toy", None)
    before, at_before = clf.thresholds.values.copy(), clf.evaluate(data)
    assert not np.allclose(before, 0.5)  # the run's tuned thresholds: "fixed" (0.5) is a change
    metrics = clf.tune_thresholds(data, strategy="fixed")
    assert clf.thresholds.strategy == "fixed"
    np.testing.assert_array_equal(clf.thresholds.values, np.full(len(clf.label_names), 0.5))
    assert [metrics["per_label"][name]["threshold"] for name in clf.label_names] == [0.5] * 4
    assert metrics["macro_f1"] == pytest.approx(clf.evaluate(data)["macro_f1"])
    assert metrics == clf.evaluate(data)
    assert metrics["macro_f1"] != at_before["macro_f1"]  # these data tell the two apart
    assert clf.metrics["thresholds_tuned_on"] == {"data": "toy", **metrics}


def test_runs_with_different_precisions_in_one_process(toy_file):
    # Regression: Accelerate's process-wide state refused a bf16 run after an fp32 one.
    Classifier.train(toy_file, toy_file, epochs=1, **TINY)
    clf = Classifier.train(toy_file, toy_file, epochs=1, **{**TINY, "precision": "bf16"})
    assert clf.metrics["precision"] == "bf16"


def test_weight_averaging_keeps_the_averaged_weights(toy_file, tmp_path):
    plain = Classifier.train(toy_file, toy_file, epochs=2, batch_size=4, **TINY)
    averaged = Classifier.train(
        toy_file, toy_file, epochs=2, batch_size=4, ema_decay=0.5, output=tmp_path / "run", **TINY
    )
    probs = averaged.predict_proba(TOY_TEXTS, precision="fp32")
    # Same seed and data: only the averaging differs, so the kept weights differ.
    assert not np.array_equal(probs, plain.predict_proba(TOY_TEXTS, precision="fp32"))
    np.testing.assert_array_equal(
        probs, Classifier.load(tmp_path / "run").predict_proba(TOY_TEXTS, precision="fp32")
    )


def test_loader_workers_give_the_same_model(toy_file):
    """Batches made in worker processes (the default on a GPU) are the batches made in-process."""
    a = Classifier.train(toy_file, toy_file, epochs=2, num_workers=0, **TINY)
    b = Classifier.train(toy_file, toy_file, epochs=2, num_workers=1, **TINY)
    np.testing.assert_array_equal(a.predict_proba(TOY_TEXTS), b.predict_proba(TOY_TEXTS))
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]


def test_cpu_training_runs_eager_attention(toy_file, monkeypatch):
    """With attention dropout, SDPA's CPU math path made a training step about 15% slower than the
    eager form; training on a CPU switches to it (see multihot.modeling.encoders.use_eager_attention)."""
    from multihot.training import run as classifier_module

    real_fit, seen = classifier_module.fit, []

    def recording_fit(model, *args, **kwargs):
        result = real_fit(model, *args, **kwargs)
        seen.append(model.encoder.config._attn_implementation)
        return result

    monkeypatch.setattr(classifier_module, "fit", recording_fit)
    clf = Classifier.train(toy_file, toy_file, epochs=1, **TINY)
    assert seen == ["eager"]
    # The saved model is a fresh module: it predicts with the library's default attention.
    assert clf.model.encoder.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_thresholds_are_tuned_on_the_probabilities_predict_gives(toy_file, pooling):
    """Regression: thresholds were tuned on the probabilities of the evaluation during training,
    whose model (eager attention, the whole last layer) rounds differently in bf16 from the one
    prediction runs, so `multihot evaluate` on the validation data disagreed with the run's report."""
    from multihot.scoring.thresholds import tune_thresholds

    clf = Classifier.train(
        toy_file, toy_file, epochs=2, pooling=pooling, **{**TINY, "precision": "auto"}
    )
    probs = clf.predict_proba(TOY_TEXTS)
    targets = clf.labels.encode(TOY_LABELS)
    expected = tune_thresholds(targets, probs, **clf.config.train.threshold_settings())
    np.testing.assert_array_equal(clf.thresholds.values, expected.values)
    assert clf.metrics["validation"] == clf.evaluate(Dataset(TOY_TEXTS, TOY_LABELS, "toy", None))
