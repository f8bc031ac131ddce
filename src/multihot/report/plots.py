"""The report's figures, drawn with matplotlib (the ``report`` extra) and returned as HTML.

Every public function returns one HTML fragment that draws its figure with nothing fetched: line
and scatter plots as inline ``<svg>`` (small, sharp, text kept as text), heatmaps as an ``<img>``
holding a base64 PNG (a 100 x 100 grid of cells is smaller as pixels). Figures are built on
``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot's global figures, so
drawing a report in a server thread or a test leaves no state behind.

Per-label curves come as small multiples, :data:`PER_FIGURE` labels to a figure, so a run of 28
or of 100 labels gives a few figures of the same readable size.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from multihot.core.errors import MultihotError
from multihot.core.files import temp_file
from multihot.report.curves import scores_at, threshold_grid
from multihot.report.pairs import cooccurrence, false_fires
from multihot.scoring.calibration import ECE_BINS, reliability

PER_FIGURE = 16
"""Labels per figure of small multiples (4 columns of 4)."""
COLUMNS = 4
HEATMAP_MAX_INCHES = 40.0
"""A heatmap grows with the labels up to this side (about 230 labels)."""
NAME_CHARS = 28
"""Label names longer than this are cut in titles and tick labels (the table has them whole)."""

_STYLE = {
    "svg.fonttype": "none",  # text stays <text>: a fraction of the size of glyph paths
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 7,
    "legend.frameon": False,
}


def _matplotlib():
    """The matplotlib module, or a clear error when the ``report`` extra is not installed."""
    try:
        # optional: matplotlib, the report extra (this error says how to install it)
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as error:
        raise MultihotError(
            "the report draws its plots with matplotlib, which is not installed: "
            "pip install 'multihot[report]'"
        ) from error
    return matplotlib


@contextmanager
def _style():
    # rc_context swaps matplotlib's rcParams for the duration; texts read them when created and
    # the SVG writer when saving, so both happen inside it.
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        yield


def _figure(width: float, height: float):
    # optional: matplotlib (here and below; _style or _matplotlib has checked it is installed)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _svg(fig, salt: str) -> str:
    """The figure as an inline ``<svg>`` element for an HTML page.

    ``salt`` seeds the ids matplotlib gives the markers and clip paths a figure refers to, so
    several figures on one page never share an id. The XML prolog, the DOCTYPE, the metadata and
    the namespace declarations go (an inline SVG in HTML needs none of them), as do the ids that
    nothing refers to (``figure_1``, ``axes_1``: the same in every figure).
    """
    import matplotlib  # optional: matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    referenced = {a or b for a, b in re.findall(r'href="#([^"]+)"|url\(#([^)]+)\)', svg)}
    svg = re.sub(r'\s+id="([^"]+)"', lambda m: m[0] if m[1] in referenced else "", svg)
    # A tenth of a point is finer than a screen shows: coordinates to one decimal, and the
    # writer's indentation gone, make a figure of small multiples well under half its size.
    svg = _GEOMETRY.sub(lambda m: m[1] + _DECIMALS.sub(r"\1", m[2]) + '"', svg)
    svg = re.sub(r'\s+transform="rotate\(-?0 [^"]*\)"', "", svg)  # a rotation by 0 degrees
    svg = re.sub(r">\s+<", "><", svg)
    return re.sub(r"\s*\n\s*", " ", svg).strip()


_GEOMETRY = re.compile(r'(\s(?:d|x|y|width|height|transform|viewBox)=")([^"]*)"')
_DECIMALS = re.compile(r"(\d\.\d)\d+")


def _png_bytes(fig, dpi: int, palette: bool = False) -> bytes:
    """The figure as PNG; ``palette``: reduced to 256 colours, a third of the size or less for a
    heatmap of flat cells (Pillow comes with matplotlib)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    if not palette:
        return buffer.getvalue()
    from PIL import Image  # optional: Pillow, which comes with matplotlib

    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _png_img(fig, alt: str, dpi: int) -> str:
    """The figure as an ``<img>`` whose source is a base64 PNG data URI (256 colours)."""
    data = base64.b64encode(_png_bytes(fig, dpi, palette=True)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _short(name: str) -> str:
    """A label name as figure text: cut to :data:`NAME_CHARS`, and its dollar signs escaped so
    that a label named "$x$" is drawn as written, not as mathtext (nor fails as bad mathtext)."""
    name = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "\u2026"
    return name.replace("$", r"\$")


# ------------------------------------------------------------------------------ per label
def _label_grids(
    kind: str,
    label_names: Sequence[str],
    draw: Callable[[Any, int], None],
    xlabel: str,
    ylabel: str,
    per_figure: int,
) -> list[str]:
    """Small multiples: ``draw(ax, j)`` for each label ``j``, ``per_figure`` labels a figure."""
    figures = []
    for start in range(0, len(label_names), per_figure):
        chunk = range(start, min(start + per_figure, len(label_names)))
        columns = min(COLUMNS, len(chunk))
        rows = math.ceil(len(chunk) / columns)
        with _style():
            fig = _figure(2.1 * columns + 0.3, 1.8 * rows + 0.3)
            axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
            for ax, j in zip(axes.flat, chunk, strict=False):
                ax.set_title(_short(label_names[j]))
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1.02)
                ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
                ax.set_yticks([0, 0.5, 1], ["0", "0.5", "1"])
                draw(ax, j)
            for ax in axes.flat[len(chunk) :]:
                ax.set_visible(False)
            fig.supxlabel(xlabel, fontsize=8)
            fig.supylabel(ylabel, fontsize=8)
            figures.append(_svg(fig, f"{kind}-{start}"))
    return figures


def pr_curves(
    label_names: Sequence[str],
    targets: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    per_figure: int = PER_FIGURE,
) -> list[str]:
    """Each label's precision-recall curve, its chosen threshold marked, as small multiples.

    Args:
        label_names: ``n_labels`` names, the columns' order.
        targets: ``(n_texts, n_labels)`` 0/1.
        probs: ``(n_texts, n_labels)``.
        thresholds: ``(n_labels,)``.
        per_figure: labels per figure.

    Returns:
        ``ceil(n_labels / per_figure)`` inline SVGs.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> targets = rng.random((50, 2)) < 0.3
        >>> svgs = pr_curves(["a", "b"], targets, rng.random((50, 2)), np.array([0.5, 0.5]))
        >>> len(svgs), svgs[0].startswith("<svg")
        (1, True)
    """

    def draw(ax, j):
        y, p = targets[:, j], probs[:, j]
        curve = scores_at(y, p, threshold_grid(p))
        drawn = ~np.isnan(curve.precision) & ~np.isnan(curve.recall)
        ax.plot(curve.recall[drawn], curve.precision[drawn], lw=1.2)
        prevalence = float(np.mean(y)) if len(y) else 0.0
        ax.axhline(prevalence, color="0.6", lw=0.8, ls="--")
        chosen = scores_at(y, p, np.array([thresholds[j]]))
        if not np.isnan(chosen.precision[0]) and not np.isnan(chosen.recall[0]):
            ax.plot(chosen.recall, chosen.precision, "o", color="C3", ms=4)
        ax.text(0.03, 0.04, f"t = {thresholds[j]:.2f}", transform=ax.transAxes, color="C3")

    return _label_grids("pr", label_names, draw, "recall", "precision", per_figure)


def f1_curves(
    label_names: Sequence[str],
    targets: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    per_figure: int = PER_FIGURE,
) -> list[str]:
    """Each label's F1 against its threshold, the chosen threshold marked, as small multiples.

    Args and Returns are those of :func:`pr_curves`.
    """

    def draw(ax, j):
        y, p = targets[:, j], probs[:, j]
        curve = scores_at(y, p, threshold_grid(p))
        ax.plot(curve.thresholds, curve.f1, lw=1.2)
        chosen = scores_at(y, p, np.array([thresholds[j]]))
        ax.axvline(thresholds[j], color="C3", lw=0.8, ls="--")
        ax.plot(chosen.thresholds, chosen.f1, "o", color="C3", ms=4)
        ax.text(0.97, 0.92, f"F1 {chosen.f1[0]:.2f}", transform=ax.transAxes, ha="right")

    return _label_grids("f1", label_names, draw, "threshold", "F1", per_figure)


# ---------------------------------------------------------------------------- calibration
def reliability_diagram(
    targets: np.ndarray, probs: np.ndarray, uncalibrated_probs: np.ndarray | None = None
) -> str:
    """Mean probability against the share of positives, per bin over every (text, label) pair,
    with the expected calibration error in the title; before and after calibration when
    ``uncalibrated_probs`` is given.

    Args:
        targets: ``(n_texts, n_labels)`` 0/1.
        probs: ``(n_texts, n_labels)``, calibrated when the run is.
        uncalibrated_probs: the same before calibration, or None.

    Returns:
        An inline SVG.
    """
    series = [("calibrated" if uncalibrated_probs is not None else "model", probs, "C0")]
    if uncalibrated_probs is not None:
        series.insert(0, ("before calibration", uncalibrated_probs, "C1"))
    with _style():
        fig = _figure(4.6, 4.4)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        top.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="perfect")
        eces = []
        width = 1.0 / ECE_BINS / len(series)
        for i, (name, p, colour) in enumerate(series):
            bins = reliability(targets, p)
            eces.append(bins.ece)
            filled = bins.count > 0
            label = f"{name} (ECE {bins.ece:.4f})"
            top.plot(
                bins.confidence[filled],
                bins.frequency[filled],
                "o-",
                color=colour,
                ms=3,
                label=label,
            )
            bottom.bar(
                bins.edges[:-1] + i * width, bins.count, width=width, align="edge", color=colour
            )
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("share of positives")
        top.legend(loc="upper left")
        bottom.set_yscale("log")
        bottom.set_ylabel("pairs")
        bottom.set_xlabel("mean predicted probability")
        if len(eces) == 2:
            top.set_title(f"ECE {eces[0]:.4f} before, {eces[1]:.4f} after calibration")
        else:
            top.set_title(f"ECE {eces[0]:.4f}")
        return _svg(fig, "reliability")


# ---------------------------------------------------------------------------- frequency
def support_vs_f1(label_names: Sequence[str], support: np.ndarray, f1: np.ndarray) -> str:
    """Each label's F1 against how many texts have it, labels named beside their points.

    Args:
        label_names: ``n_labels`` names.
        support: ``(n_labels,)`` positives per label.
        f1: ``(n_labels,)``; NaN for a label without an F1 (not drawn).

    Returns:
        An inline SVG.
    """
    support = np.asarray(support, dtype=np.float64)
    f1 = np.asarray(f1, dtype=np.float64)
    many = len(label_names) > 40
    with _style():
        fig = _figure(7.5 if many else 6.0, 5.0 if many else 4.0)
        ax = fig.subplots()
        drawn = ~np.isnan(f1)
        ax.scatter(support[drawn], f1[drawn], s=12, color="C0")
        for j in np.flatnonzero(drawn):
            ax.annotate(
                _short(label_names[int(j)]),
                (support[j], f1[j]),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize=5 if many else 6,
            )
        positive = support[support > 0]
        if len(positive) and positive.max() / positive.min() > 4:
            if (support == 0).any():  # symlog keeps a label without positives on the axis, at 0
                ax.set_xscale("symlog", linthresh=1)
            else:
                ax.set_xscale("log")
            # optional: matplotlib
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if drawn.any():  # the labels' own range, so that close labels are told apart
            ax.set_ylim(max(0.0, f1[drawn].min() - 0.05), min(1.0, f1[drawn].max() + 0.05) + 0.02)
        ax.set_xlabel("support (texts with the label)")
        ax.set_ylabel("F1")
        return _svg(fig, "frequency")


# ------------------------------------------------------------------------------ heatmaps
def _heatmap(matrix: np.ndarray, label_names: Sequence[str], title: str, alt: str) -> str:
    """A ``(n_labels, n_labels)`` matrix of shares in [0, 1] (NaN: no colour) as a PNG."""
    num_labels = len(label_names)
    # A cell of 0.17 inches and 6-point names stay readable at 100 labels; a wide heatmap
    # scrolls sideways on the page rather than shrinking to illegible.
    side = min(HEATMAP_MAX_INCHES, max(4.5, 0.17 * num_labels + 2.5))
    tick_size = 7 if num_labels <= 30 else 6
    with _style():
        from matplotlib import colormaps  # optional: matplotlib

        fig = _figure(side + 1.0, side)
        ax = fig.subplots()
        ax.grid(False)
        colours = colormaps["viridis"].with_extremes(bad="0.85")  # the diagonal, undefined cells
        # Off-diagonal shares are mostly small: scale the colours to the largest one (the colour
        # bar says where that is), not to 1, so that the pairs that matter stand out.
        top = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 1.0
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colours, vmin=0, vmax=max(top, 0.05))
        names = [_short(n) for n in label_names]
        ax.set_xticks(range(num_labels), names, rotation=90, fontsize=tick_size)
        ax.set_yticks(range(num_labels), names, fontsize=tick_size)
        ax.set_xlabel("column label j")
        ax.set_ylabel("row label i (true)")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.6)
        return _png_img(fig, alt, dpi=130 if side <= 9 else 100)


def cooccurrence_heatmap(label_names: Sequence[str], targets: np.ndarray) -> str:
    """Heatmap of :func:`multihot.report.pairs.cooccurrence`: row ``i`` is the share of the
    texts with label ``i`` that also have label ``j`` (the trivial diagonal left blank).

    Args:
        label_names: ``n_labels`` names.
        targets: ``(n_texts, n_labels)`` 0/1.

    Returns:
        An ``<img>`` with a PNG data URI.
    """
    matrix = cooccurrence(targets)
    np.fill_diagonal(matrix, np.nan)
    title = "P(j true | i true)"
    return _heatmap(matrix, label_names, title, "co-occurrence of the true labels")


def false_fire_heatmap(
    label_names: Sequence[str], targets: np.ndarray, decisions: np.ndarray
) -> str:
    """Heatmap of :func:`multihot.report.pairs.false_fires`: on texts of label ``i`` (row) that
    lack label ``j`` (column), how often ``j`` fired anyway.

    Args:
        label_names: ``n_labels`` names.
        targets: ``(n_texts, n_labels)`` 0/1.
        decisions: ``(n_texts, n_labels)`` 0/1, what fired.

    Returns:
        An ``<img>`` with a PNG data URI.
    """
    title = "P(j fired | i true, j not true)"
    return _heatmap(false_fires(targets, decisions), label_names, title, "confusion between labels")


# -------------------------------------------------------------------------- training curves
LOSSES = ("train_loss", "val_loss")


def _members(history: Sequence[dict]) -> dict[Any, list[dict]]:
    """History records by seed-ensemble member (one group, ``None``, without members)."""
    groups: dict[Any, list[dict]] = {}
    for record in history:
        groups.setdefault(record.get("member"), []).append(record)
    return groups


def _x_axis(history: Sequence[dict]) -> str:
    """``step``, unless the steps do not tell the records apart (a baseline's one step 0)."""
    steps = {r.get("step") for r in history} - {None}
    epochs = {r.get("epoch") for r in history} - {None}
    return "step" if len(steps) > 1 or not epochs else "epoch"


def _series(records: Sequence[dict], x: str, key: str) -> tuple[list, list]:
    points = [(r[x], r[key]) for r in records if r.get(x) is not None and r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _training_figure(history: Sequence[dict], metric: str):
    """Losses (left) and ``metric`` (right) of every record, a colour per member."""
    from matplotlib.ticker import MaxNLocator  # optional: matplotlib

    fig = _figure(8.0, 3.2)
    losses, scores = fig.subplots(1, 2)
    if not history:
        fig.text(0.5, 0.5, "no evaluations recorded", ha="center", va="center")
        losses.set_visible(False)
        scores.set_visible(False)
        return fig
    x = _x_axis(history)
    groups = _members(history)
    drew_loss = drew_metric = False
    for colour, (member, records) in enumerate(groups.items()):
        who = "" if member is None else f"member {member} "
        for key, style in zip(LOSSES, ("-", "--"), strict=True):
            xs, ys = _series(records, x, key)
            if ys:
                label = f"{who}{key.replace('_', ' ')}"
                losses.plot(xs, ys, style, marker="o", ms=3, color=f"C{colour % 10}", label=label)
                drew_loss = True
        xs, ys = _series(records, x, metric)
        if ys:
            label = f"{who}{metric}".strip()
            scores.plot(xs, ys, "-", marker="o", ms=3, color=f"C{colour % 10}", label=label)
            drew_metric = True
    for ax, drew, what in ((losses, drew_loss, "losses"), (scores, drew_metric, metric)):
        if not drew:
            ax.text(
                0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes
            )
        ax.set_xlabel(x)
        if x == "step":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if drew_loss:
        losses.legend()
    if drew_metric and len(groups) > 1:
        scores.legend()
    losses.set_title("loss")
    scores.set_title(metric)
    return fig


def training_curves(history: Sequence[dict], metric: str = "macro_f1") -> str | None:
    """Train and validation loss, and the run's main metric, against step (or epoch), one line
    per seed-ensemble member.

    Args:
        history: history.jsonl records (``step``, ``epoch``, ``train_loss``, ``val_loss``,
            metrics; ``member`` for ensembles). A baseline's single record shows as points.
        metric: the metric to draw (the run's ``train.metric``).

    Returns:
        An inline SVG, or None when ``history`` is empty.

    Example:
        >>> history = [{"step": s, "epoch": s / 10, "train_loss": 1 / s, "val_loss": 1.2 / s,
        ...             "macro_f1": 0.1 * s} for s in (1, 2, 3)]
        >>> training_curves(history).startswith("<svg"), training_curves([])
        (True, None)
    """
    if not history:
        return None
    with _style():
        return _svg(_training_figure(history, metric), "training")


def save_training_curves(history: Sequence[dict], path: Path, metric: str = "macro_f1") -> Path:
    """Write the :func:`training_curves` figure to ``path`` as a PNG (a run's
    ``training-curves.png``), all or nothing; an empty history gives a figure that says so.

    Args:
        history: history.jsonl records.
        path: the PNG file to write.
        metric: the metric to draw.

    Returns:
        ``path``.
    """
    path = Path(path)
    with _style():
        data = _png_bytes(_training_figure(history, metric), dpi=120)
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
