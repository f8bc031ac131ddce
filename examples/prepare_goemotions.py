"""Convert the GoEmotions TSV release to multihot's JSON Lines format.

Reads ``SRC_DIR/{train,dev,test}.tsv`` and ``SRC_DIR/labels.txt`` and writes
``OUT_DIR/{train,dev,test}.jsonl``, one ``{"text": ..., "labels": [names]}`` object per line.
With ``--sample`` it writes a seeded random sample of each split instead (rows keep their
original order); this is how ``examples/goemotions/`` was made:

    PYTHONPATH=src python examples/prepare_goemotions.py ../shared/data/goemotions \\
        examples/goemotions --sample 4000 500 500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from multihot.core.errors import MultihotError
from multihot.data.readers import Dataset, read_goemotions

SPLITS = ("train", "dev", "test")


def sample(data: Dataset, size: int, seed: int) -> Dataset:
    """``size`` rows drawn without replacement, kept in file order; all rows if there are fewer."""
    if size >= len(data):
        return data
    rng = np.random.default_rng(seed)
    return data.subset(np.sort(rng.choice(len(data), size=size, replace=False)))


def write_jsonl(data: Dataset, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for text, labels in zip(data.texts, data.labels, strict=True):
            f.write(json.dumps({"text": text, "labels": labels}, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src_dir", type=Path, help="folder with train/dev/test.tsv and labels.txt")
    parser.add_argument("out_dir", type=Path, help="folder for train/dev/test.jsonl")
    parser.add_argument(
        "--sample",
        nargs=3,
        type=int,
        metavar=("N_TRAIN", "N_DEV", "N_TEST"),
        help="write a random sample of this many rows per split instead of all rows",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    args = parser.parse_args(argv)

    labels_txt = args.src_dir / "labels.txt"
    if not labels_txt.is_file():
        sys.exit(f"error: {labels_txt}: no such file")
    names = [line.strip() for line in labels_txt.read_text(encoding="utf-8").splitlines()]
    names = [name for name in names if name]
    # Read every split before writing any, so bad input leaves no half-written output.
    try:
        splits = [read_goemotions(args.src_dir / f"{split}.tsv", names) for split in SPLITS]
    except MultihotError as e:
        sys.exit(f"error: {e}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for k, (split, data) in enumerate(zip(SPLITS, splits, strict=True)):
        if args.sample:
            # One seed per split, so changing one size leaves the other samples as they were.
            data = sample(data, args.sample[k], args.seed + k)
        write_jsonl(data, args.out_dir / f"{split}.jsonl")
        print(f"{args.out_dir / f'{split}.jsonl'}: {len(data)} rows")


if __name__ == "__main__":
    main()
