"""Token masking while training, and the masked-token (MLM) auxiliary loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import TINY, TOY_TEXTS
from multihot import Classifier
from multihot.core.errors import ConfigError
from multihot.modeling.masking import mask_tokens


def _mask(ids, prob, seed=0):
    mask = (ids != 0).long()
    g = torch.Generator().manual_seed(seed)
    return mask_tokens(
        ids,
        mask,
        prob=prob,
        mask_token_id=4,
        special_ids=[0, 1, 2, 3, 4],
        vocab_size=50,
        generator=g,
    )


def test_masking_never_touches_padding_or_special_tokens():
    ids = torch.randint(5, 50, (64, 30))
    ids[:, 0], ids[:, 20], ids[:, 21:] = 2, 3, 0  # [CLS] ... [SEP] then padding
    out, chosen = _mask(ids, prob=0.9)
    assert not chosen[:, 0].any() and not chosen[:, 20:].any()
    assert torch.equal(out[:, 0], ids[:, 0]) and torch.equal(out[:, 20:], ids[:, 20:])
    assert torch.equal(out[~chosen], ids[~chosen])


def test_masking_proportions_follow_bert():
    ids = torch.randint(5, 50, (400, 100))
    out, chosen = _mask(ids, prob=0.15)
    assert chosen.float().mean().item() == pytest.approx(0.15, abs=0.01)
    picked_out, picked_in = out[chosen], ids[chosen]
    assert (picked_out == 4).float().mean().item() == pytest.approx(0.8, abs=0.02)
    kept = (picked_out == picked_in).float().mean().item()
    assert kept == pytest.approx(0.1 + 0.1 / 45, abs=0.02)  # kept, plus random draws of itself
    assert (picked_out[picked_out != 4] >= 5).all()  # random replacements are never special


def test_masking_is_seeded():
    ids = torch.randint(5, 50, (8, 20))
    assert torch.equal(_mask(ids, 0.3, seed=1)[0], _mask(ids, 0.3, seed=1)[0])
    assert not torch.equal(_mask(ids, 0.3, seed=1)[0], _mask(ids, 0.3, seed=2)[0])


def test_mlm_training_changes_the_model_and_saves_no_mlm_head(toy_file, tmp_path):
    plain = Classifier.train(toy_file, toy_file, epochs=2, batch_size=4, **TINY)
    clf = Classifier.train(
        toy_file,
        toy_file,
        epochs=2,
        batch_size=4,
        mask_prob=0.3,
        mlm_weight=1.0,
        output=tmp_path / "run",
        **TINY,
    )
    probs = clf.predict_proba(TOY_TEXTS, precision="fp32")
    assert not np.allclose(probs, plain.predict_proba(TOY_TEXTS, precision="fp32"))
    assert set(clf.model.state_dict()) == set(plain.model.state_dict())
    np.testing.assert_array_equal(
        probs, Classifier.load(tmp_path / "run").predict_proba(TOY_TEXTS, precision="fp32")
    )


def test_masking_without_mlm_trains(toy_file, monkeypatch):
    """mask_prob alone: the model trains on corrupted texts ([MASK] reaches it), which changes
    what it learns, and no MLM head is trained or saved. A finite loss alone would not show it:
    a run that ignored mask_prob would train just as well."""
    from multihot.training import run as training_run

    real_fit, seen = training_run.fit, []  # the input ids of every training forward pass

    def recording_fit(model, *args, **kwargs):
        model.register_forward_pre_hook(
            lambda module, inputs: seen.append(inputs[0].clone()) if module.training else None
        )
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(training_run, "fit", recording_fit)
    settings = dict(epochs=1, batch_size=4, **TINY)
    clf = Classifier.train(toy_file, toy_file, mask_prob=0.2, **settings)
    assert np.isfinite(clf.history[-1]["train_loss"])
    mask_id = clf.tokenizer.mask_token_id
    assert len(seen) == 2 and any((ids == mask_id).any() for ids in seen)
    seen.clear()
    plain = Classifier.train(toy_file, toy_file, **settings)
    assert len(seen) == 2 and not any((ids == mask_id).any() for ids in seen)
    assert clf.history[-1]["train_loss"] != plain.history[-1]["train_loss"]
    assert set(clf.model.state_dict()) == set(plain.model.state_dict())


def test_mlm_weight_needs_masking():
    with pytest.raises(ConfigError, match="mlm_weight: needs mask_prob > 0"):
        Classifier.train("unused.jsonl", mlm_weight=1.0)
