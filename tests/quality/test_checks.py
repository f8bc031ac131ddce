"""The data checks of ``multihot audit``, each on data crafted to hold what it looks for, and on
data that hold nothing for it."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from helpers import FILLER
from multihot.core.config import RunConfig
from multihot.data.duplicates import normalize_text
from multihot.data.encoding import Reading
from multihot.data.prepare import prepare_data
from multihot.data.readers import Dataset
from multihot.quality import checks
from multihot.quality.checks import (
    CHECKS,
    cardinality,
    conflicting_duplicates,
    content_chars,
    cut_texts,
    empty_texts,
    label_pairs,
    leakage,
    near_text,
    rare_labels,
    run_checks,
    split_labels,
)


def dataset(texts, labels, source="d.jsonl") -> Dataset:
    return Dataset(list(texts), [list(names) for names in labels], source)


def clean(n: int = 40, source: str = "d.jsonl", offset: int = 0) -> Dataset:
    """Distinct texts, each label on every third text: nothing for any check to find."""
    names = ["joy", "anger", "calm"]
    texts = [f"text {FILLER[(i + offset) % len(FILLER)]} number {i + offset}" for i in range(n)]
    return dataset(texts, [[names[i % 3]] for i in range(n)], source)


def assert_finds_nothing(finding, check: str) -> None:
    assert finding.check == check
    assert finding.count == 0 and finding.examples == [] and finding.severity == "info"
    assert "\n" not in finding.message
    json.dumps(finding.to_dict())  # every field JSON-ready, as the audit directory writes it


def assert_one_line(finding) -> None:
    assert "\n" not in finding.message and finding.message
    json.dumps(finding.to_dict())


# ------------------------------------------------------------------------------------- all
def test_run_checks_gives_one_finding_per_check_in_order_and_nothing_on_clean_data():
    data, val = clean(40), clean(20, "v.jsonl", offset=40)
    findings = run_checks(data, val)
    assert [f.check for f in findings] == [c for c in CHECKS if c != "cut_texts"]
    # Cardinality and pairs describe the data; the rest find nothing here.
    for finding in findings:
        if finding.check not in ("cardinality", "label_pairs"):
            assert_finds_nothing(finding, finding.check)
    assert findings[-2].count == 0 and findings[-1].count == 0


def test_run_checks_without_val_skips_the_checks_of_two_files_and_cuts_need_a_tokenizer(tokenizer):
    findings = run_checks(clean(), None)
    assert "split_labels" not in [f.check for f in findings]
    assert "leakage" not in [f.check for f in findings]
    with_tokenizer = run_checks(clean(), clean(9, "v.jsonl", 40), tokenizer=tokenizer)
    assert [f.check for f in with_tokenizer] == list(CHECKS)


def test_run_checks_keeps_to_the_examples_asked():
    texts = ["ok", "no", "hm", "eh", "so happy today"]
    data = dataset(texts, [["joy"]] * 5)
    by_check = {f.check: f for f in run_checks(data, None, examples=2, min_support=50)}
    assert by_check["empty_texts"].count == 4 and len(by_check["empty_texts"].examples) == 2
    assert len(by_check["rare_labels"].examples) == 1


# ------------------------------------------------------------------------------- rare labels
def test_rare_labels_in_train_or_validation_say_what_thresholds_do():
    labels = [["joy"]] * 10 + [["anger"]] * 2 + [["calm"]] * 8
    val_labels = [["joy"]] * 6 + [["anger"]] * 6 + [["calm"]] * 3
    data = dataset([f"t {i}" for i in range(20)], labels)
    val = dataset([f"v {i}" for i in range(15)], val_labels, "v.jsonl")
    finding = rare_labels(data, val, min_support=5)
    assert finding.check == "rare_labels" and finding.severity == "warning"
    assert finding.count == 2
    assert finding.examples == [
        {"label": "anger", "data": 2, "val": 6},
        {"label": "calm", "data": 8, "val": 3},
    ]
    assert finding.details["support"]["joy"] == {"data": 10, "val": 6}
    assert "2 of 3 labels have fewer than 5 (min_support)" in finding.message
    assert "global threshold" in finding.message
    assert_one_line(finding)
    assert_finds_nothing(rare_labels(data, val, min_support=2), "rare_labels")


def test_rare_labels_without_val_count_the_held_out_share():
    labels = [["joy"]] * 100 + [["anger"]] * 30
    data = dataset([f"t {i}" for i in range(130)], labels)
    # 30 examples: about 3 of them in a 10% hold-out, under 5.
    finding = rare_labels(data, None, min_support=5)
    assert finding.count == 1 and finding.examples == [{"label": "anger", "data": 30, "val": 3.0}]
    assert "held out for validation (under 50 in DATA)" in finding.message
    assert rare_labels(data, None, min_support=5, val_fraction=0.2).count == 0


# ------------------------------------------------------------------------------ split labels
def test_split_labels_both_ways():
    data = dataset(["a", "b", "c", "d"], [["joy"], ["anger"], ["anger"], ["calm"]])
    val = dataset(["e", "f"], [["joy"], ["grief"]], "v.jsonl")
    finding = split_labels(data, val)
    assert finding.count == 3 and finding.severity == "warning"
    assert finding.examples == [
        {"label": "anger", "data": 2, "val": 0},
        {"label": "calm", "data": 1, "val": 0},
        {"label": "grief", "data": 0, "val": 1},
    ]
    assert finding.details == {"only_data": ["anger", "calm"], "only_val": ["grief"]}
    assert "2 have examples in DATA and none in VAL (first: 'anger', 2)" in finding.message
    assert "1 have examples in VAL and none in DATA (first: 'grief', 1)" in finding.message
    assert_one_line(finding)
    assert_finds_nothing(split_labels(data, data), "split_labels")


# -------------------------------------------------------------------------------- duplicates
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Thank you!!!", "thank you"),
        ("thank you", "thankyou"),
        ("I'm fine :)", "im fine"),
        ("Café", "cafe"),
        ("see you at 10", "see you at 9"),
    ],
)
def test_near_copies_differ_only_in_punctuation_spacing_accents_or_digits(a, b):
    assert near_text(a) == near_text(b)


@pytest.mark.parametrize(("a", "b"), [("so happy", "so sad"), ("love it 😍", "love it 😡")])
def test_near_copies_keep_words_and_emoji(a, b):
    assert near_text(a) != near_text(b)


@pytest.mark.parametrize("text", ["  Thank\tyou! ", "ÇA VA", "a\u00a0b", "ß"])
def test_near_text_is_stronger_than_the_exact_normalisation(text):
    assert near_text(text) == near_text(normalize_text(text))


def test_conflicting_duplicates_exact_and_near_with_both_rows_and_label_sets():
    texts = ["so happy", "ugh", "So  happy", "so happy", "Ugh!!", "fine", "ugh", "FINE."]
    labels = [["joy"], ["anger"], ["joy"], ["calm"], ["disgust"], [], ["anger"], []]
    finding = conflicting_duplicates(dataset(texts, labels))
    assert finding.check == "conflicting_duplicates" and finding.severity == "warning"
    # Row 3 copies row 0 with other labels (exact); row 4 nearly copies row 1 (near). Rows 2, 6
    # and 7 repeat their text with the same labels.
    assert finding.count == 2
    assert finding.details == {"data": {"exact": 1, "near": 1}}
    exact, near = finding.examples
    assert exact == {
        "kind": "exact",
        "row": 3,
        "text": "so happy",
        "labels": ["calm"],
        "other_row": 0,
        "other_text": "so happy",
        "other_labels": ["joy"],
    }
    assert (near["kind"], near["row"], near["other_row"]) == ("near", 4, 1)
    assert (near["labels"], near["other_labels"]) == (["disgust"], ["anger"])
    assert "2 texts repeat an earlier one with other labels (1 exact" in finding.message
    assert "[calm] against [joy]" in finding.message
    assert_one_line(finding)


def test_conflicting_duplicates_in_val_name_their_file():
    data = dataset(["a b", "c d"], [["joy"], ["anger"]])
    val = dataset(["x y", "X Y!"], [["joy"], ["anger"]], "v.jsonl")
    finding = conflicting_duplicates(data, val)
    assert finding.count == 1
    assert finding.examples[0]["file"] == "val" and finding.examples[0]["row"] == 1
    assert finding.details == {"data": {"exact": 0, "near": 0}, "val": {"exact": 0, "near": 1}}


def test_copies_with_the_same_labels_are_no_conflict():
    data = dataset(["so happy", "So happy!", "ugh", "UGH"], [["joy"], ["joy"], [], []])
    assert_finds_nothing(conflicting_duplicates(data), "conflicting_duplicates")
    # Punctuation alone leaves no near key: "!!!" is no near copy of "...".
    data = dataset(["!!!", "...", "?!"], [["surprise"], ["neutral"], ["confusion"]])
    assert_finds_nothing(conflicting_duplicates(data), "conflicting_duplicates")
    assert_finds_nothing(
        conflicting_duplicates(clean(), clean(5, "v.jsonl")), "conflicting_duplicates"
    )


def test_conflicting_duplicates_are_fast_on_many_texts():
    rng = np.random.default_rng(0)
    words = rng.choice(FILLER, size=(45_000, 12))
    texts = [" ".join(row) + "!" for row in words.tolist()]
    data = dataset(texts, [["joy"] if i % 2 else ["anger"] for i in range(len(texts))])
    start = time.perf_counter()
    conflicting_duplicates(data)
    assert time.perf_counter() - start < 10  # hashing: well under a second on a laptop


# ----------------------------------------------------------------------------------- leakage
def test_leakage_names_the_val_row_and_the_data_row():
    data = dataset(["so happy", "ugh", "meh"], [["joy"], ["anger"], []])
    val = dataset(["fine", "SO happy", "ugh"], [[], ["joy"], ["disgust"]], "v.jsonl")
    finding = leakage(data, val)
    assert finding.count == 2 and finding.severity == "warning"
    assert finding.details == {"share": 2 / 3, "with_other_labels": 1}
    assert finding.examples[0] == {
        "file": "val",
        "row": 1,
        "text": "SO happy",
        "labels": ["joy"],
        "other_file": "data",
        "other_row": 0,
        "other_text": "so happy",
        "other_labels": ["joy"],
    }
    assert finding.examples[1]["other_row"] == 1
    assert "2 of 3 VAL texts are also in DATA" in finding.message
    assert "1 of them with other labels" in finding.message
    assert_one_line(finding)
    assert_finds_nothing(leakage(clean(), clean(10, "v.jsonl", offset=40)), "leakage")


# ------------------------------------------------------------------------------ empty texts
def test_content_chars_count_letters_digits_and_emoji():
    assert content_chars("ok!! 👍") == 3
    assert content_chars("... ?!") == 0
    assert content_chars("a1 b2 c3", enough=2) == 2


def test_empty_texts_in_both_files():
    data = dataset(["so happy", "ok", "!!!"], [["joy"], [], ["anger"]])
    val = dataset(["fine", "👍"], [[], ["joy"]], "v.jsonl")
    finding = empty_texts(data, val)
    assert finding.count == 3
    assert [(e["file"], e["row"], e["text"]) for e in finding.examples] == [
        ("data", 1, "ok"),
        ("data", 2, "!!!"),
        ("val", 1, "👍"),
    ]
    assert finding.examples[1]["labels"] == ["anger"]
    assert "3 texts have fewer than 3 letters, digits or emoji (first: 'ok')" in finding.message
    assert_one_line(finding)
    assert empty_texts(data, val, min_chars=1).count == 1
    assert_finds_nothing(empty_texts(clean()), "empty_texts")


# ------------------------------------------------------------------------------- cut texts
@pytest.fixture(scope="module")
def tokenizer():
    from multihot.modeling.encoders import train_wordpiece

    return train_wordpiece([" ".join(FILLER)] * 4, vocab_size=200)


def test_cut_texts_counts_as_training_does_and_shows_the_longest(tokenizer):
    short, long, longer = (" ".join(FILLER[:n]) for n in (3, 20, 40))
    data = dataset([short, long, short], [["joy"], ["anger"], []])
    val = dataset([longer, short], [["calm"], []], "v.jsonl")
    reading = Reading(max_length=16)
    finding = cut_texts(data, val, tokenizer, reading)
    assert finding.count == 2 and finding.severity == "warning"
    assert [(e["file"], e["row"], e["tokens"]) for e in finding.examples] == [
        ("val", 0, 42),
        ("data", 1, 22),
    ]
    assert finding.details["cut_texts"] == 2 and finding.details["share"] == 2 / 5
    assert finding.details["cut_tokens"] == (40 - 14) + (20 - 14)
    # The message is training's own (multihot.data.encoding.Cut.message).
    assert finding.message.startswith("2 of 5 texts are longer than max_length 16")
    assert "--long-text chunk" in finding.message
    chunked = cut_texts(data, val, tokenizer, Reading(16, "chunk", stride=4, max_chunks=8))
    assert_finds_nothing(chunked, "cut_texts")
    assert_finds_nothing(cut_texts(data, None, tokenizer, Reading(max_length=64)), "cut_texts")


# ------------------------------------------------------------------------------- label sets
def test_cardinality_gives_the_distribution_the_mean_and_the_texts_without_labels():
    labels = [["joy"], ["joy", "anger"], [], ["joy"], ["joy", "anger", "calm"], []]
    data = dataset([f"t {i}" for i in range(6)], labels)
    finding = cardinality(data)
    assert finding.count == 2 and finding.severity == "info"
    assert finding.details["distribution"] == {0: 2, 1: 2, 2: 1, 3: 1}
    assert finding.details["mean"] == pytest.approx(7 / 6)
    assert [e["row"] for e in finding.examples] == [2, 5]
    assert "mean 1.17" in finding.message and "2 texts have no label" in finding.message
    assert_one_line(finding)
    every_text_labelled = cardinality(clean())
    assert every_text_labelled.count == 0 and every_text_labelled.details["distribution"] == {1: 40}
    assert "no label" not in every_text_labelled.message


def test_label_pairs_that_always_or_never_come_together():
    # x and y always together (6 texts); a and b each on 40 of 80 texts, never together
    # (independence predicts 20); c only with a, but a also without c: not "always".
    labels = [["x", "y"]] * 6 + [["a"]] * 40 + [["b"]] * 34
    for i in range(10):
        labels[6 + i] = ["a", "c"]
    data = dataset([f"t {i}" for i in range(80)], labels)
    finding = label_pairs(data)
    assert finding.details["always"] == 1
    always = finding.examples[0]
    assert always == {
        "kind": "always",
        "labels": ["x", "y"],
        "counts": [6, 6],
        "together": 6,
        "expected": round(6 * 6 / 80, 1),
    }
    never = [e for e in finding.examples if e["kind"] == "never"]
    assert never[0]["labels"] == ["a", "b"] and never[0]["together"] == 0
    assert never[0]["expected"] == pytest.approx(40 * 34 / 80, abs=0.05)
    assert all(e["expected"] >= 5 for e in never)
    assert finding.count == finding.details["always"] + finding.details["never"]
    assert "1 label pair always comes together (first: 'x' and 'y', 6 texts)" in finding.message
    assert "1 label pair never comes together" in finding.message
    assert_one_line(finding)
    assert label_pairs(data, min_together=7).details["always"] == 0


def test_label_pairs_find_nothing_on_independent_labels():
    rng = np.random.default_rng(0)
    names = ["joy", "anger", "calm", "fear"]
    labels = [[n for n in names if rng.random() < 0.5] for _ in range(400)]
    data = dataset([f"t {i}" for i in range(400)], labels)
    assert_finds_nothing(label_pairs(data), "label_pairs")


def test_label_pairs_are_vectorised():
    rng = np.random.default_rng(0)
    names = [f"label{j}" for j in range(28)]
    labels = [[names[j] for j in rng.choice(28, size=2, replace=False)] for _ in range(43_000)]
    data = dataset([f"t {i}" for i in range(43_000)], labels)
    start = time.perf_counter()
    label_pairs(data)
    assert time.perf_counter() - start < 5  # one product of (28, n) by (n, 28)


def test_every_check_is_named_in_checks():
    assert all(callable(getattr(checks, name)) for name in CHECKS)


def test_the_audit_counts_what_training_warns_of(caplog):
    """The checks that run inside ``train`` too share their data-layer functions with it."""
    train = dataset(
        ["so happy", "So happy", "ugh", "meh", "fine", "x y z"],
        [["joy"], ["anger"], ["anger"], ["calm"], ["grief"], ["joy"]],
        "t.jsonl",
    )
    val = dataset(["so happy", "UGH", "new"], [["joy"], ["joy"], ["anger"]], "v.jsonl")
    with caplog.at_level(logging.WARNING, logger="multihot"):
        prepare_data(train, val, RunConfig())
    said = " ".join(r.getMessage() for r in caplog.records)
    exact = conflicting_duplicates(train, val).details["data"]["exact"]
    assert f"{exact} of them with other labels" in said
    assert f"{leakage(train, val).count} of 3 validation texts are also in" in said
    only_data = split_labels(train, val).details["only_data"]
    assert f"{len(only_data)} of 4 labels have training examples but none in validation" in said
    assert f"(first: {only_data[0]!r}" in said
