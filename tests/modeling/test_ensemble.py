"""Seed ensembles: the mean-probability logits, and an ensemble run end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import TINY, TOY_TEXTS
from multihot import Classifier
from multihot.core.errors import ConfigError
from multihot.modeling.ensemble import mean_probability_logits


def test_mean_probability_logits_is_the_logit_of_the_mean_probability():
    z = torch.randn(3, 5, 4, dtype=torch.float64) * 3
    expected = torch.logit(torch.sigmoid(z).mean(0))
    torch.testing.assert_close(mean_probability_logits(z).double(), expected, rtol=1e-5, atol=1e-5)


def test_mean_probability_logits_stay_finite_at_extremes():
    # sigmoid(±60) is 1 or 0 in float32; the log-space form still gives the right logit.
    z = torch.tensor([[[60.0, -60.0, 60.0]], [[60.0, -60.0, -60.0]]])
    out = mean_probability_logits(z)
    assert torch.isfinite(out).all()
    assert out[0, 0] == pytest.approx(60 - np.log(1), abs=1e-3)  # both members agree: logit 60
    assert out[0, 1] == pytest.approx(-60, abs=1e-3)
    assert out[0, 2] == pytest.approx(0.0, abs=1e-3)  # one sure yes, one sure no: p = 0.5


def test_ensemble_averages_its_members_and_round_trips(toy_file, tmp_path):
    # Uncalibrated, so the probabilities are the members' average as it is.
    fit = {"epochs": 2, "batch_size": 4, "calibrate": False, **TINY}
    single = Classifier.train(toy_file, toy_file, **fit)
    clf = Classifier.train(toy_file, toy_file, ensemble=2, output=tmp_path / "run", **fit)
    probs = clf.predict_proba(TOY_TEXTS, precision="fp32")

    # The first member is the single model of the same seed; the second has the next seed.
    first, second = clf.model.members
    ids = clf.tokenizer(TOY_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        member_probs = [
            torch.sigmoid(m(ids["input_ids"], ids["attention_mask"])).numpy()
            for m in (first, second)
        ]
    np.testing.assert_allclose(
        member_probs[0], single.predict_proba(TOY_TEXTS, precision="fp32"), atol=1e-6
    )
    assert not np.allclose(member_probs[0], member_probs[1])
    np.testing.assert_allclose(probs, np.mean(member_probs, axis=0), atol=1e-6)

    assert [m["seed"] for m in clf.metrics["members"]] == [TINY["seed"], TINY["seed"] + 1]
    assert {r["member"] for r in clf.history} == {0, 1}
    loaded = Classifier.load(tmp_path / "run")
    np.testing.assert_array_equal(probs, loaded.predict_proba(TOY_TEXTS, precision="fp32"))
    assert loaded.predict(TOY_TEXTS) == clf.predict(TOY_TEXTS)


def test_ensemble_size_is_checked():
    with pytest.raises(ConfigError, match="ensemble: expected at least 1, got 0"):
        Classifier.train("unused.jsonl", ensemble=0)


def test_members_can_pool_differently_and_round_trip(toy_file, tmp_path):
    from multihot.modeling.pooling import ClsPooling, MeanPooling

    clf = Classifier.train(
        toy_file,
        toy_file,
        epochs=1,
        batch_size=4,
        ensemble=3,
        ensemble_pooling="mean,cls",
        output=tmp_path / "run",
        **TINY,
    )
    kinds = [type(m.pooling) for m in clf.model.members]
    assert kinds == [MeanPooling, ClsPooling, MeanPooling]  # in turn
    assert clf.config.model.ensemble_pooling == ["mean", "cls"]
    loaded = Classifier.load(tmp_path / "run")
    assert [type(m.pooling) for m in loaded.model.members] == kinds
    np.testing.assert_array_equal(
        clf.predict_proba(TOY_TEXTS, precision="fp32"),
        loaded.predict_proba(TOY_TEXTS, precision="fp32"),
    )


def test_ensemble_pooling_names_are_checked():
    with pytest.raises(ConfigError, match="ensemble_pooling: expected one of"):
        Classifier.train("unused.jsonl", ensemble=2, ensemble_pooling=["mean", "sum"])
