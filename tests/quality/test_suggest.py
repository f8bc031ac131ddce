"""``multihot.suggest``: each strategy ranks crafted pools as expected, k-center spreads a batch,
the batch is N distinct texts that were not labelled yet, and every export parses."""

from __future__ import annotations

import csv
import io
import json
import logging
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from helpers import TINY, TOY_LABELS, TOY_TEXTS, copy_run, write_jsonl
from multihot.artifacts.rundir import TRAINING_TEXTS
from multihot.core.errors import ConfigError, DataError, MultihotError
from multihot.data.readers import read_dataset
from multihot.quality.suggest import (
    STRATEGIES,
    PoolPredictions,
    Suggestions,
    ensemble_scores,
    format_for,
    kcenter,
    label_weights,
    pick,
    random_scores,
    suggest,
    threshold_closeness,
    threshold_scores,
    unit_rows,
)
from multihot.scoring.thresholds import Thresholds

NEW_TEXTS = [
    "what a lovely surprise",
    "this queue is endless and i am cross",
    "grey skies again",
    "my cat knocked over the plant",
    "best concert ever",
    "the bus was late twice",
    "a quiet sunday",
    "they cancelled my order without asking",
]


# ------------------------------------------------------------------------------ pure functions
def test_closeness_is_one_on_the_threshold_and_scaled_per_side():
    probs = np.array([[0.3, 0.0, 1.0, 0.15, 0.65]])
    got = threshold_closeness(probs, np.full(5, 0.3))
    assert got.round(6).tolist() == [[1.0, 0.0, 0.0, 0.5, 0.5]]


def test_threshold_strategy_ranks_rare_label_doubts_first():
    thresholds = np.array([0.5, 0.2])
    probs = np.array(
        [
            [0.99, 0.01],  # sure of both
            [0.5, 0.0],  # on the frequent label's threshold
            [0.0, 0.2],  # on the rare label's threshold
            [0.0, 0.15],  # near the rare label's threshold
            [0.45, 0.01],  # near the frequent label's threshold
        ]
    )
    pool = PoolPredictions(probs, thresholds, positives=np.array([300, 3]))
    scores = threshold_scores(pool)
    assert np.argsort(-scores, kind="stable").tolist() == [2, 3, 1, 4, 0]
    assert scores.max() == pytest.approx(1.0) and scores.min() >= 0
    # Without positives every label counts the same: the two texts on a threshold tie.
    even = threshold_scores(PoolPredictions(probs, thresholds))
    assert even[1] == pytest.approx(1.0) and even[2] == pytest.approx(1.0)
    assert even[4] > even[3] > even[0]


def test_label_weights_favour_few_positives():
    assert label_weights(None, 3).tolist() == [1.0, 1.0, 1.0]
    weights = label_weights(np.array([0, 3, 99]), 3)
    assert weights.tolist() == pytest.approx([1.0, 0.5, 0.1])


def test_ensemble_strategy_ranks_disagreement():
    members = np.array(
        [
            [[0.9, 0.5], [0.5, 0.5], [0.6, 0.0]],
            [[0.1, 0.5], [0.5, 0.5], [0.4, 0.0]],
        ]
    )  # 2 members, 3 texts, 2 labels
    pool = PoolPredictions(members.mean(axis=0), np.array([0.5, 0.5]), member_probs=members)
    scores = ensemble_scores(pool)
    assert scores.round(6).tolist() == [0.8, 0.0, 0.2]
    assert np.argsort(-scores).tolist() == [0, 2, 1]
    with pytest.raises(ConfigError, match="several members"):
        ensemble_scores(PoolPredictions(members[0], np.array([0.5, 0.5])))


def test_random_strategy_is_seeded():
    pool = PoolPredictions(np.zeros((50, 2)), np.full(2, 0.5), seed=7)
    first, again = random_scores(pool), random_scores(pool)
    assert np.array_equal(first, again)
    other = random_scores(PoolPredictions(np.zeros((50, 2)), np.full(2, 0.5), seed=8))
    assert not np.array_equal(first, other)
    assert ((first >= 0) & (first < 1)).all()
    assert set(STRATEGIES) == {"threshold", "ensemble", "random"}


def _clusters() -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters of unit vectors (5 texts each), the first one scored highest."""
    rng = np.random.default_rng(0)
    centers = np.eye(3)
    vectors = np.concatenate([c + 0.01 * rng.standard_normal((5, 3)) for c in centers])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = np.concatenate([np.full(5, 0.9), np.full(5, 0.6), np.full(5, 0.5)])
    scores += rng.uniform(0, 0.01, 15)
    return vectors, scores


def test_kcenter_picks_one_text_per_cluster():
    vectors, scores = _clusters()
    picked = kcenter(vectors, scores, 3)
    assert sorted(int(i) // 5 for i in picked) == [0, 1, 2]
    assert picked[0] == int(np.argmax(scores))
    # Without vectors the best scores win: all from the first cluster.
    assert sorted(int(i) // 5 for i in pick(scores, 3)) == [0, 0, 0]
    batch = pick(scores, 3, vectors)
    assert sorted(int(i) // 5 for i in batch) == [0, 1, 2]
    assert list(scores[batch]) == sorted(scores[batch], reverse=True)  # best first


def test_kcenter_reads_sparse_rows_as_dense_ones():
    from scipy import sparse

    vectors, scores = _clusters()
    assert kcenter(sparse.csr_matrix(vectors), scores, 4).tolist() == (
        kcenter(vectors, scores, 4).tolist()
    )


def test_pick_never_repeats_and_stops_at_the_pool():
    vectors, scores = _clusters()
    assert len(set(pick(scores, 15, vectors).tolist())) == 15
    assert len(pick(scores, 40, vectors)) == 15
    assert len(pick(scores, 40)) == 15


def test_unit_rows_average_the_members_distances():
    vectors = np.array([[[3.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [1.0, 0.0]]])  # 2 members
    rows = unit_rows(vectors)
    assert rows.shape == (2, 4)
    assert np.linalg.norm(rows, axis=1) == pytest.approx([1.0, 1.0])
    # member 0 says orthogonal (distance 1), member 1 the same (distance 0): the mean, 0.5
    assert 1 - rows[0] @ rows[1] == pytest.approx(0.5)


# --------------------------------------------------------------------------------- the batch
def _batch() -> Suggestions:
    names = ["joy", "anger", "love & <hate>"]
    probs = np.array([[0.8, 0.45, 0.1], [0.2, 0.1, 0.05]])
    return Suggestions(
        names,
        Thresholds(np.array([0.5, 0.5, 0.3]), "per-label", 0.5),
        "threshold",
        "kcenter",
        rows=[4, 1],
        texts=['a "quoted",\ntwo-line text', "meh"],
        scores=np.array([0.9, 0.4]),
        probs=probs,
        ids=["x", "y"],
    )


def test_records_carry_the_pre_annotation():
    records = _batch().records()
    first = records[0]
    assert list(first) == [
        "rank", "row", "id", "score", "labels", "near_misses", "probs", "text"
    ]  # fmt: skip
    assert first["labels"] == ["joy"]
    assert first["near_misses"] == ["anger", "love & <hate>"]  # closest to its threshold first
    assert first["probs"] == {"joy": 0.8, "anger": 0.45, "love & <hate>": 0.1}
    assert records[1]["labels"] == [] and records[1]["rank"] == 2 and records[1]["row"] == 1


def test_every_export_parses(tmp_path):
    batch = _batch()
    lines = [json.loads(line) for line in batch.render("jsonl").splitlines()]
    assert lines == batch.records()

    rows = list(csv.DictReader(io.StringIO(batch.render("csv"))))
    assert list(rows[0]) == ["rank", "row", "id", "score", "labels", "near_misses", "text"]
    assert rows[0]["text"] == batch.texts[0] and rows[0]["labels"] == "joy"
    assert rows[1]["labels"] == "" and rows[0]["near_misses"] == "anger,love & <hate>"

    tasks = json.loads(batch.render("label-studio"))
    config = ET.fromstring(batch.label_studio_config())
    (control,) = config.iter("Choices")
    declared = [c.get("value") for c in control.iter("Choice")]
    variables = {t.get("value")[1:] for t in config.iter("Text")}
    assert [t["data"]["text"] for t in tasks] == batch.texts
    for task in tasks:
        assert set(task) == {"data", "predictions"} and variables <= set(task["data"])
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "multihot-suggest"
        for item in prediction["result"]:
            assert item["from_name"] == control.get("name") == "labels"
            assert item["to_name"] == control.get("toName") == "text"
            assert set(item["value"]["choices"]) <= set(declared)
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"] == ["joy"]
    assert tasks[1]["predictions"][0]["result"] == []  # no label: nothing chosen
    assert tasks[0]["data"]["near_misses"] == "anger 0.45; love & <hate> 0.10"

    # Corrected, the JSON lines and the CSV are training data as they are.
    for name in ("batch.jsonl", "batch.csv"):
        data = read_dataset(batch.write(tmp_path / name))
        assert data.texts == batch.texts and data.labels == batch.labels


def test_write_refuses_an_existing_file_without_force(tmp_path):
    batch = _batch()
    path = batch.write(tmp_path / "batch.json")
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), list)  # label-studio
    path.write_text("mine", encoding="utf-8")
    with pytest.raises(MultihotError, match="exists"):
        batch.write(path)
    assert path.read_text(encoding="utf-8") == "mine"
    batch.write(path, "csv", force=True)
    assert path.read_text(encoding="utf-8").startswith("rank,row,id,score")
    assert [format_for(p) for p in ("a.csv", "a.JSON", "a.jsonl", "a.txt")] == [
        "csv", "label-studio", "jsonl", "jsonl"
    ]  # fmt: skip


# ----------------------------------------------------------------------------- a run's pool
def _pool_file(tmp_path, extra=()):
    """POOL: the new texts, copies of training texts (changed in case and spacing), a repeat."""
    rows = [{"id": f"n{i}", "text": t, "labels": ["joy"]} for i, t in enumerate(NEW_TEXTS)]
    rows.insert(2, {"id": "t0", "text": "  I LOVE this so much ", "labels": []})
    rows.insert(5, {"id": "rep", "text": NEW_TEXTS[0].upper(), "labels": []})
    rows += [{"id": f"t{i + 1}", "text": t, "labels": []} for i, t in enumerate(extra)]
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def test_suggest_returns_n_distinct_unlabelled_texts(tiny_run, toy_file, tmp_path):
    pool, rows = _pool_file(tmp_path, extra=TOY_TEXTS[3:6])
    batch = suggest(tiny_run, pool, 5, labelled=toy_file)
    assert len(batch) == 5 and len(set(batch.texts)) == 5
    assert set(batch.texts) <= set(NEW_TEXTS)  # no training text, no copy of one
    assert batch.labelled == 4 and batch.repeats == 1 and batch.ranked == len(NEW_TEXTS)
    for row, text, id_ in zip(batch.rows, batch.texts, batch.ids, strict=True):
        assert rows[row]["text"] == text and rows[row]["id"] == id_
    assert list(batch.scores) == sorted(batch.scores, reverse=True)
    assert batch.probs.shape == (5, 4)
    # More than the pool has left: every text left, once.
    everything = suggest(tiny_run, pool, 50, labelled=toy_file, diversity="none")
    assert sorted(everything.texts) == sorted(NEW_TEXTS)


def test_suggest_skips_the_runs_validation_texts_without_labelled_data(tiny_run, tmp_path):
    # tiny_run validated on the toy texts: they are skipped even when no training data is given
    batch = suggest(tiny_run, [*TOY_TEXTS, *NEW_TEXTS[:3]], 10, strategy="random")
    assert sorted(batch.texts) == sorted(NEW_TEXTS[:3]) and batch.labelled == len(TOY_TEXTS)
    assert batch.ids is None and batch.diversity == "none"
    again = suggest(tiny_run, [*TOY_TEXTS, *NEW_TEXTS], 3, strategy="random", seed=3)
    assert again.texts == suggest(tiny_run, [*TOY_TEXTS, *NEW_TEXTS], 3, strategy="random",
                                  seed=3).texts  # fmt: skip
    with pytest.raises(DataError, match="no text left"):
        suggest(tiny_run, TOY_TEXTS, 2)


VAL_TEXTS = ["i adore you, what a day", "so gloomy and down", "furious about the delay", "nice"]
VAL_LABELS = [["joy", "love"], ["sadness"], ["anger"], ["joy"]]


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    """``(run, train file)``: a run trained on the toy texts and validated on other texts."""
    from multihot import Classifier

    folder = tmp_path_factory.mktemp("split")
    train = write_jsonl(folder / "train.jsonl", TOY_TEXTS, TOY_LABELS)
    val = write_jsonl(folder / "val.jsonl", VAL_TEXTS, VAL_LABELS)
    settings = dict(epochs=1, batch_size=8, compare_baseline=False, **TINY)
    Classifier.train(train, val, output=folder / "run", **settings)
    return folder / "run", train


# A training text in other case and spacing, a validation text, and three new texts.
SPLIT_POOL = ["  THIS is terrible\tand SAD", VAL_TEXTS[1], *NEW_TEXTS[:3]]


def test_suggest_skips_the_runs_training_texts_it_recorded(split_run, caplog):
    run, _ = split_run
    with caplog.at_level(logging.WARNING, logger="multihot"):
        batch = suggest(run, SPLIT_POOL, 10, strategy="random")
    assert sorted(batch.texts) == sorted(NEW_TEXTS[:3]) and batch.labelled == 2
    assert str(run / TRAINING_TEXTS) in batch.skipped_sources
    assert "training texts" not in caplog.text


def test_a_run_without_its_training_texts_skips_them_only_when_given(split_run, tmp_path, caplog):
    run, train = split_run
    old = copy_run(run, tmp_path / "old")
    (old / TRAINING_TEXTS).unlink()  # as a run saved before they were kept
    with caplog.at_level(logging.WARNING, logger="multihot"):
        batch = suggest(old, SPLIT_POOL, 10, strategy="random")
    assert "does not record its training texts" in caplog.text and "--labelled" in caplog.text
    assert SPLIT_POOL[0] in batch.texts and batch.labelled == 1  # the validation text only
    given = suggest(old, SPLIT_POOL, 10, strategy="random", labelled=train)
    assert sorted(given.texts) == sorted(NEW_TEXTS[:3]) and given.labelled == 2


def test_labelled_data_adds_to_the_recorded_texts(split_run, tmp_path):
    run, _ = split_run
    more = write_jsonl(tmp_path / "more.jsonl", NEW_TEXTS[:1], [["joy"]])
    batch = suggest(run, SPLIT_POOL, 10, strategy="random", labelled=more)
    assert sorted(batch.texts) == sorted(NEW_TEXTS[1:3]) and batch.labelled == 3


def test_suggest_refuses_bad_choices_before_reading(tiny_run, tmp_path):
    missing = tmp_path / "nothing.jsonl"
    with pytest.raises(ConfigError, match="strategy"):
        suggest(tiny_run, missing, 2, strategy="entropy")
    with pytest.raises(ConfigError, match="diversity"):
        suggest(tiny_run, missing, 2, diversity="clusters")
    with pytest.raises(ConfigError, match="at least 1"):
        suggest(tiny_run, missing, 0)
    with pytest.raises(ConfigError, match="several members"):
        suggest(tiny_run, missing, 2, strategy="ensemble")


def test_suggest_on_a_baseline_run_spreads_over_tfidf_vectors(baseline_run, tmp_path):
    pool, _ = _pool_file(tmp_path)
    batch = suggest(baseline_run, pool, 4)
    assert len(set(batch.texts)) == 4 and set(batch.texts) <= set(NEW_TEXTS)
    assert batch.diversity == "kcenter"


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    from multihot import Classifier

    data = write_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", TOY_TEXTS, TOY_LABELS)
    out = tmp_path_factory.mktemp("runs") / "ensemble"
    settings = {**TINY, "compare_baseline": False}
    Classifier.train(data, data, output=out, epochs=1, batch_size=8, ensemble=2, **settings)
    return out


def test_an_ensemble_run_records_its_training_texts_once(ensemble_run):
    batch = suggest(ensemble_run, [TOY_TEXTS[0].upper(), *NEW_TEXTS[:2]], 5, strategy="ensemble")
    assert sorted(batch.texts) == sorted(NEW_TEXTS[:2]) and batch.labelled == 1
    assert str(ensemble_run / TRAINING_TEXTS) in batch.skipped_sources


def test_readout_gives_the_predicted_logits_and_each_members(ensemble_run):
    from multihot.inference.predictor import Predictor

    predictor = Predictor.load(ensemble_run, precision="fp32")
    readout = predictor.engine.readout(NEW_TEXTS, batch_size=3, precision="fp32")
    logits = predictor.engine.predict_logits(NEW_TEXTS, precision="fp32")
    np.testing.assert_allclose(readout.logits, logits, atol=1e-5)
    assert readout.member_logits.shape == (2, len(NEW_TEXTS), 4)
    assert readout.vectors.shape[:2] == (2, len(NEW_TEXTS))
    predictor.engine.calibration = None  # uncalibrated, the model's is the members' mean
    raw = predictor.engine.readout(NEW_TEXTS, precision="fp32")
    members = 1 / (1 + np.exp(-raw.member_logits.astype(np.float64)))
    mean = 1 / (1 + np.exp(-raw.logits.astype(np.float64)))
    np.testing.assert_allclose(members.mean(axis=0), mean, atol=1e-5)
    batch = suggest(ensemble_run, NEW_TEXTS, 3, strategy="ensemble")
    assert len(set(batch.texts)) == 3


@pytest.mark.parametrize("pooling", ["cls", "label-attention"])
def test_readout_of_any_pooling_gives_the_forward_logits(pooling):
    import torch

    from multihot.core.config import ModelConfig
    from multihot.inference.torch_backend import predict_logits, predict_readout
    from multihot.modeling.encoders import encoder_from_config, scratch_config
    from multihot.modeling.model import MultiLabelModel

    torch.manual_seed(0)
    encoder = encoder_from_config(scratch_config("scratch-tiny", vocab_size=50, max_length=16))
    model = MultiLabelModel(encoder, num_labels=3, config=ModelConfig(pooling=pooling))
    ids = [[2, 10, 11, 3], [2, 12, 3], [2, 13, 14, 15, 16, 3]]
    logits = predict_logits(model, ids, pad_token_id=0, batch_size=2)
    readout = predict_readout(model, ids, pad_token_id=0, batch_size=2)
    np.testing.assert_allclose(readout.logits, logits, atol=1e-6)
    np.testing.assert_allclose(readout.member_logits[0], logits, atol=1e-6)
    assert readout.vectors.shape == (1, 3, encoder.config.hidden_size)
