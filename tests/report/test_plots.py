"""The figures: small multiples that keep their size for any number of labels, inline SVG that is
safe to put several times on one page, and the training curves as a run's PNG."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from multihot.core.errors import MultihotError
from multihot.report import plots

pytest.importorskip("matplotlib")

HISTORY = [
    {
        "step": 10 * k,
        "epoch": float(k),
        "train_loss": 1 / k,
        "val_loss": 1.1 / k,
        "macro_f1": 0.2 * k,
        "seconds": 2.0 * k,
    }
    for k in (1, 2, 3)
]


def arrays(n=120, labels=3, seed=0):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, labels)) < 0.3).astype(int)
    probs = np.clip(0.5 * targets + 0.6 * rng.random((n, labels)), 0, 1)
    return [f"l{j}" for j in range(labels)], targets, probs, np.full(labels, 0.5)


@pytest.mark.parametrize("labels, figures", [(3, 1), (16, 1), (17, 2), (33, 3)])
def test_small_multiples_hold_sixteen_labels_a_figure(labels, figures):
    names, targets, probs, thresholds = arrays(labels=labels)
    for draw in (plots.pr_curves, plots.f1_curves):
        svgs = draw(names, targets, probs, thresholds)
        assert len(svgs) == figures
        drawn = [name for svg in svgs for name in re.findall(r"<text[^>]*>(l\d+)</text>", svg)]
        assert sorted(set(drawn), key=lambda n: int(n[1:])) == names  # each label's title


def test_inline_svgs_carry_no_prolog_namespaces_or_shared_ids():
    names, targets, probs, thresholds = arrays(labels=20)
    svgs = [
        *plots.pr_curves(names, targets, probs, thresholds),
        *plots.f1_curves(names, targets, probs, thresholds),
        plots.reliability_diagram(targets, probs),
        plots.support_vs_f1(names, targets.sum(axis=0), np.full(20, 0.5)),
        plots.training_curves(HISTORY),
    ]
    ids = []
    for svg in svgs:
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "<?xml" not in svg and "DOCTYPE" not in svg and "<metadata" not in svg
        assert "http" not in svg  # neither namespaces nor matplotlib's credit
        own = re.findall(r'\sid="([^"]+)"', svg)
        # every id left is referred to from the same figure (markers, clip paths)
        assert all(f"#{name}" in svg for name in own)
        ids += own
    assert ids and len(ids) == len(set(ids))


def test_the_reliability_diagram_shows_one_or_two_series():
    _, targets, probs, _ = arrays()
    one = plots.reliability_diagram(targets, probs)
    two = plots.reliability_diagram(targets, probs, uncalibrated_probs=probs**2)
    assert "before calibration" not in one and "before calibration" in two


def test_heatmaps_are_png_images_that_grow_with_the_labels():
    sizes = []
    for labels in (5, 60):
        names, targets, probs, thresholds = arrays(labels=labels)
        for img in (
            plots.cooccurrence_heatmap(names, targets),
            plots.false_fire_heatmap(names, targets, probs >= thresholds),
        ):
            assert img.startswith('<img src="data:image/png;base64,')
        sizes.append(len(img))
    assert sizes[0] < sizes[1] < 400_000


@pytest.mark.parametrize(
    "history",
    [
        [],
        [{"step": 0, "epoch": 1.0, "macro_f1": 0.4, "seconds": 0.5}],  # the linear baseline
        HISTORY,
        [{**r, "member": m} for m in range(3) for r in HISTORY],  # a seed ensemble
    ],
    ids=["empty", "baseline", "three", "ensemble"],
)
def test_save_training_curves_writes_a_png_for_any_history(tmp_path, history):
    path = plots.save_training_curves(history, tmp_path / "training-curves.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["training-curves.png"]  # no temporary left
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (960, 384)  # 8 x 3.2 inches at 120 dpi


def test_training_curves_of_an_empty_history_are_none():
    assert plots.training_curves([]) is None


def test_without_matplotlib_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MultihotError, match=r"pip install 'multihot\[report\]'"):
        plots.save_training_curves(HISTORY, tmp_path / "curves.png")
    assert not list(tmp_path.iterdir())
