"""Do explanations point at what the model reads? The deletion check over many GoEmotions texts.

For each text and each label that fires, ``Classifier.explain`` ranks the tokens; deleting the
top-k of them should lower the label's probability more than deleting k random tokens (mean of
10 draws). This prints how often that held and the mean drops, per method.

    python benchmarks/explain_check.py runs/minilm                      # the run's own method
    python benchmarks/explain_check.py runs/minilm --method integrated-gradients --texts 100

Texts come from dev (``--split``), the first N in file order.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import (
    DEFAULT_DATA,
    describe_machine,
    load_goemotions,
    machine_line,
    serial_tokenizers,
    table,
    write_json,
)

from multihot import Classifier


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a run directory")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--split", default="dev", help="dev (default) or test")
    parser.add_argument("--texts", type=int, default=200, help="texts to explain (200)")
    parser.add_argument(
        "--method", default="auto", help="auto, label-attention, integrated-gradients"
    )
    parser.add_argument("--top-k", type=int, default=3, help="tokens deleted (3)")
    parser.add_argument("--steps", type=int, default=32, help="integration steps (32)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    serial_tokenizers()
    print(machine_line(describe_machine()))

    clf = Classifier.load(args.run)
    texts = load_goemotions(args.data, args.split)[0].texts[: args.texts]
    started = time.perf_counter()
    entries = []
    for text in texts:
        explanation = clf.explain(text, top_k=args.top_k, method=args.method, n_steps=args.steps)
        entries += [e for e in explanation.labels if e.fired and e.check is not None]
    seconds = time.perf_counter() - started
    if not entries:
        raise SystemExit("no label fired on these texts")
    held = np.array([e.check.held for e in entries])
    top, rand = (
        np.array([getattr(e.check, k) for e in entries]) for k in ("drop_top_k", "drop_random")
    )
    method = entries[0].method
    print(
        f"run {args.run}; {len(texts)} {args.split} texts, {len(entries)} fired labels; "
        f"{method}, top-{args.top_k}; {seconds:.0f} s ({seconds / len(texts):.2f} s per text)"
    )
    print(
        table(
            [
                "method",
                "fired labels checked",
                "check held",
                "mean prob drop, top-k deleted",
                "mean prob drop, k random deleted (10 draws)",
            ],
            [
                [
                    method,
                    len(entries),
                    f"{held.mean():.1%}",
                    f"{top.mean():.3f}",
                    f"{rand.mean():.3f}",
                ]
            ],
        )
    )
    if args.json:
        write_json(
            args.json,
            {
                "run": str(args.run),
                "method": method,
                "texts": len(texts),
                "checked": len(entries),
                "held": float(held.mean()),
                "drop_top_k": float(top.mean()),
                "drop_random": float(rand.mean()),
                "seconds": seconds,
            },
        )


if __name__ == "__main__":
    main()
