"""A document's windows pooled into one vector before the head (``long_text="chunk"``)."""

from __future__ import annotations

import pytest
import torch

from multihot.core.config import ModelConfig
from multihot.data.encoding import pack_documents
from multihot.modeling.encoders import encoder_from_config, scratch_config
from multihot.modeling.ensemble import SeedEnsemble
from multihot.modeling.model import MultiLabelModel


def model(pooling: str, chunk_pooling: str, seed: int = 0) -> MultiLabelModel:
    torch.manual_seed(seed)
    encoder = encoder_from_config(scratch_config("scratch-tiny", vocab_size=100, max_length=16))
    config = ModelConfig(pooling=pooling, long_text="chunk", chunk_pooling=chunk_pooling)
    return MultiLabelModel(encoder, num_labels=3, config=config).eval()


def documents(seed: int, n: int = 5):
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        windows = int(torch.randint(1, 6, (1,), generator=g))
        lengths = [16] * (windows - 1) + [int(torch.randint(3, 17, (1,), generator=g))]
        docs.append(
            [[2, *torch.randint(5, 100, (k - 2,), generator=g).tolist(), 3] for k in lengths]
        )
    return docs


def logits(net, docs, **options):
    ids, mask, index = (torch.from_numpy(a) for a in pack_documents(docs, pad_token_id=0))
    with torch.no_grad():
        return net(ids, mask, chunk_index=index, **options)


@pytest.mark.parametrize(
    "pooling,chunk_pooling",
    [
        ("mean", "max"),
        ("mean", "mean"),
        ("cls", "attention"),
        ("label-attention", "attention"),
        ("label-attention", "max"),
    ],
)
def test_a_document_scores_the_same_alone_or_packed_with_others(pooling, chunk_pooling):
    net, docs = model(pooling, chunk_pooling), documents(0)
    packed = logits(net, docs)
    assert packed.shape == (len(docs), 3)
    for i, doc in enumerate(docs):
        torch.testing.assert_close(logits(net, [doc])[0], packed[i], atol=1e-5, rtol=1e-5)
    # Encoding two windows at a time gives the same logits as all of them at once.
    torch.testing.assert_close(logits(net, docs, encoder_rows=2), packed, atol=1e-5, rtol=1e-5)


def test_every_window_counts_and_pooling_follows_its_mode():
    """Max pooling reads the window where the evidence is; a change to any window of a document
    changes its logits under mean pooling, and never another document's."""
    net, docs = model("mean", "mean"), documents(1, n=3)
    before = logits(net, docs)
    changed = [list(map(list, d)) for d in docs]
    changed[2][-1][1] = 7 if changed[2][-1][1] != 7 else 8  # the last window of the last document
    after = logits(net, changed)
    torch.testing.assert_close(after[:2], before[:2], atol=1e-6, rtol=0)
    assert not torch.allclose(after[2], before[2])


def test_an_ensemble_passes_the_windows_to_every_member():
    members = [model("mean", "max", seed=0), model("mean", "attention", seed=1)]
    docs = documents(2)
    ensemble = SeedEnsemble(members).eval()
    assert logits(ensemble, docs).shape == (len(docs), 3)


def test_a_truncating_model_refuses_windows():
    encoder = encoder_from_config(scratch_config("scratch-tiny", vocab_size=100, max_length=16))
    net = MultiLabelModel(encoder, 3, ModelConfig(pooling="mean")).eval()
    with pytest.raises(ValueError, match="reads truncated texts"):
        logits(net, documents(3))
