"""Encoders: scratch vocabularies are reproducible; local Hugging Face directories load; hub names fail clearly offline."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import TOY_LABELS, TOY_TEXTS
from multihot import Classifier
from multihot.core.errors import EncoderError
from multihot.modeling.encoders import (
    SCRATCH_SIZES,
    encoder_from_config,
    load_pretrained,
    scratch_config,
    train_wordpiece,
    use_eager_attention,
)


def test_wordpiece_vocabulary_is_deterministic():
    texts = TOY_TEXTS * 3 + ["unbelievably wonderful", "wonderfully unbelievable"]
    first = train_wordpiece(texts, vocab_size=150).get_vocab()
    for _ in range(3):
        assert train_wordpiece(texts, vocab_size=150).get_vocab() == first


def test_wordpiece_covers_seen_characters_and_splits_words():
    tok = train_wordpiece(["happy happier happiest", "sad sadder"] * 3, vocab_size=60)
    tokens = tok.tokenize("sappier")  # an unseen word made of seen characters
    assert "[UNK]" not in tokens and tokens[0] and all(t.startswith("##") for t in tokens[1:])
    assert tok("sad")["input_ids"][0] == tok.cls_token_id


@pytest.mark.parametrize("name", list(SCRATCH_SIZES))
def test_scratch_sizes(name):
    config = scratch_config(name, vocab_size=1000, max_length=128)
    assert config["hidden_size"] == SCRATCH_SIZES[name].hidden
    assert config["num_hidden_layers"] == SCRATCH_SIZES[name].layers


def test_unknown_scratch_size():
    with pytest.raises(EncoderError, match="scratch-huge"):
        scratch_config("scratch-huge", 100, 16)


def test_local_directory_trains_with_pooler_and_round_trips(local_bert, toy_file, tmp_path):
    encoder, tokenizer = load_pretrained(str(local_bert))
    assert encoder.config.hidden_size == 32 and tokenizer.pad_token == "[PAD]"
    clf = Classifier.train(
        toy_file,
        toy_file,
        encoder=str(local_bert),
        pooling="pooler",
        epochs=2,
        lr=1e-3,
        precision="fp32",
        output=tmp_path / "run",
    )
    again = Classifier.load(tmp_path / "run")
    np.testing.assert_array_equal(
        clf.predict_proba(TOY_TEXTS, precision="fp32"),
        again.predict_proba(TOY_TEXTS, precision="fp32"),
    )
    assert clf.config.train.lr == 1e-3 and len(clf.label_names) == len(
        {n for ls in TOY_LABELS for n in ls}
    )


def test_pickled_only_directory_is_refused(local_bert, tmp_path):
    import shutil

    import torch

    path = tmp_path / "pickled"
    shutil.copytree(local_bert, path)
    state = {
        k: v
        for k, v in __import__("safetensors.torch")
        .torch.load_file(str(path / "model.safetensors"))
        .items()
    }
    (path / "model.safetensors").unlink()
    torch.save(state, path / "pytorch_model.bin")
    with pytest.raises(EncoderError, match="safetensors"):
        load_pretrained(str(path))


def test_hub_name_offline_is_a_clear_error():
    with pytest.raises(EncoderError) as info:
        load_pretrained("bert-base-uncased")
    message = str(info.value)
    assert "bert-base-uncased" in message and "scratch-mini" in message and "local" in message
    assert "\n" not in message


def test_eager_attention_switch_keeps_the_outputs():
    import torch

    encoder = encoder_from_config(scratch_config("scratch-tiny", vocab_size=60, max_length=16))
    encoder.eval()
    ids = torch.randint(5, 60, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:], mask[2, 2:] = 0, 0
    assert encoder.config._attn_implementation == "sdpa"
    with torch.no_grad():
        before = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert use_eager_attention(encoder) == 1
        assert encoder.config._attn_implementation == "eager"
        after = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(after[real], before[real], atol=1e-5, rtol=1e-5)
    assert use_eager_attention(encoder) == 0  # nothing left to switch
