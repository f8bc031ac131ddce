"""Drawing explanations: the terminal block and the HTML page, from explanations built by hand."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from multihot.inference.explain import DeletionCheck, Explanation, LabelExplanation
from multihot.inference.explain import TokenAttribution as T
from multihot.report.explanation import (
    display_pieces,
    intensities,
    render_html,
    render_terminal,
    write_html,
)

HOSTILE = "<script>alert(1)</script>"


def example(label: str = "animal", text: str = "the zebra ran") -> Explanation:
    """Two labels: integrated gradients (the word ``zebra`` in two pieces) and label attention."""
    ig = LabelExplanation(
        label,
        0.91,
        0.5,
        True,
        "integrated-gradients",
        [
            T("[CLS]", 0.0, True),
            T("the", -0.4),
            T("zeb", 2.0),
            T("##ra", 1.0),
            T("ran", 0.05),
            T("[SEP]", 0.0, True),
        ],
        convergence_delta=2e-4,
        check=DeletionCheck(2, 0.91, 0.12, 0.70, 10, [2, 3]),
    )
    attention = LabelExplanation(
        "music",
        0.2,
        0.6,
        False,
        "label-attention",
        [
            T("[CLS]", 0.2, True),
            T("the", 0.1),
            T("zeb", 0.3),
            T("##ra", 0.25),
            T("ran", 0.05),
            T("[SEP]", 0.1, True),
        ],
        check=DeletionCheck(2, 0.2, 0.23, 0.15, 10, [2, 3]),  # deleting the top raised it
    )
    return Explanation(text, [ig, attention])


def test_intensities_are_signed_for_gradients_and_above_an_even_share_for_attention():
    ig, attention = example().labels
    assert intensities(ig) == [0.0, -0.2, 1.0, 0.5, 0.025, 0.0]
    even = 1 / 6
    expected = [0.0, 0.0, 1.0, (0.25 - even) / (0.3 - even), 0.0, 0.0]
    assert intensities(attention) == pytest.approx(expected)


def test_word_pieces_are_shown_as_words():
    tokens = ["[CLS]", "zeb", "##ra", "ran", "[SEP]"]
    shown = display_pieces(tokens, [True, False, False, False, True])
    assert shown == [
        ("[CLS]", False),
        ("zeb", False),
        ("ra", True),
        ("ran", False),
        ("[SEP]", False),
    ]
    # Byte-level BPE marks word starts instead; an unmarked piece continues the word.
    bpe = display_pieces(
        ["<s>", "the", "\u0120zeb", "ra", "</s>"], [True, False, False, False, True]
    )
    assert bpe == [("<s>", False), ("the", False), ("zeb", False), ("ra", True), ("</s>", False)]


def test_the_terminal_block_shows_tokens_header_and_check():
    text = render_terminal(example())
    plain = text.plain
    assert "[CLS] the zebra ran [SEP]" in plain
    assert "animal  p=0.910  threshold 0.500  fired  (integrated-gradients" in plain
    assert "convergence delta 0.0002" in plain
    assert "music  p=0.200  threshold 0.600  did not fire  (label-attention)" in plain
    assert (
        "deletion check: top-2 deleted 0.910 -> 0.120 (-0.790); 2 random deleted -> 0.700" in plain
    )
    assert plain.count(": held") == 1 and plain.count(": FAILED") == 1
    assert "0.200 -> 0.230 (+0.030)" in plain and "(--" not in plain  # a rise reads +, not --
    # Colours: the strongest piece on a green background, the negative one on red.
    styles = {plain[span.start : span.end]: str(span.style) for span in text.spans}
    assert styles["zeb"] == "black on rgb(40, 167, 69)"  # full strength: the green itself
    assert styles["the"] == "black on rgb(247, 214, 217)"  # a fifth of the red, over white
    assert "ran" not in styles  # too faint to colour
    console = Console(record=True, width=120, color_system="truecolor")
    console.print(text)
    assert "zeb" in console.export_text()


def test_the_terminal_block_prints_markup_as_text():
    explanation = example(label="[bold]x[/bold]", text="[red]hi")
    explanation.labels[0].tokens[1] = T("[red]", 0.3)
    plain = render_terminal(explanation).plain
    assert "[bold]x[/bold]  p=" in plain and "[red]" in plain


def test_the_page_escapes_everything_and_fetches_nothing(tmp_path):
    explanation = example(label=HOSTILE, text=f"the zebra {HOSTILE}")
    explanation.labels[0].tokens[4] = T(HOSTILE, 0.5)
    page = render_html(explanation, title=HOSTILE)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;") >= 4  # title, heading, text, label, token
    assert not re.search(r"(src|href)\s*=|https?://|@import|url\(", page)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page


def test_the_page_has_a_block_per_label_with_scored_tokens(tmp_path):
    page = render_html(example())
    assert page.count('<section class="label"') == 2
    assert 'data-method="integrated-gradients"' in page and 'data-method="label-attention"' in page
    scores = re.findall(r'<span class="tok[^"]*" data-score="([^"]+)"', page)
    assert scores[:6] == ["0", "-0.4", "2", "1", "0.05", "0"]
    assert (
        '<span class="tok" data-score="2" title="2" style="background: rgb(40, 167, 69)">zeb</span>'
        in page
    )
    assert '<p class="check failed">' in page and "top-2 deleted 0.200 -&gt; 0.230" in page

    path = write_html(example(), tmp_path / "explanation.html")
    assert path.read_text(encoding="utf-8") == render_html(example())
    assert [p.name for p in tmp_path.iterdir()] == ["explanation.html"]  # no temporary left


def test_a_label_without_a_deletion_check_says_so():
    explanation = example()
    explanation.labels[0].check = None
    assert (
        "deletion check: not run (fewer than two tokens to delete)"
        in render_terminal(explanation).plain
    )
    assert "not run" in render_html(Explanation("zebra", explanation.labels[:1]))
    assert "No label to explain." in render_html(Explanation("zebra", []))
