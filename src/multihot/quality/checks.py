"""The data checks of ``multihot audit``: what in DATA (and VAL) will cost a model or flatter its
scores, found without a model, each check a small function returning one :class:`Finding`.

The checks read the data as training does: one label set over both files
(:func:`multihot.data.prepare.label_set`), copies compared after the normalisation that keeps them
on one side of every split (:func:`multihot.data.duplicates.normalize_text`), texts read into ids
by the one texts -> ids step (:mod:`multihot.data.encoding`). Those that take seconds also run
inside ``train`` as one-line warnings, from the same data-layer functions
(:func:`~multihot.data.duplicates.find_duplicates`, :func:`~multihot.data.duplicates.find_shared`,
:func:`~multihot.data.prepare.absent_labels`).

Every example is a dict with ``row`` (0-based in its file), ``text`` and ``labels``, and ``file``
(``"data"`` or ``"val"``) where both files are checked; the label checks' examples name a
``label`` instead.

Example:
    >>> from multihot.data.readers import Dataset
    >>> data = Dataset(["so happy", "So happy!", "ugh"], [["joy"], ["anger"], []], "d.jsonl")
    >>> [(f.check, f.count) for f in run_checks(data, None, min_support=1)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('rare_labels', 2), ('conflicting_duplicates', 1), ('empty_texts', 0),
     ('cardinality', 1), ('label_pairs', 0)]
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

import numpy as np

from multihot.core.config import TrainConfig
from multihot.data.duplicates import (
    find_duplicates,
    find_shared,
    label_list,
    normalize_text,
    quote,
    same_labels,
)
from multihot.data.encoding import Cut, Reading, content_ids, special_affixes
from multihot.data.labels import KNOWN_COL
from multihot.data.prepare import absent_labels, label_set
from multihot.data.preprocess import prepare_texts
from multihot.data.readers import Dataset
from multihot.quality.findings import Finding

CHECKS = (
    "rare_labels",
    "split_labels",
    "conflicting_duplicates",
    "leakage",
    "empty_texts",
    "cut_texts",
    "cardinality",
    "label_pairs",
)
"""The data checks, in the order :func:`run_checks` runs them."""


def run_checks(
    data: Dataset,
    val: Dataset | None,
    *,
    tokenizer=None,
    reading: Reading | None = None,
    min_support: int = 5,
    examples: int = 5,
    val_fraction: float | None = None,
) -> list[Finding]:
    """Every data check on DATA (and VAL), one :class:`Finding` each, in :data:`CHECKS` order.

    ``split_labels`` and ``leakage`` compare two files and run only with ``val``; ``cut_texts``
    runs only with a ``tokenizer``. A check that finds nothing gives a finding of count 0.

    Args:
        data: the training data.
        val: the validation data, or None (training then holds out ``val_fraction`` of DATA).
        tokenizer: the encoder's tokenizer, to count the texts ``reading`` cuts.
        reading: how the run reads a text (default: :class:`Reading`'s defaults).
        min_support: the positives a label needs to get a threshold of its own
            (:attr:`multihot.core.config.TrainConfig.min_support`).
        examples: the most examples a finding carries (per kind, where it has kinds).
        val_fraction: the share of DATA held out without ``val``
            (default: :attr:`~multihot.core.config.TrainConfig.val_fraction`'s).

    Example:
        >>> data = Dataset(["so happy", "ugh"], [["joy"], []], "d.jsonl")
        >>> [f.check for f in run_checks(data, data)][:4]
        ['rare_labels', 'split_labels', 'conflicting_duplicates', 'leakage']
    """
    findings = [
        rare_labels(
            data, val, min_support=min_support, val_fraction=val_fraction, examples=examples
        )
    ]
    if val is not None:
        findings.append(split_labels(data, val, examples=examples))
    findings.append(conflicting_duplicates(data, val, examples=examples))
    if val is not None:
        findings.append(leakage(data, val, examples=examples))
    findings.append(empty_texts(data, val, examples=examples))
    if tokenizer is not None:
        findings.append(cut_texts(data, val, tokenizer, reading, examples=examples))
    findings.append(cardinality(data, examples=examples))
    findings.append(label_pairs(data, examples=examples))
    return findings


# ------------------------------------------------------------------------------------ labels
def rare_labels(
    data: Dataset,
    val: Dataset | None = None,
    *,
    min_support: int = 5,
    val_fraction: float | None = None,
    examples: int = 5,
) -> Finding:
    """Labels with fewer than ``min_support`` examples in DATA, or in validation: VAL, or without
    it the ``val_fraction`` of DATA that training holds out (about ``count * val_fraction`` of a
    label's examples).

    With per-label thresholds (the default), threshold tuning gives a label with fewer than
    ``min_support`` validation positives the global threshold (tuned over all labels) instead of
    its own (:func:`multihot.scoring.thresholds.tune_thresholds`), and calibration pools it with
    the other such labels; a label with few training examples is barely learned.

    Examples (fewest first): ``{"label", "data", "val"}``, ``val`` being the expected held-out
    count without VAL. ``details["support"]`` gives those counts for every label. With partial
    labels the counts are of the texts labelled for the label, and ``data_known`` (``val_known``)
    says how many those are.

    Example:
        >>> data = Dataset(["a", "b", "c"], [["joy"], ["joy"], ["anger"]], "d.jsonl")
        >>> rare_labels(data, data, min_support=2).examples
        [{'label': 'anger', 'data': 1, 'val': 1}]
    """
    names, targets, val_targets = _encode(data, val)
    known, val_known = _known(data, val)
    in_data = targets.sum(axis=0).astype(np.int64)  # unknown pairs are 0: known positives
    if val_targets is not None:
        in_val: np.ndarray = val_targets.sum(axis=0).astype(np.int64)
        where = "VAL"
    else:
        fraction = TrainConfig.val_fraction if val_fraction is None else val_fraction
        in_val = np.round(in_data * fraction, 1)
        needed = int(np.ceil(min_support / fraction))
        where = f"the {fraction:.0%} of DATA held out for validation (under {needed} in DATA)"
    rare = np.flatnonzero((in_data < min_support) | (in_val < min_support))
    rare = rare[np.lexsort((rare, in_data[rare], np.minimum(in_data, in_val)[rare]))]

    def counts(j: int) -> dict[str, Any]:
        found = {"data": int(in_data[j]), "val": in_val[j].item()}
        if known is not None:
            found["data_known"] = int(known[:, j].sum())
        if val_known is not None:
            found["val_known"] = int(val_known[:, j].sum())
        return found

    found = [{"label": names[j], **counts(j)} for j in rare.tolist()]
    details = {"min_support": min_support, "support": {n: counts(j) for j, n in enumerate(names)}}
    if not found:
        message = (
            f"every label has at least {min_support} (min_support) examples in DATA and {where}"
        )
        return Finding("rare_labels", "info", message, 0, [], details)
    first = found[0]
    in_validation = f"{first['val']:g} {'in VAL' if val is not None else 'expected held out'}"
    if "val_known" in first:
        in_validation += f" of {first['val_known']} known"
    in_data_text = f"{first['data']} in DATA" + (
        f" of {first['data_known']} known" if "data_known" in first else ""
    )
    message = (
        f"{len(found)} of {len(names)} labels have fewer than {min_support} (min_support) "
        f"examples in DATA or in {where} (fewest: {first['label']!r}, {in_data_text}, "
        f"{in_validation}): with per-label thresholds those under {min_support} in "
        "validation take the global threshold, and the model learns little from so few; label "
        "more examples of them"
    )
    return Finding("rare_labels", "warning", message, len(found), found[:examples], details)


def split_labels(data: Dataset, val: Dataset, *, examples: int = 5) -> Finding:
    """Labels with examples in one file and none in the other. One absent from VAL gets no
    threshold tuned on it and a validation F1 of 0 (lowering macro F1); one absent from DATA is
    never learned. ``multihot train`` warns of the first kind
    (:func:`multihot.data.prepare.warn_absent_from_validation`).

    Examples (most examples first, DATA's then VAL's): ``{"label", "data", "val"}``, and with
    partial labels ``data_known`` and ``val_known``, the texts of each file labelled for it.

    Example:
        >>> data = Dataset(["a", "b"], [["joy"], ["anger"]], "d.jsonl")
        >>> split_labels(data, Dataset(["c"], [["joy"]], "v.jsonl")).examples
        [{'label': 'anger', 'data': 1, 'val': 0}]
    """
    names, targets, val_targets = _encode(data, val)
    assert val_targets is not None
    only_data = absent_labels(names, targets, val_targets)
    only_val = absent_labels(names, val_targets, targets)
    found = [{"label": name, "data": n, "val": 0} for name, n in only_data]
    found += [{"label": name, "data": 0, "val": n} for name, n in only_val]
    known, val_known = _known(data, val)
    if known is not None or val_known is not None:
        index = {name: j for j, name in enumerate(names)}
        for example in found:
            j = index[str(example["label"])]
            example["data_known"] = len(data) if known is None else int(known[:, j].sum())
            example["val_known"] = len(val) if val_known is None else int(val_known[:, j].sum())
    details = {"only_data": [n for n, _ in only_data], "only_val": [n for n, _ in only_val]}
    if not found:
        message = "every label has examples in both DATA and VAL"
        return Finding("split_labels", "info", message, 0, [], details)
    parts = []
    if only_data:
        (name, n), more = only_data[0], len(only_data)
        parts.append(f"{more} have examples in DATA and none in VAL (first: {name!r}, {n})")
    if only_val:
        (name, n), more = only_val[0], len(only_val)
        parts.append(f"{more} have examples in VAL and none in DATA (first: {name!r}, {n})")
    message = (
        f"{len(found)} of {len(names)} labels are in one file only: {'; '.join(parts)}; no "
        "threshold is tuned for a label missing from VAL and its F1 there is 0, and one missing "
        "from DATA is never learned; move some of their examples across"
    )
    return Finding("split_labels", "warning", message, len(found), found[:examples], details)


# ------------------------------------------------------------------------------------- texts
def near_text(text: str) -> str:
    """The text as near copies are compared: case folded, accents dropped (NFKD), and only its
    letters, numbers and emoji and other pictographs kept (Unicode classes L, N and So; no
    punctuation, spaces or other symbols), every run of digits read as ``0``.

    Stronger than :func:`multihot.data.duplicates.normalize_text`: texts equal there are equal
    here.

    Example:
        >>> near_text("Thank you!!! 10/10") == near_text("thankyou... 9/10") == "thankyou0"
        True
    """
    kept = unicodedata.normalize("NFKD", text.casefold()).translate(_NEAR_TABLE)
    return _DIGITS.sub("0", kept)


class _NearTable(dict):
    """``str.translate``'s table for :func:`near_text`, filled in per character on first sight."""

    def __missing__(self, code: int) -> str | None:
        kind = unicodedata.category(chr(code))
        value = "0" if kind[0] == "N" else chr(code) if kind[0] == "L" or kind == "So" else None
        self[code] = value
        return value


_NEAR_TABLE = _NearTable()
_DIGITS = re.compile("0+")


def _near_key(text: str) -> str:
    """:func:`near_text`, or for a text with nothing it keeps (``"!!!"``, ``"..."``), the exact
    key, which holds punctuation and so meets no near key: such texts are not near copies of
    each other."""
    return near_text(text) or normalize_text(text)


def conflicting_duplicates(
    data: Dataset, val: Dataset | None = None, *, examples: int = 5
) -> Finding:
    """Texts that repeat an earlier text of their file with other labels: exact copies (after
    :func:`~multihot.data.duplicates.normalize_text`, as ``multihot train`` counts them) and near
    copies (after :func:`near_text`: differing only in punctuation, spacing, symbols other than
    emoji, accents or digits). The row counted is the later copy; one of the two label sets is
    wrong. With partial labels two copies conflict only on labels both were labelled for.
    Hashing, one pass over each file.

    Examples (exact copies first, then by row): the later row (``row``, ``text``, ``labels``),
    the row it repeats (``other_row``, ``other_text``, ``other_labels``) and ``kind``
    (``exact`` or ``near``).

    Example:
        >>> data = Dataset(["so happy", "So happy!", "ugh"], [["joy"], ["anger"], []], "d.jsonl")
        >>> f = conflicting_duplicates(data)
        >>> f.count, f.examples[0]["kind"], f.examples[0]["other_labels"]
        (1, 'near', ['joy'])
    """
    _, targets, val_targets = _encode(data, val)
    known, val_known = _known(data, val)
    files = [("data", data, targets, known)]
    if val is not None and val_targets is not None:
        files.append(("val", val, val_targets, val_known))
    found: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    for file, dataset, file_targets, file_known in files:
        exact = find_duplicates(dataset.texts, file_targets, known=file_known)
        near = find_duplicates(dataset.texts, file_targets, key=_near_key, known=file_known)
        exact_rows = set(exact.conflicts.tolist())
        near_rows = [row for row in near.conflicts.tolist() if row not in exact_rows]
        details[file] = {"exact": len(exact_rows), "near": len(near_rows)}
        for kind, dups, rows in (("exact", exact, sorted(exact_rows)), ("near", near, near_rows)):
            for row in rows:
                other = int(dups.firsts[dups.groups[row]])
                pair = {**_row(dataset, row), **_row(dataset, other, prefix="other_")}
                found.append({"kind": kind, **pair} | ({"file": file} if val is not None else {}))
    exact_count = sum(d["exact"] for d in details.values())
    near_count = sum(d["near"] for d in details.values())
    if not found:
        message = "no text repeats an earlier one with other labels, exactly or nearly"
        return Finding("conflicting_duplicates", "info", message, 0, [], details)
    found.sort(key=lambda e: (e["kind"] != "exact", e.get("file") == "val", e["row"]))
    first = found[0]
    message = (
        f"{_many(len(found), 'text repeats', 'texts repeat')} an earlier one with other labels "
        f"({_many(exact_count, 'exact copy', 'exact copies')} after whitespace and case, "
        f"{near_count} differing only in punctuation, symbols or "
        f"digits; first: {quote(first['text'])}, {label_list(first['labels'])} against "
        f"{label_list(first['other_labels'])}): one label set of each pair is wrong; label the "
        "copies alike or drop one"
    )
    return Finding(
        "conflicting_duplicates", "warning", message, len(found), found[:examples], details
    )


def leakage(data: Dataset, val: Dataset, *, examples: int = 5) -> Finding:
    """VAL texts that are also in DATA, compared after
    :func:`~multihot.data.duplicates.normalize_text` (as ``multihot train`` warns of them): the
    model is scored on texts it trained on. Of those, ``details["with_other_labels"]`` counts
    the copies labelled otherwise (with partial labels, on the labels both were labelled for).

    Examples (in VAL's order): the VAL row (``file``, ``row``, ``text``, ``labels``) and the
    first DATA row with that text (``other_file``, ``other_row``, ``other_text``,
    ``other_labels``).

    Example:
        >>> data = Dataset(["so happy", "ugh"], [["joy"], []], "d.jsonl")
        >>> f = leakage(data, Dataset(["meh", "So  happy"], [[], ["joy"]], "v.jsonl"))
        >>> f.count, f.examples[0]["row"], f.examples[0]["other_row"]
        (1, 1, 0)
    """
    shared = find_shared(data.texts, val.texts)
    relabelled = sum(
        not same_labels(val.labels[v], data.labels[d], _known_of(val, v), _known_of(data, d))
        for v, d in shared
    )
    details = {"share": len(shared) / len(val), "with_other_labels": relabelled}
    if not shared:
        message = "no VAL text is also in DATA (after whitespace and case normalisation)"
        return Finding("leakage", "info", message, 0, [], details)
    found = [
        {"file": "val", **_row(val, v), "other_file": "data", **_row(data, d, prefix="other_")}
        for v, d in shared[:examples]
    ]
    message = (
        f"{len(shared)} of {len(val)} VAL texts are also in DATA (after whitespace and case "
        f"normalisation; {relabelled} of them with other labels; first: "
        f"{quote(val.texts[shared[0][0]])}): the validation scores flatter the model; drop them "
        "from one of the files"
    )
    return Finding("leakage", "warning", message, len(shared), found, details)


def content_chars(text: str, enough: int | None = None) -> int:
    """The letters, numbers and emoji and other pictographs in ``text`` (Unicode classes L, N and
    So), counting no further than ``enough`` when it is given.

    Example:
        >>> content_chars("ok!! 👍"), content_chars("...")
        (3, 0)
    """
    count = 0
    for char in text:
        kind = unicodedata.category(char)
        if kind[0] in "LN" or kind == "So":
            count += 1
            if count == enough:
                break
    return count


def empty_texts(
    data: Dataset, val: Dataset | None = None, *, min_chars: int = 3, examples: int = 5
) -> Finding:
    """Texts with fewer than ``min_chars`` letters, numbers or emoji (:func:`content_chars`):
    punctuation alone, ``ok``, a lone emoji. Empty texts never get this far: reading refuses
    them (:func:`multihot.data.encoding.is_empty_text`).

    Examples (by file, then row): ``{"row", "text", "labels"}`` (and ``file`` with VAL).

    Example:
        >>> data = Dataset(["so happy", "ok", "?!"], [["joy"], [], ["anger"]], "d.jsonl")
        >>> [e["text"] for e in empty_texts(data).examples]
        ['ok', '?!']
    """
    files = [("data", data)] + ([("val", val)] if val is not None else [])
    found = [
        _row(dataset, row) | ({"file": file} if val is not None else {})
        for file, dataset in files
        for row, text in enumerate(dataset.texts)
        if content_chars(text, min_chars) < min_chars
    ]
    details = {"min_chars": min_chars}
    if not found:
        message = f"every text has at least {min_chars} letters, digits or emoji"
        return Finding("empty_texts", "info", message, 0, [], details)
    message = (
        f"{_many(len(found), 'text has', 'texts have')} fewer than {min_chars} letters, digits or "
        "emoji (first: "
        f"{quote(found[0]['text'])}): little to tell labels from; check their labels or drop them"
    )
    return Finding("empty_texts", "info", message, len(found), found[:examples], details)


def cut_texts(
    data: Dataset,
    val: Dataset | None,
    tokenizer,
    reading: Reading | None = None,
    *,
    examples: int = 5,
) -> Finding:
    """Texts of DATA and VAL longer than ``reading`` reads with ``tokenizer``, counted as
    training counts them (:class:`multihot.data.encoding.Cut`; its message is the finding's).

    Examples (longest first): ``{"row", "text", "labels", "tokens"}`` (and ``file`` with VAL),
    ``tokens`` being the whole text's, special tokens included. ``details`` holds the
    :class:`Cut`'s counts and the share of texts cut.
    """
    reading = Reading() if reading is None else reading
    files = [("data", data)] + ([("val", val)] if val is not None else [])
    rows = [(file, dataset, row) for file, dataset in files for row in range(len(dataset))]
    texts = prepare_texts([d.texts[row] for _, d, row in rows], reading.preprocess)
    lengths = [len(ids) for ids in content_ids(tokenizer, texts)]
    specials = sum(map(len, special_affixes(tokenizer)))
    cut = Cut.of(lengths, specials, reading)
    details = {
        "max_length": reading.max_length,
        "long_text": reading.long_text,
        "texts": cut.texts,
        "cut_texts": cut.cut_texts,
        "share": cut.cut_texts / max(1, cut.texts),
        "tokens": cut.tokens,
        "cut_tokens": cut.cut_tokens,
    }
    message = cut.message(reading)
    if message is None:
        message = f"every text is read whole at max_length {reading.max_length}"
        return Finding("cut_texts", "info", message, 0, [], details)
    capacity = reading.capacity(specials)
    longest = sorted((-n, i) for i, n in enumerate(lengths) if n > capacity)[:examples]
    found = []
    for negative, i in longest:
        file, dataset, row = rows[i]
        extra = {"tokens": specials - negative} | ({"file": file} if val is not None else {})
        found.append(_row(dataset, row) | extra)
    return Finding("cut_texts", "warning", message, cut.cut_texts, found, details)


# ------------------------------------------------------------------------------- label sets
def cardinality(data: Dataset, *, examples: int = 5) -> Finding:
    """How many labels DATA's texts have: the distribution (``details["distribution"]``,
    ``{labels per text: texts}``), the mean, and the texts with no label (the count; they
    teach every label's "no").

    Examples: the texts with no label, ``{"row", "text", "labels"}``.

    With partial labels, a text labelled for no label at all teaches nothing and is left out
    (``details["labelled_for_none"]``), a text with no label teaches "no" only for the labels it
    was labelled for, and ``details["partial"]`` counts the texts labelled for some labels only.

    Example:
        >>> data = Dataset(["a", "b", "c"], [["joy"], ["joy", "anger"], []], "d.jsonl")
        >>> f = cardinality(data)
        >>> f.count, f.details["distribution"], f.details["mean"]
        (1, {0: 1, 1: 1, 2: 1}, 1.0)
    """
    rows = [row for row in range(len(data)) if _known_of(data, row) != []]
    per_text = Counter(len(set(data.labels[row])) for row in rows)
    distribution = {k: per_text[k] for k in sorted(per_text)}
    mean = sum(k * n for k, n in per_text.items()) / max(1, len(rows))
    unlabelled = [row for row in rows if not data.labels[row]]
    found = [_row(data, row) for row in unlabelled[:examples]]
    details = {"distribution": distribution, "mean": mean, "no_label": len(unlabelled)}
    shown = ", ".join(f"{n} with {k}" for k, n in distribution.items())
    message = f"labels per text: mean {mean:.2f} (texts: {shown})"
    if data.known is not None:
        partial, none = sum(known is not None for known in data.known), len(data) - len(rows)
        details |= {"partial": partial, "labelled_for_none": none}
        message += f"; {_many(partial, 'text is', 'texts are')} labelled for some labels only"
        if none:
            message += f" ({none} for none, left out)"
    if unlabelled:
        teaches = "every label" if data.known is None else "every label it was labelled for"
        message += (
            f"; {_many(len(unlabelled), 'text has', 'texts have')} no label (first: "
            f"{quote(data.texts[unlabelled[0]])})"
            f", which teaches {teaches} 'no': check none was forgotten"
        )
    return Finding("cardinality", "info", message, len(unlabelled), found, details)


def label_pairs(
    data: Dataset,
    *,
    min_together: int = 3,
    min_expected: float = 5.0,
    examples: int = 5,
) -> Finding:
    """Pairs of labels that always come together in DATA (each has no example without the other,
    and they share at least ``min_together``) and pairs that never do although independence
    predicts at least ``min_expected`` texts with both (``count_a * count_b / texts``).

    A pair that always comes together is one label to a model; one that never does may be a rule
    of the labelling guide, or a sign that annotators pick one label where two apply.

    Examples, up to ``examples`` of each kind (always: most shared first; never: most expected
    first): ``{"kind", "labels": [a, b], "counts": [count_a, count_b], "together",
    "expected"}``.

    With partial labels a pair is judged on the texts labelled for both labels: ``counts`` are
    each label's examples among them, ``expected`` is ``count_a * count_b`` over their number,
    and the examples say that number (``known``).

    Example:
        >>> data = Dataset(list("abcd"), [["x", "y"]] * 3 + [["z"]], "d.jsonl")
        >>> [(e["kind"], e["labels"]) for e in label_pairs(data).examples]
        [('always', ['x', 'y'])]
    """
    names, targets, _ = _encode(data, None)
    known, _ = _known(data, None)
    # (num_labels, num_labels): texts with both labels; float32 counts exactly up to 2**24 texts
    together = (targets.T @ targets).astype(np.int64)
    if known is None:
        counts = np.broadcast_to(np.diag(together)[:, None], together.shape)
        both = np.full(together.shape, max(1, len(data)), dtype=np.int64)
    else:
        mask = known.astype(np.float32)
        # [a, b]: a's examples among the texts labelled for b (a positive is known for a)
        counts = (targets.T @ mask).astype(np.int64)
        both = (mask.T @ mask).astype(np.int64)  # texts labelled for both
    expected = counts * counts.T / np.maximum(both, 1)
    upper = np.triu(np.ones_like(together, dtype=bool), k=1)
    always = upper & (together == counts) & (together == counts.T)
    always &= together >= min_together
    never = upper & (together == 0) & (expected >= min_expected)

    def pairs(mask: np.ndarray, kind: str, order: np.ndarray) -> list[dict[str, Any]]:
        a, b = np.nonzero(mask)
        ranked = np.lexsort((b, a, -order[a, b]))
        return [
            {
                "kind": kind,
                "labels": [names[i], names[j]],
                "counts": [int(counts[i, j]), int(counts[j, i])],
                "together": int(together[i, j]),
                "expected": round(float(expected[i, j]), 1),
            }
            | ({} if known is None else {"known": int(both[i, j])})
            for i, j in zip(a[ranked].tolist(), b[ranked].tolist(), strict=True)
        ]

    always_pairs, never_pairs = pairs(always, "always", together), pairs(never, "never", expected)
    count = len(always_pairs) + len(never_pairs)
    details: dict[str, Any] = {"always": len(always_pairs), "never": len(never_pairs)}
    details |= {"min_together": min_together, "min_expected": min_expected}
    found = always_pairs[:examples] + never_pairs[:examples]
    if not count:
        message = "no two labels always come together or never do against the odds"
        return Finding("label_pairs", "info", message, 0, [], details)
    parts = []
    if always_pairs:
        (a, b), n = always_pairs[0]["labels"], always_pairs[0]["together"]
        of = _of_known(always_pairs[0])
        parts.append(
            f"{_many(len(always_pairs), 'label pair always comes', 'label pairs always come')} together (first: {a!r} and {b!r}, {n} texts{of}),"
            " one label to a model: merge them or label the cases apart"
        )
    if never_pairs:
        (a, b), e = never_pairs[0]["labels"], never_pairs[0]["expected"]
        of = _of_known(never_pairs[0], "among")
        parts.append(
            f"{_many(len(never_pairs), 'label pair never comes', 'label pairs never come')} together although chance predicts {min_expected:g} or more "
            f"(first: {a!r} and {b!r}, {e:g} expected{of}): check the labelling guide allows both"
        )
    return Finding("label_pairs", "info", "; ".join(parts), count, found, details)


# ------------------------------------------------------------------------------------ helpers
def _encode(data: Dataset, val: Dataset | None) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """The label names of a run on these data and the targets of each file over them."""
    labels = label_set(data, val)
    targets = labels.encode(data.labels, data.source)
    val_targets = labels.encode(val.labels, val.source) if val is not None else None
    return labels.names, targets, val_targets


def _known(data: Dataset, val: Dataset | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Partial labels: each file's ``(n, num_labels)`` bool mask of the labelled pairs over the
    labels of :func:`_encode`, None for a file whose every pair is known."""
    labels = label_set(data, val)
    known = labels.encode_known(data.known, data.source)
    val_known = labels.encode_known(val.known, val.source) if val is not None else None
    return known, val_known


def _known_of(dataset: Dataset, row: int) -> list[str] | None:
    """The labels a row was labelled for (partial labels), None for all of them."""
    return None if dataset.known is None else dataset.known[row]


def _row(dataset: Dataset, row: int, prefix: str = "") -> dict[str, Any]:
    """An example row: its 0-based position, its text and its labels, and with partial labels
    the labels it was labelled for (``labels_known``) when those are not all."""
    fields = {"row": row, "text": dataset.texts[row], "labels": list(dataset.labels[row])}
    known = _known_of(dataset, row)
    if known is not None:
        fields[KNOWN_COL] = list(known)
    return {prefix + key: value for key, value in fields.items()}


def _of_known(pair: dict[str, Any], word: str = "of") -> str:
    """`` of N labelled for both`` for a label pair's example with partial labels, else ``""``."""
    return f" {word} {pair['known']} labelled for both" if "known" in pair else ""


def _many(count: int, one: str, more: str) -> str:
    """``count`` and the words that agree with it: ``1 text has``, ``2 texts have``."""
    return f"{count} {one if count == 1 else more}"
