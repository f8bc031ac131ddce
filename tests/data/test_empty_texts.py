"""What counts as no text: whitespace, and also zero-width characters, NUL, U+FEFF and combining
marks on their own, alike in training data, prediction input and texts given to predict; and a
text with a lone surrogate, refused by the one check of texts given for prediction."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from multihot.core.errors import DataError, MultihotError
from multihot.data.encoding import check_texts, is_empty_text
from multihot.data.readers import Dataset, iter_text_batches, read_dataset

NO_TEXT = {
    "empty": "",
    "whitespace": " \t\u3000",
    "zero-width space": "\u200b",
    "zero-width joiners": "\u200d\u200c",
    "nul": "\x00",
    "bom": "\ufeff",
    "combining marks": "\u0301\u0302",
    "enclosing mark": "\u20dd",
    "line and paragraph separators": "\u2028\u2029",
    "soft hyphen and bidi marks": "\u00ad\u200e\u2066",
    "variation selector": "\ufe0f",
    "mixed": " \u200b\x00\ufeff\u0301 ",
    "private use": "\ue000",
    "spacing mark alone": "\u0903",
    "unassigned and a control": "\U0009269c\x10",  # schemathesis's ST201 case (seed 5)
}
TEXT = {
    "letter": "a",
    "accented": "e\u0301",
    "emoji": "\u2764\ufe0f",
    "spacing mark on a letter": "\u0915\u0903",
    "digit among zero-width": "\u200b1\u200b",
    "lone surrogate": "\ud800",
}


@pytest.mark.parametrize("text", NO_TEXT.values(), ids=NO_TEXT.keys())
def test_no_text(text):
    assert is_empty_text(text)


@pytest.mark.parametrize("text", TEXT.values(), ids=TEXT.keys())
def test_text(text):
    assert not is_empty_text(text)


@pytest.mark.parametrize("text", NO_TEXT.values(), ids=NO_TEXT.keys())
def test_prediction_refuses_no_text_as_it_refuses_whitespace(text):
    with pytest.raises(MultihotError, match=r"^text 2: empty text; expected at least one letter"):
        check_texts(["so happy", text])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("text", ["   ", "\u200b", "\x00", "\ufeff", "\u0301"])
def test_training_data_names_the_row_as_for_whitespace(tmp_path, fmt, text):
    path = tmp_path / f"d.{fmt}"
    frame = pd.DataFrame({"text": ["hi", text], "labels": ["joy", "joy"]})
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    else:
        frame.to_parquet(path)
    with pytest.raises(DataError, match=r": row 2: column 'text': empty text$"):
        read_dataset(path)
    with pytest.raises(DataError, match=r": row 2: "):
        Dataset(["hi", text], [["joy"], ["joy"]], source="mem")


def test_a_txt_line_of_no_text_is_a_blank_line(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("one\n\u200b\n\n\ufeff\u0301\ntwo\n \x00 \n", encoding="utf-8")
    assert [t for batch in iter_text_batches(path) for t in batch] == ["one", "two"]


@pytest.mark.parametrize(
    ("text", "at"),
    [("\udcff\udcfe bad", 1), ("ok \ud800", 4), ("\u200b\udc80", 2), ("\udcff", 1)],
)
def test_a_lone_surrogate_is_refused_with_its_text_and_position(text, at):
    with pytest.raises(MultihotError) as err:
        check_texts(["fine", text])
    bad = text[at - 1]
    assert str(err.value) == (
        f"text 2: not valid Unicode: lone surrogate {bad!r} at character {at}; expected UTF-8 text"
    )


def test_valid_non_ascii_texts_pass():
    texts = ["h\u00e9llo", "\U0001f600 great", "\u65e5\u672c\u8a9e"]
    assert check_texts(texts) == texts
