"""``--format hf`` for every family whose classification head multihot reproduces exactly.

Each exportable family is trained with the settings that are its ``...ForSequenceClassification``
head (tiny random-weight checkpoints of :mod:`family_models`, one epoch, fp32), exported, reloaded
with ``AutoModelForSequenceClassification`` and compared with multihot's own logits. A run whose
pooling or head is not its family's head is refused with one line, before anything is written.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from family_models import tiny_family
from helpers import TOY_TEXTS, assert_clean_error, copy_run, invoke
from multihot import Classifier
from multihot.core.config import ModelConfig
from multihot.core.errors import ExportError
from multihot.export import hf as hf_export
from multihot.scoring.calibration import calibrated

HIDDEN = 32  # family_models' hidden size

EXPORTABLE = {
    # family: (train settings that are its head, the transformers class)
    "albert": ({"pooling": "pooler", "head": "linear"}, "AlbertForSequenceClassification"),
    "roberta": (
        {"pooling": "cls", "head": "mlp", "head_activation": "tanh"},
        "RobertaForSequenceClassification",
    ),
    "xlm-roberta": (
        {"pooling": "cls", "head": "mlp", "head_activation": "tanh"},
        "XLMRobertaForSequenceClassification",
    ),
    "mpnet": (
        {"pooling": "cls", "head": "mlp", "head_activation": "tanh"},
        "MPNetForSequenceClassification",
    ),
    "electra": (
        {"pooling": "cls", "head": "mlp", "head_activation": "gelu"},
        "ElectraForSequenceClassification",
    ),
    "distilbert": (
        {"pooling": "cls", "head": "mlp", "head_activation": "relu"},
        "DistilBertForSequenceClassification",
    ),
    "deberta-v2": (
        {"pooling": "cls", "head": "mlp", "head_activation": "relu"},
        "DebertaV2ForSequenceClassification",
    ),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


def _train(checkpoints, toy_file, family: str, out, **settings) -> Classifier:
    if settings.get("head") == "mlp":
        settings.setdefault("head_hidden", HIDDEN)
    return Classifier.train(
        toy_file,
        toy_file,
        output=out,
        encoder=str(tiny_family(family, checkpoints)),
        epochs=1,
        lr=2e-3,
        batch_size=4,
        max_length=32,
        precision="fp32",
        seed=0,
        **settings,
    )


@pytest.fixture(scope="module")
def family_runs(checkpoints, toy_file, tmp_path_factory):
    """Runs trained on demand, one per family, with the settings that are its head."""
    runs: dict[str, tuple[Classifier, object]] = {}

    def get(family: str):
        if family not in runs:
            out = tmp_path_factory.mktemp("runs") / family
            runs[family] = (
                _train(checkpoints, toy_file, family, out, **EXPORTABLE[family][0]),
                out,
            )
        return runs[family]

    return get


def _hf_outputs(path, texts):
    """``(probabilities, logits, batch)`` of an export, read by transformers alone."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    batch = AutoTokenizer.from_pretrained(path)(
        texts, padding=True, truncation=True, return_tensors="pt"
    )
    batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        logits = model(**batch).logits
    return model, torch.sigmoid(logits).numpy(), logits.numpy(), batch


@pytest.mark.parametrize("family", list(EXPORTABLE))
def test_hf_export_of_each_family_reloads_with_the_run_logits(family, family_runs, tmp_path):
    import torch

    clf, run = family_runs(family)
    out = tmp_path / "hf"
    result = invoke("export", run, "--format", "hf", "-o", out)
    assert result.exit_code == 0, result.output
    assert "hf vs torch fp32" in result.stdout

    model, probs, logits, batch = _hf_outputs(out, TOY_TEXTS)
    assert type(model).__name__ == EXPORTABLE[family][1]
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.id2label == dict(enumerate(clf.label_names))
    with torch.no_grad():
        ours = clf.model.to("cpu").float().eval()(batch["input_ids"], batch["attention_mask"])
    # A run is calibrated by default, and the export folds the calibration into its logits.
    np.testing.assert_allclose(logits, calibrated(ours.numpy(), clf.calibration), atol=1e-5)
    np.testing.assert_allclose(probs, clf.predict_proba(TOY_TEXTS, precision="fp32"), atol=1e-5)


def test_hf_export_of_a_calibrated_roberta_gives_calibrated_probabilities(
    family_runs, toy_file, tmp_path
):
    run = copy_run(family_runs("roberta")[1], tmp_path / "roberta")
    clf = Classifier.load(run)
    clf.calibrate(toy_file, force=True)
    clf.save_calibration(run)
    out = tmp_path / "hf"
    assert invoke("export", run, "--format", "hf", "-o", out).exit_code == 0
    _, probs, _, _ = _hf_outputs(out, TOY_TEXTS)
    np.testing.assert_allclose(probs, clf.predict_proba(TOY_TEXTS, precision="fp32"), atol=1e-5)
    uncalibrated = family_runs("roberta")[0].predict_proba(TOY_TEXTS, precision="fp32")
    assert not np.allclose(probs, uncalibrated)


# ------------------------------------------------------------------------------------- refusals
def test_roberta_with_mean_pooling_is_refused_and_nothing_written(checkpoints, toy_file, tmp_path):
    run = tmp_path / "mean"
    _train(checkpoints, toy_file, "roberta", run, pooling="mean", head="linear")
    out = tmp_path / "hf"
    result = invoke("export", run, "--format", "hf", "-o", out)
    assert_clean_error(
        result,
        "RobertaForSequenceClassification",
        "pooling 'mean'",
        "--pooling cls --head mlp --head-hidden 32 --head-activation tanh",
        "--format onnx",
    )
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mean"]


def test_modernbert_has_no_hf_export(checkpoints, toy_file, tmp_path):
    run = tmp_path / "modernbert"
    _train(checkpoints, toy_file, "modernbert", run, pooling="cls", head="mlp")
    result = invoke("export", run, "--format", "hf", "-o", tmp_path / "hf")
    assert_clean_error(result, "'modernbert'", "no multihot pooling and head", "--format onnx")
    assert not (tmp_path / "hf").exists()


def _fake_run(model_type: str, **settings):
    """What the shape check reads of a run: its model config, encoder type and hidden size."""
    config = SimpleNamespace(model=ModelConfig(**settings))
    encoder = SimpleNamespace(config=SimpleNamespace(hidden_size=HIDDEN))
    return SimpleNamespace(
        config=config,
        encoder_config={"model_type": model_type},
        model=SimpleNamespace(encoder=encoder),
    )


@pytest.mark.parametrize(
    ("model_type", "settings", "wanted"),
    [
        ("roberta", {"pooling": "cls", "head": "mlp", "head_activation": "gelu"}, "'tanh'"),
        ("roberta", {"pooling": "cls", "head": "mlp", "head_activation": "tanh"}, "head_hidden 32"),
        ("roberta", {"pooling": "pooler", "head": "linear"}, "pooling 'cls'"),
        ("xlm-roberta", {"pooling": "cls", "head": "linear"}, "head 'mlp'"),
        ("albert", {"pooling": "cls", "head": "linear"}, "pooling 'pooler'"),
        ("albert", {"pooling": "pooler", "head": "mlp", "head_hidden": HIDDEN}, "head 'linear'"),
        ("electra", {"pooling": "cls", "head": "mlp", "head_activation": "tanh"}, "'gelu'"),
        ("distilbert", {"pooling": "cls", "head": "mlp", "head_activation": "gelu"}, "'relu'"),
        ("deberta-v2", {"pooling": "mean", "head": "mlp", "head_hidden": HIDDEN}, "pooling 'cls'"),
        ("bert", {"pooling": "pooler", "head": "linear", "ensemble": 2}, "single model"),
    ],
)
def test_settings_that_are_not_the_family_head_are_refused(model_type, settings, wanted):
    with pytest.raises(ExportError, match="--format onnx") as err:
        hf_export._check_shape(_fake_run(model_type, **settings), "run")
    message = str(err.value)
    assert "\n" not in message and wanted in message, message


@pytest.mark.parametrize(
    ("model_type", "settings"),
    [
        ("bert", {"pooling": "pooler", "head": "linear"}),
        ("albert", {"pooling": "pooler", "head": "linear"}),
        ("roberta", {"pooling": "cls", "head": "mlp", "head_activation": "tanh"}),
        ("deberta-v2", {"pooling": "cls", "head": "mlp", "head_activation": "gelu"}),
    ],
)
def test_settings_that_are_the_family_head_pass_the_check(model_type, settings):
    spec = hf_export._check_shape(_fake_run(model_type, head_hidden=HIDDEN, **settings), "run")
    assert spec is hf_export.HF_HEADS[model_type]


def test_tanh_is_a_head_activation():
    import torch

    from multihot.modeling.heads import build_head

    head = build_head("mlp", HIDDEN, 3, HIDDEN, 0.0, "tanh").eval()
    pooled = torch.randn(2, HIDDEN)
    expected = torch.tanh(head.hidden(pooled)) @ head.out.weight.T + head.out.bias
    torch.testing.assert_close(head(pooled), expected)
