"""The family matrix (issue 31): a tiny random-weight checkpoint of each of nine encoder families
(:mod:`family_models`) is loaded as ``encoder=DIR``, trained for one epoch, saved and reloaded,
grouped for the optimiser, and exported to ONNX with its parity check.

Each family's checkpoint is built once per session and trained once per module (the training test
and the export test share the run).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from family_models import FAMILIES, LAYERS, tiny_family
from helpers import TOY_LABELS, TOY_TEXTS
from multihot import Classifier

NAMES = list(FAMILIES)
NUM_LABELS = len({label for labels in TOY_LABELS for label in labels})
SETTINGS = {
    "epochs": 1,
    "batch_size": 4,
    "max_length": 32,
    "precision": "fp32",
    "seed": 0,
    "compare_baseline": False,
}
"""One epoch of two steps on the toy texts, default pooling: enough to exercise every path."""


@pytest.fixture(scope="session")
def family_root(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trained runs by family, filled by :func:`_trained` on first use."""
    return {"root": tmp_path_factory.mktemp("family-runs")}


def _trained(name: str, family_root, runs, toy_file):
    """``(classifier, run directory)`` of family ``name`` trained with :data:`SETTINGS`."""
    if name not in runs:
        out = runs["root"] / name
        clf = Classifier.train(
            toy_file, toy_file, encoder=str(tiny_family(name, family_root)), output=out, **SETTINGS
        )
        runs[name] = (clf, out)
    return runs[name]


# ------------------------------------------------------------------------------------------ load
@pytest.mark.parametrize("name", NAMES)
def test_loads_as_an_encoder_and_its_tokenizer_round_trips(name, family_root):
    from multihot.modeling.encoders import build_encoder, encoder_from_config, load_pretrained

    path = str(tiny_family(name, family_root))
    encoder, tokenizer = load_pretrained(path)
    assert encoder.config.model_type == FAMILIES[name].model_type
    assert encoder.config.hidden_size == 32

    text = "what a great day"
    ids = tokenizer(text)["input_ids"]
    first, last = tokenizer.convert_ids_to_tokens([ids[0], ids[-1]])
    assert (first, last) == (tokenizer.cls_token, tokenizer.sep_token)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == text

    # What a run saves (the config dict) rebuilds the same architecture, as Classifier.load does.
    _, _, config = build_encoder(path, TOY_TEXTS, vocab_size=100, max_length=32, dropout=0.1)
    rebuilt = encoder_from_config(config)
    shapes = {n: p.shape for n, p in encoder.named_parameters()}
    assert {n: p.shape for n, p in rebuilt.named_parameters()} == shapes


# ----------------------------------------------------------------------------------------- train
@pytest.mark.parametrize("name", NAMES)
def test_trains_predicts_saves_and_loads(name, family_root, runs, toy_file):
    clf, run = _trained(name, family_root, runs, toy_file)
    assert clf.config.model.encoder == str(tiny_family(name, family_root))
    probs = clf.predict_proba(TOY_TEXTS)
    assert probs.shape == (len(TOY_TEXTS), NUM_LABELS)
    assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()
    assert len(clf.predict(TOY_TEXTS)) == len(TOY_TEXTS)

    loaded = Classifier.load(run)
    np.testing.assert_allclose(loaded.predict_proba(TOY_TEXTS), probs, atol=1e-6)
    assert loaded.predict(TOY_TEXTS) == clf.predict(TOY_TEXTS)


# ---------------------------------------------------------------------------------- layer groups
_BLOCK = re.compile(r"^(?:encoder\.layer|transformer\.layer|layers)\.(\d+)\.")
EMBEDDING_STAGE = ("embeddings.", "embeddings_project.", "encoder.embedding_hidden_mapping_in.")
"""Run once, below the first block: the embeddings and the projection of ELECTRA's and ALBERT's
narrower embeddings up to the hidden size."""
SHARED = (
    "encoder.rel_embeddings.",
    "encoder.LayerNorm.",
    "encoder.relative_attention_bias.",
    "encoder.albert_layer_groups.",
)
"""Tensors every block reads: DeBERTa-v2's relative embeddings with the norm applied to them,
MPNet's relative attention bias, and ALBERT's one block, applied at every depth. Their update is the sum of what each block wants, so they train at the middle
block's rate (the lower middle for an even count): never frozen with the embeddings, never at the
top rate alone."""
MIDDLE = (LAYERS + 1) // 2


def expected_depth(name: str) -> int:
    """Where an encoder parameter (``name`` without the ``encoder.`` prefix of the model) belongs:
    0 for the embedding stage, ``i + 1`` for block ``i``, :data:`MIDDLE` for tensors every block
    reads, the top block's depth for what comes after the last block (a pooler, a final norm)."""
    if name.startswith(EMBEDDING_STAGE):
        return 0
    if found := _BLOCK.match(name):
        return int(found.group(1)) + 1
    if name.startswith(SHARED):
        return MIDDLE
    return LAYERS


def _model(name: str, family_root):
    from multihot.core.config import ModelConfig
    from multihot.modeling.encoders import load_pretrained
    from multihot.modeling.model import MultiLabelModel

    encoder, _ = load_pretrained(str(tiny_family(name, family_root)))
    return MultiLabelModel(encoder, NUM_LABELS, ModelConfig(pooling="mean"))


@pytest.mark.parametrize("name", NAMES)
def test_layer_groups_hold_every_parameter_once_at_its_depth(name, family_root):
    from multihot.core.config import TrainConfig
    from multihot.training.optim import param_groups

    model = _model(name, family_root)
    groups = param_groups(model, TrainConfig(lr=1e-4, head_lr=1e-3, layer_lr_decay=0.5))

    placed: dict[int, list[dict]] = {}
    for group in groups:
        for param in group["params"]:
            placed.setdefault(id(param), []).append(group)
    named = dict(model.named_parameters())
    missing = [n for n, p in named.items() if id(p) not in placed]
    twice = [n for n, p in named.items() if len(placed.get(id(p), [])) > 1]
    assert not missing and not twice, f"missing {missing}, in two groups {twice}"

    encoder = [g for g in groups if g["encoder"]]
    rates = sorted((g["depth"], g["lr"]) for g in encoder)
    assert [lr for _, lr in rates] == sorted(lr for _, lr in rates), f"not monotone: {rates}"
    assert all(lr < 1e-3 for _, lr in rates)  # the head's rate is above every encoder rate

    misplaced = {}
    for full, param in named.items():
        if not full.startswith("encoder."):
            assert placed[id(param)][0]["encoder"] is False, full
            continue
        name_ = full.removeprefix("encoder.")
        got, want = placed[id(param)][0]["depth"], expected_depth(name_)
        if got != want:
            misplaced[name_] = (got, want)
    assert not misplaced, f"(depth, expected) of {len(misplaced)} tensors: {misplaced}"


@pytest.mark.parametrize("name", NAMES)
def test_freeze_embeddings_freezes_the_embedding_stage_only(name, family_root):
    from multihot.training.optim import freeze_embeddings

    model = _model(name, family_root)
    freeze_embeddings(model)
    frozen = {
        n.removeprefix("encoder.") for n, p in model.named_parameters() if not p.requires_grad
    }
    stage = {
        n.removeprefix("encoder.")
        for n, _ in model.named_parameters()
        if n.startswith("encoder.") and expected_depth(n.removeprefix("encoder.")) == 0
    }
    assert frozen == stage, f"frozen but not embeddings {frozen - stage}, left {stage - frozen}"


# ------------------------------------------------------------------------------------------ ONNX
@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_matches_torch(name, family_root, runs, toy_file, tmp_path):
    from multihot.export import onnx as onnx_export
    from multihot.export.parity import FP32_TOLERANCE

    _, run = _trained(name, family_root, runs, toy_file)
    result = onnx_export.export_onnx(run, tmp_path / "model.onnx")
    assert result.path.is_file() and result.parity.ok
    assert result.parity.max_abs_diff <= FP32_TOLERANCE
    assert result.parity.decision_agreement == 1.0
