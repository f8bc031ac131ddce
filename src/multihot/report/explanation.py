"""Per-label explanations drawn for a person: on a terminal (rich) and as a self-contained HTML page.

An :class:`multihot.inference.explain.Explanation` is computed first; this only draws it. Each
label gets a header (probability, threshold, whether it fired, the method), the text with every
token coloured by its score, and the deletion check's line. Signed scores (integrated gradients,
the linear baseline) are green where they push the label up and red where they push it down;
attention weights are green, and only the tokens that get more than an even share
(``1 / tokens``) are coloured. The intensity is the score over the largest in that label.

Word pieces are shown joined into words (``zeb`` ``##ra`` reads ``zebra``, each piece with its
own colour). Texts and label names are untrusted: the terminal form uses rich styles, never markup,
and the page escapes everything and holds no script.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from pathlib import Path

from rich.style import Style
from rich.text import Text

from multihot.core.files import write_atomic
from multihot.data.writers import GENERATOR_TAG, check_html_output
from multihot.inference.explain import Explanation, LabelExplanation

POSITIVE = (40, 167, 69)
NEGATIVE = (214, 51, 64)
FAINT = 0.08
"""Intensities below this are drawn without colour (noise in a near-uniform attention row)."""

_MARKER = re.compile("[\u0120\u2581]")  # byte-level BPE (RoBERTa) and SentencePiece word starts


def intensities(entry: LabelExplanation) -> list[float]:
    """Each token's colour strength in [-1, 1] (negative: red); 0 for [CLS]/[SEP].

    Signed methods: score over the largest absolute score. Attention: the weight above an even
    share ``1 / len(tokens)``, over the largest such excess, never below 0.

    Example:
        >>> from multihot.inference.explain import TokenAttribution as T
        >>> entry = LabelExplanation("x", 0.9, 0.5, True, "integrated-gradients",
        ...                          [T("[CLS]", 0.0, True), T("a", -1.0), T("b", 2.0)])
        >>> intensities(entry)
        [0.0, -0.5, 1.0]
    """
    scores = [0.0 if t.special else t.score for t in entry.tokens]
    if entry.method == "label-attention":
        even = 1.0 / max(len(entry.tokens), 1)
        scores = [max(0.0, s - even) for s in scores]
    largest = max((abs(s) for s in scores), default=0.0)
    if largest <= 0.0:
        return [0.0] * len(scores)
    return [s / largest for s in scores]


def display_pieces(tokens: Sequence[str], special: Sequence[bool]) -> list[tuple[str, bool]]:
    """Each token as ``(text to show, joins the previous token)``: a WordPiece ``##ra``
    continues a word; with byte-level BPE or SentencePiece (``Ġword``, ``▁word``), an unmarked
    piece does. Nothing joins a special token.

    Example:
        >>> display_pieces(["[CLS]", "zeb", "##ra", "ran", "[SEP]"], [True, False, False, False, True])
        [('[CLS]', False), ('zeb', False), ('ra', True), ('ran', False), ('[SEP]', False)]
    """
    marked = any(_MARKER.match(t) for t in tokens)
    out = []
    for i, (token, is_special) in enumerate(zip(tokens, special, strict=True)):
        after_word = i > 0 and not special[i - 1] and not is_special
        if token.startswith("##") and len(token) > 2:
            out.append((token[2:], after_word))
        elif marked and _MARKER.match(token):
            out.append((token[1:] or token, False))
        else:
            out.append((token, marked and after_word))
    return out


def _blend(strength: float) -> tuple[int, int, int]:
    """White blended towards green (positive) or red (negative) by ``|strength|``."""
    colour = POSITIVE if strength >= 0 else NEGATIVE
    a = min(abs(strength), 1.0)
    red, green, blue = (round(255 + (c - 255) * a) for c in colour)
    return red, green, blue


def prepared_line(explanation: Explanation) -> str | None:
    """``explained as prepared (steps: html, whitespace): <text>`` when the run's preparation
    steps changed the text, so the tokens below are of a text unlike the one given; else None.

    Example:
        >>> prepared_line(Explanation("a & b", [], prepared_from="a &amp;  b", steps=["html"]))
        'explained as prepared (steps: html): a & b'
    """
    if explanation.prepared_from is None:
        return None
    return f"explained as prepared (steps: {', '.join(explanation.steps)}): {explanation.text}"


def header_line(entry: LabelExplanation) -> str:
    """``label  p=0.912  threshold 0.500  fired  (integrated-gradients, delta 1e-06)``."""
    state = "fired" if entry.fired else "did not fire"
    method = entry.method
    if entry.convergence_delta is not None:
        method += f", convergence delta {entry.convergence_delta:.2g}"
    return (
        f"{entry.label}  p={entry.probability:.3f}  threshold {entry.threshold:.3f}  {state}  "
        f"({method})"
    )


def check_line(entry: LabelExplanation) -> str:
    """The deletion check in one line, with its verdict."""
    c = entry.check
    if c is None:
        return "deletion check: not run (fewer than two tokens to delete)"
    verdict = "held" if c.held else "FAILED"
    return (
        f"deletion check: top-{c.k} deleted {c.prob_before:.3f} -> {c.prob_top_k:.3f} "
        f"({-c.drop_top_k:+.3f}); {c.k} random deleted -> {c.prob_random:.3f} "
        f"({-c.drop_random:+.3f}, mean of {c.draws}): {verdict}"
    )


# ---------------------------------------------------------------------------------- terminal
def render_terminal(explanation: Explanation, with_prepared: bool = True) -> Text:
    """The explanation as one rich :class:`~rich.text.Text`, a block per label.

    Each block: the header, the text with each token's background coloured by its score, the
    deletion check. ``.plain`` reads the same without colours. When the run's preparation steps
    changed the text, a first line says so and gives the text the tokens are of
    (:func:`prepared_line`; ``with_prepared=False`` leaves it to the caller, which may print it
    unwrapped).
    """
    out = Text()
    prepared = prepared_line(explanation) if with_prepared else None
    if prepared is not None:
        out.append(prepared, style=Style(dim=True))
        out.append("\n\n")
    for n, entry in enumerate(explanation.labels):
        if n:
            out.append("\n\n")
        out.append(header_line(entry), style="bold")
        out.append("\n")
        pieces = display_pieces([t.token for t in entry.tokens], [t.special for t in entry.tokens])
        for i, ((shown, joins), token, strength) in enumerate(
            zip(pieces, entry.tokens, intensities(entry), strict=True)
        ):
            if i and not joins:
                out.append(" ")
            if token.special:
                style = Style(dim=True)
            elif abs(strength) < FAINT:
                style = Style()
            else:
                style = Style(color="black", bgcolor=f"rgb{_blend(strength)}")
            out.append(shown, style=style)
        out.append("\n")
        held = entry.check is None or entry.check.held
        out.append(check_line(entry), style="" if held else "yellow")
    return out


# -------------------------------------------------------------------------------------- html
CSS = """
body { margin: 0; padding: 1.2rem 2rem 3rem; font: 15px/1.5 system-ui, sans-serif;
       color: #1d2430; background: #fff; max-width: 1100px; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
.source { color: #5b6575; white-space: pre-wrap; word-break: break-word; margin: 0 0 1rem; }
.prepared { color: #5b6575; font-size: .85rem; white-space: pre-wrap; word-break: break-word; }
section.label { border: 1px solid #d9dee6; border-radius: 6px; padding: .6rem 1rem;
                margin: 0 0 1rem; }
section.label h2 { font-size: 1.05rem; margin: 0 0 .4rem; word-break: break-word; }
.meta { color: #5b6575; font-weight: normal; font-size: .9rem; }
.tokens { line-height: 2.1; word-break: break-word; }
.tok { padding: .1rem .15rem; border-radius: 3px; }
.tok.special { color: #8a93a3; font-size: .8rem; }
.check { margin: .4rem 0 0; font-size: .9rem; color: #5b6575; }
.check.failed { color: #9a5b00; font-weight: 600; }
.legend { color: #5b6575; font-size: .85rem; }
"""


def _token_span(token, shown: str, strength: float) -> str:
    classes = "tok special" if token.special else "tok"
    style = ""
    if not token.special and abs(strength) >= FAINT:
        style = ' style="background: rgb({}, {}, {})"'.format(*_blend(strength))
    return (
        f'<span class="{classes}" data-score="{token.score:.6g}" title="{token.score:.4g}"'
        f"{style}>{escape(shown)}</span>"
    )


def _label_block(entry: LabelExplanation) -> str:
    pieces = display_pieces([t.token for t in entry.tokens], [t.special for t in entry.tokens])
    spans = []
    for i, ((shown, joins), token, strength) in enumerate(
        zip(pieces, entry.tokens, intensities(entry), strict=True)
    ):
        if i and not joins:
            spans.append(" ")
        spans.append(_token_span(token, shown, strength))
    failed = entry.check is not None and not entry.check.held
    name, meta = escape(entry.label), escape(header_line(entry)[len(entry.label) :].strip())
    return (
        f'<section class="label" data-label="{name}" data-method="{escape(entry.method)}">\n'
        f'<h2>{name} <span class="meta">{meta}</span></h2>\n'
        f'<div class="tokens">{"".join(spans)}</div>\n'
        f'<p class="check{" failed" if failed else ""}">{escape(check_line(entry))}</p>\n'
        "</section>"
    )


def render_html(explanation: Explanation, title: str = "Explanation") -> str:
    """A self-contained HTML page (inline CSS, no script, nothing fetched): the text, then a
    block per label whose tokens are ``<span class="tok" data-score=...>`` coloured by score.
    The text is the one the model read; when the run's preparation steps changed it, the page
    says so and shows the text as given too (``<p class="prepared">``)."""
    blocks = "\n".join(_label_block(entry) for entry in explanation.labels)
    prepared = ""
    if explanation.prepared_from is not None:
        steps = ", ".join(explanation.steps)
        prepared = (
            f'<p class="prepared">Explained as prepared (steps: {escape(steps)}); as given: '
            f"<span>{escape(explanation.prepared_from)}</span></p>\n"
        )
    legend = (
        "Green: pushes the label up; red: pushes it down (integrated gradients, linear); for "
        "label attention, green is weight above an even share. Hover a token for its score."
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"{GENERATOR_TAG}\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="source">{escape(explanation.text)}</p>\n'
        f"{prepared}"
        f'<p class="legend">{escape(legend)}</p>\n'
        f"{blocks or '<p>No label to explain.</p>'}\n"
        "</body>\n</html>\n"
    )


def write_html(
    explanation: Explanation, path: str | Path, title: str = "Explanation", *, force: bool = False
) -> Path:
    """Write :func:`render_html` to ``path`` all or nothing; returns the path.

    ``path`` is checked first (:func:`~multihot.data.writers.check_html_output`): an ``.html`` or
    ``.htm`` name; an existing file is replaced only if multihot wrote it, or with ``force``.
    """
    path = check_html_output(path, force=force)
    write_atomic(path, render_html(explanation, title))
    return path
