"""Layer-wise learning-rate decay and frozen embeddings, per encoder family: each parameter's depth
read from the encoder's modules (issue 31, finding 2)."""

from __future__ import annotations

import logging
from itertools import pairwise

import pytest
import torch
from torch import nn

from family_models import FAMILIES, HIDDEN, INTERMEDIATE, LAYERS, POSITIONS
from multihot.core.config import ModelConfig, TrainConfig
from multihot.modeling.layer_groups import encoder_layout
from multihot.modeling.masking import MaskedLMTraining
from multihot.modeling.model import MultiLabelModel
from multihot.training.optim import freeze_embeddings, param_groups

LR, DECAY = 1e-3, 0.8
CONFIG = TrainConfig(lr=LR, head_lr=5e-3, layer_lr_decay=DECAY, weight_decay=0.01)

BLOCKS = {
    "bert": "encoder.layer",
    "roberta": "encoder.layer",
    "xlm-roberta": "encoder.layer",
    "electra": "encoder.layer",
    "deberta-v2": "encoder.layer",
    "mpnet": "encoder.layer",
    "distilbert": "transformer.layer",
    "modernbert": "layers",
}
"""Where each family keeps its blocks, one per layer (ALBERT's shared group is tested apart)."""

EMBEDDING_STAGE = {
    "electra": ("embeddings_project.",),  # maps the embeddings to the hidden size
    "albert": ("encoder.embedding_hidden_mapping_in.",),  # the same, inside ALBERT's encoder
    "modernbert": (),
}
"""Besides ``embeddings.*``: what is frozen with the embeddings and trains at their rate."""

SHARED = {
    "deberta-v2": ("encoder.rel_embeddings.", "encoder.LayerNorm."),
    "mpnet": ("encoder.relative_attention_bias.",),
}
"""Relative-position tables beside the blocks, read by every block."""


def family_encoder(name: str, **changes) -> nn.Module:
    """A random-weight encoder of family ``name`` (tests/family_models.py's config, no files)."""
    from transformers import AutoConfig, AutoModel

    family = FAMILIES[name]
    settings = {
        "vocab_size": 100,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 2,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": POSITIONS,
        **family.config,
        **changes,
    }
    if name == "distilbert":  # DistilBERT names its sizes apart
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            settings.pop(key)
    torch.manual_seed(0)
    return AutoModel.from_config(AutoConfig.for_model(family.model_type, **settings))


def family_model(name: str, **changes) -> MultiLabelModel:
    return MultiLabelModel(family_encoder(name, **changes), 3, ModelConfig(pooling="mean"))


def rates(model: nn.Module, groups) -> dict[str, float]:
    """``{parameter name: learning rate}`` over the groups; each parameter in exactly one."""
    names = {id(p): n for n, p in model.named_parameters()}
    found = [(names[id(p)], g["lr"]) for g in groups for p in g["params"]]
    assert len(found) == len(dict(found)), "a parameter in two groups"
    return dict(found)


def frozen(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def encoder_rate(depth: int, layers: int = LAYERS) -> float:
    return LR * DECAY ** (layers - min(depth, layers))


# ------------------------------------------------------------------------------ every family
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_encoder_parameter_is_in_one_group_at_a_rate_that_rises_with_depth(family):
    model = family_model(family)
    groups = param_groups(model, CONFIG)
    lr = rates(model, groups)
    assert set(lr) == {n for n, _ in model.named_parameters()}
    encoder_groups = sorted((g["depth"], g["lr"]) for g in groups if g["encoder"])
    assert [d for d, _ in encoder_groups] == sorted(d for d, _ in encoder_groups)
    for (depth, rate), (higher, higher_rate) in pairwise(encoder_groups):
        assert rate == pytest.approx(encoder_rate(depth))
        assert higher == depth or higher_rate > rate
    layout = encoder_layout(model.encoder)
    assert not layout.from_names
    assert layout.num_layers == LAYERS
    assert set(layout.depths) == {n for n, _ in model.encoder.named_parameters()}


@pytest.mark.parametrize("family", sorted(BLOCKS))
def test_block_i_is_at_depth_i_plus_one(family):
    layout = encoder_layout(family_encoder(family))
    blocks = BLOCKS[family]
    in_blocks = {n: d for n, d in layout.depths.items() if n.startswith(blocks + ".")}
    assert in_blocks
    for name, depth in in_blocks.items():
        assert depth == int(name[len(blocks) + 1 :].split(".")[0]) + 1, name
    assert not layout.shared & set(in_blocks)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_embedding_stage_is_depth_0_and_is_what_freeze_embeddings_freezes(family):
    model = family_model(family)
    stage = ("embeddings.", *EMBEDDING_STAGE.get(family, ()))
    expected = {n for n, _ in model.encoder.named_parameters() if n.startswith(stage)}
    layout = encoder_layout(model.encoder)
    assert layout.embeddings == expected
    assert {n for n, d in layout.depths.items() if d == 0} == expected
    assert freeze_embeddings(model) == len(expected)
    assert frozen(model) == {f"encoder.{n}" for n in expected}
    # The frozen tensors are left out of the groups; the rest still are in one each.
    lr = rates(model, param_groups(model, CONFIG))
    assert set(lr) == {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", sorted(SHARED))
def test_relative_position_tables_train_at_the_middle_blocks_rate_and_are_not_frozen(family):
    model = family_model(family)
    shared = {n for n, _ in model.encoder.named_parameters() if n.startswith(SHARED[family])}
    layout = encoder_layout(model.encoder)
    assert shared and layout.shared == shared
    assert {layout.depths[n] for n in shared} == {1}  # the lower middle of blocks 1 and 2
    freeze_embeddings(model)
    assert not frozen(model) & {f"encoder.{n}" for n in shared}


# ----------------------------------------------------------------- issue 31's four findings
# Each test below failed with the name patterns that placed parameters before (the assertion
# marked "was:" says what they gave).
def test_albert_shares_one_rate_for_its_shared_layers_below_the_top():
    model = family_model("albert")
    lr = rates(model, param_groups(model, CONFIG))
    shared = [n for n in lr if n.startswith("encoder.encoder.albert_layer_groups.0.")]
    assert len(shared) == 16
    # One group of layers runs at both depths: it trains at the lower middle's rate, block 1's.
    assert [lr[n] for n in shared] == [pytest.approx(encoder_rate(1))] * 16  # was: the top rate
    mapping = "encoder.encoder.embedding_hidden_mapping_in.weight"
    assert lr[mapping] == lr["encoder.embeddings.word_embeddings.weight"]  # was: the top rate
    assert lr["encoder.pooler.weight"] == pytest.approx(LR)
    freeze_embeddings(model)
    assert mapping in frozen(model)  # was: left training


def test_albert_with_several_layer_groups_gives_each_group_the_middle_of_its_layers():
    layout = encoder_layout(family_encoder("albert", num_hidden_layers=4, num_hidden_groups=2))
    depths = {n.split(".")[2]: d for n, d in layout.depths.items() if "albert_layer_groups" in n}
    assert depths == {"0": 1, "1": 3}  # group 0 runs as blocks 1-2, group 1 as blocks 3-4
    one_each = encoder_layout(family_encoder("albert", num_hidden_groups=2))
    assert not one_each.shared
    assert {d for n, d in one_each.depths.items() if ".albert_layers." in n} == {1, 2}


def test_deberta_relative_embeddings_are_not_input_embeddings():
    model = family_model("deberta-v2")
    lr = rates(model, param_groups(model, CONFIG))
    table, norm = "encoder.encoder.rel_embeddings.weight", "encoder.encoder.LayerNorm.weight"
    assert lr[table] > lr["encoder.embeddings.word_embeddings.weight"]  # was: the same, lowest
    assert lr[table] == lr[norm] == pytest.approx(encoder_rate(1))  # was: lowest and top
    freeze_embeddings(model)
    assert table not in frozen(model)  # was: frozen


def test_deberta_v1_relative_embeddings_are_not_input_embeddings():
    from transformers import DebertaConfig, DebertaModel

    torch.manual_seed(0)
    encoder = DebertaModel(
        DebertaConfig(
            vocab_size=100,
            hidden_size=HIDDEN,
            num_hidden_layers=LAYERS,
            num_attention_heads=2,
            intermediate_size=INTERMEDIATE,
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
        )
    )
    layout = encoder_layout(encoder)
    assert "encoder.rel_embeddings.weight" not in layout.embeddings
    assert layout.depths["encoder.rel_embeddings.weight"] == 1


def test_electra_embedding_projection_goes_with_the_embeddings():
    model = family_model("electra")
    lr = rates(model, param_groups(model, CONFIG))
    projection = "encoder.embeddings_project.weight"
    assert lr[projection] == lr["encoder.embeddings.word_embeddings.weight"]  # was: the top rate
    freeze_embeddings(model)
    assert {projection, "encoder.embeddings_project.bias"} <= frozen(model)  # was: training


def test_mpnet_relative_attention_bias_is_not_at_the_top_rate():
    model = family_model("mpnet")
    lr = rates(model, param_groups(model, CONFIG))
    bias = "encoder.encoder.relative_attention_bias.weight"
    assert lr[bias] == pytest.approx(encoder_rate(1))  # was: the top rate, LR
    assert lr[bias] < lr["encoder.encoder.layer.1.output.dense.weight"]


# ------------------------------------------------------------------------------ BERT unchanged
# param_groups of a 2-layer BERT as the name patterns made them before the change (captured from
# that code): (lr, weight_decay, encoder, depth, parameter names). E = encoder.embeddings.,
# L = encoder.encoder.layer.
BERT_DECAY = [
    (0.005, 0.01, False, -1, "pooling.queries head.out.weight"),
    (0.005, 0.0, False, -1, "head.out.bias"),
    (
        0.0006400000000000002,
        0.01,
        True,
        0,
        "Eword_embeddings.weight Eposition_embeddings.weight Etoken_type_embeddings.weight",
    ),
    (0.0006400000000000002, 0.0, True, 0, "ELayerNorm.weight ELayerNorm.bias"),
    (
        0.0008,
        0.01,
        True,
        1,
        "L0.attention.self.query.weight L0.attention.self.key.weight"
        " L0.attention.self.value.weight L0.attention.output.dense.weight"
        " L0.intermediate.dense.weight L0.output.dense.weight",
    ),
    (
        0.0008,
        0.0,
        True,
        1,
        "L0.attention.self.query.bias L0.attention.self.key.bias L0.attention.self.value.bias"
        " L0.attention.output.dense.bias L0.attention.output.LayerNorm.weight"
        " L0.attention.output.LayerNorm.bias L0.intermediate.dense.bias L0.output.dense.bias"
        " L0.output.LayerNorm.weight L0.output.LayerNorm.bias",
    ),
    (
        0.001,
        0.01,
        True,
        2,
        "L1.attention.self.query.weight L1.attention.self.key.weight"
        " L1.attention.self.value.weight L1.attention.output.dense.weight"
        " L1.intermediate.dense.weight L1.output.dense.weight encoder.pooler.dense.weight",
    ),
    (
        0.001,
        0.0,
        True,
        2,
        "L1.attention.self.query.bias L1.attention.self.key.bias L1.attention.self.value.bias"
        " L1.attention.output.dense.bias L1.attention.output.LayerNorm.weight"
        " L1.attention.output.LayerNorm.bias L1.intermediate.dense.bias L1.output.dense.bias"
        " L1.output.LayerNorm.weight L1.output.LayerNorm.bias encoder.pooler.dense.bias",
    ),
]
BERT_FLAT = [
    (0.0002, 0.01, False, -1, "pooling.queries head.out.weight"),
    (0.0002, 0.0, False, -1, "head.out.bias"),
    (
        0.0002,
        0.01,
        True,
        2,
        "Eword_embeddings.weight Eposition_embeddings.weight Etoken_type_embeddings.weight"
        " L0.attention.self.query.weight L0.attention.self.key.weight"
        " L0.attention.self.value.weight L0.attention.output.dense.weight"
        " L0.intermediate.dense.weight L0.output.dense.weight L1.attention.self.query.weight"
        " L1.attention.self.key.weight L1.attention.self.value.weight"
        " L1.attention.output.dense.weight L1.intermediate.dense.weight L1.output.dense.weight"
        " encoder.pooler.dense.weight",
    ),
    (
        0.0002,
        0.0,
        True,
        2,
        "ELayerNorm.weight ELayerNorm.bias L0.attention.self.query.bias L0.attention.self.key.bias"
        " L0.attention.self.value.bias L0.attention.output.dense.bias"
        " L0.attention.output.LayerNorm.weight L0.attention.output.LayerNorm.bias"
        " L0.intermediate.dense.bias L0.output.dense.bias L0.output.LayerNorm.weight"
        " L0.output.LayerNorm.bias L1.attention.self.query.bias L1.attention.self.key.bias"
        " L1.attention.self.value.bias L1.attention.output.dense.bias"
        " L1.attention.output.LayerNorm.weight L1.attention.output.LayerNorm.bias"
        " L1.intermediate.dense.bias L1.output.dense.bias L1.output.LayerNorm.weight"
        " L1.output.LayerNorm.bias encoder.pooler.dense.bias",
    ),
]
BERT_EMBEDDINGS = [
    "Eword_embeddings.weight",
    "Eposition_embeddings.weight",
    "Etoken_type_embeddings.weight",
    "ELayerNorm.weight",
    "ELayerNorm.bias",
]


def tiny_bert() -> MultiLabelModel:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    encoder = BertModel(
        BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    )
    return MultiLabelModel(encoder, 3, ModelConfig(pooling="label-attention"))


def expand(names: list[str], prefix: str = "") -> list[str]:
    short = {"E": "encoder.embeddings.", "L": "encoder.encoder.layer."}
    return [prefix + (short[n[0]] + n[1:] if n[0] in short else n) for n in names]


def as_captured(model: nn.Module, groups) -> list[tuple]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [
        (g["lr"], g["weight_decay"], g["encoder"], g["depth"], [names[id(p)] for p in g["params"]])
        for g in groups
    ]


def captured(groups: list[tuple], prefix: str = "") -> list[tuple]:
    return [(*group[:4], expand(group[4].split(), prefix)) for group in groups]


def test_bert_groups_are_the_same_groups_in_the_same_order_at_the_same_rates_as_before():
    model = tiny_bert()
    assert as_captured(model, param_groups(model, CONFIG)) == captured(BERT_DECAY)
    model = tiny_bert()
    assert as_captured(model, param_groups(model, TrainConfig(lr=2e-4))) == captured(BERT_FLAT)
    # Frozen embeddings: the same five tensors, and the groups without them.
    model = tiny_bert()
    assert freeze_embeddings(model) == 5
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == expand(
        BERT_EMBEDDINGS
    )
    without = [g for g in captured(BERT_DECAY) if g[3] != 0]
    assert as_captured(model, param_groups(model, CONFIG)) == without
    # Inside the MLM training wrapper the encoder's groups are the same, under "model.".
    wrapped = MaskedLMTraining(tiny_bert())
    encoder_groups = [g for g in as_captured(wrapped, param_groups(wrapped, CONFIG)) if g[2]]
    assert encoder_groups == [g for g in captured(BERT_DECAY, "model.") if g[2]]


# ---------------------------------------------------------------------------- the log, the rest
def test_the_groups_made_are_logged_once_with_their_rates(caplog):
    model = family_model("albert")
    with caplog.at_level(logging.INFO, logger="multihot"):
        groups = param_groups(model, CONFIG)
    made = [r.getMessage() for r in caplog.records if "parameter groups" in r.getMessage()]
    assert made == [
        f"{len(groups)} parameter groups, lr 6.4e-4 .. 5e-3 (layer_lr_decay 0.8 over 2 blocks)"
    ]
    assert "16 encoder tensors are used by several blocks" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="multihot"):
        param_groups(family_model("bert"), TrainConfig(lr=1e-4, head_lr=1e-3))
    assert "4 parameter groups, lr 1e-4 .. 1e-3" in caplog.text
    assert "several blocks" not in caplog.text


def test_an_encoder_of_unknown_structure_falls_back_to_the_parameter_names():
    class Unknown(nn.Module):  # no get_input_embeddings
        def __init__(self):
            super().__init__()
            self.embeddings = nn.ModuleDict({"tokens": nn.Embedding(10, 4)})
            self.layer = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
            self.norm = nn.LayerNorm(4)

    layout = encoder_layout(Unknown())
    assert layout.from_names
    assert layout.depths == {
        "embeddings.tokens.weight": 0,
        "layer.0.weight": 1,
        "layer.0.bias": 1,
        "layer.1.weight": 2,
        "layer.1.bias": 2,
        "layer.2.weight": 3,
        "layer.2.bias": 3,
        "norm.weight": 4,
        "norm.bias": 4,
    }
    assert layout.embeddings == {"embeddings.tokens.weight"}
