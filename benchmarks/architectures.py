"""The founding design's choices, measured: how to turn a pretrained BERT's token states into many
independent yes/no decisions, on GoEmotions with the packaged all-MiniLM-L6-v2 (``--encoder minilm``).

Every variant is the same run but for its pooling and head: trained on train.tsv for ``--epochs``,
its best evaluation chosen and its thresholds tuned on dev.tsv. Dev macro F1 is what picks the
default pooling for pretrained encoders; each variant's test figures are read once, after it is
trained, for the table (no choice is made on them).

    python benchmarks/architectures.py                      # all seven, 1 epoch each (~35 min, 2 cores)
    python benchmarks/architectures.py --variants mean,cls  # some of them
    python benchmarks/architectures.py --rows 4000 --epochs 1 --dev-rows 500   # a smoke run

The variants: the founding question's three,
  (1) pooled [CLS] output (BERT's pooler: [CLS] state, dense, tanh) + linear + sigmoid;
  (2) pooled output + FC 256 + ReLU + linear;
  (3) attention pooling over the token states + FC 256 + ReLU + linear;
and multihot's other poolings with a linear head: cls (the bare [CLS] state), mean, max and
label-attention (one attention query per label).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    DEFAULT_DATA,
    describe_machine,
    load_goemotions,
    machine_line,
    serial_tokenizers,
    setup_logging,
    subset,
    table,
    write_json,
)

from multihot import Classifier

VARIANTS: dict[str, dict] = {
    "(1) pooler + linear": {"pooling": "pooler", "head": "linear"},
    "(2) pooler + FC 256 + ReLU": {"pooling": "pooler", "head": "mlp", "head_activation": "relu"},
    "(3) attention + FC 256 + ReLU": {
        "pooling": "attention",
        "head": "mlp",
        "head_activation": "relu",
    },
    "cls + linear": {"pooling": "cls", "head": "linear"},
    "mean + linear": {"pooling": "mean", "head": "linear"},
    "max + linear": {"pooling": "max", "head": "linear"},
    "label-attention + linear": {"pooling": "label-attention", "head": "linear"},
}
SHORT = {
    "1": "(1) pooler + linear",
    "2": "(2) pooler + FC 256 + ReLU",
    "3": "(3) attention + FC 256 + ReLU",
    "cls": "cls + linear",
    "mean": "mean + linear",
    "max": "max + linear",
    "label-attention": "label-attention + linear",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--encoder", default="minilm", help="pretrained encoder (default: minilm)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per variant (default: 1)")
    parser.add_argument(
        "--variants",
        default=",".join(SHORT),
        help=f"comma-separated, of {', '.join(SHORT)} (default: all)",
    )
    parser.add_argument("--rows", type=int, help="train on a random subset of this many rows")
    parser.add_argument("--dev-rows", type=int, help="a random subset of dev and test, this size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--flags", default="{}", help="more Classifier.train flags, as JSON")
    parser.add_argument("--json", type=Path, help="write the results here (after each variant)")
    args = parser.parse_args()
    serial_tokenizers()
    setup_logging("multihot.training.session")

    names = [SHORT[v.strip()] for v in args.variants.split(",") if v.strip()]
    common = {
        "encoder": args.encoder,
        "epochs": args.epochs,
        "seed": args.seed,
        "compare_baseline": False,
    }
    common.update(json.loads(args.flags))
    train, labels = load_goemotions(args.data, "train")
    dev, _ = load_goemotions(args.data, "dev")
    test, _ = load_goemotions(args.data, "test")
    rng = np.random.default_rng(0)
    if args.rows:
        train = subset(train, args.rows, rng)
    if args.dev_rows:
        dev, test = subset(dev, args.dev_rows, rng), subset(test, args.dev_rows, rng)
    print(machine_line(describe_machine()))
    print(f"common flags on top of the defaults: {common}")
    print(f"data: train {len(train)}, dev {len(dev)}, test {len(test)}, labels {len(labels)}")

    runs = Path(tempfile.mkdtemp(prefix="multihot-arch-"))
    results: dict[str, dict] = {}
    for index, name in enumerate(names):
        flags = {**common, **VARIANTS[name]}
        started = time.perf_counter()
        clf = Classifier.train(train, dev, output=runs / f"v{index}", **flags)
        seconds = time.perf_counter() - started
        dev_metrics = clf.metrics["validation"]
        test_metrics = clf.evaluate(test)  # read once, for the table; nothing is chosen on it
        results[name] = {
            "flags": VARIANTS[name],
            "dev_macro_f1": dev_metrics["macro_f1"],
            "dev_micro_f1": dev_metrics["micro_f1"],
            "test_macro_f1": test_metrics["macro_f1"],
            "test_micro_f1": test_metrics["micro_f1"],
            "seconds": seconds,
            "best_epoch": clf.metrics["best"]["epoch"],
        }
        r = results[name]
        print(
            f"{name}: dev macro F1 {r['dev_macro_f1']:.4f}, test macro F1 {r['test_macro_f1']:.4f}, "
            f"micro {r['test_micro_f1']:.4f}, {seconds:.0f} s",
            flush=True,
        )
        if args.json:
            write_json(args.json, {"common": common, "results": results})

    best = max(results, key=lambda n: results[n]["dev_macro_f1"])
    print()
    print(
        table(
            [
                "architecture",
                "dev macro F1",
                "dev micro F1",
                "test macro F1",
                "test micro F1",
                "train + tune (s)",
            ],
            [
                [
                    name + (" (best on dev)" if name == best else ""),
                    f"{r['dev_macro_f1']:.4f}",
                    f"{r['dev_micro_f1']:.4f}",
                    f"{r['test_macro_f1']:.4f}",
                    f"{r['test_micro_f1']:.4f}",
                    f"{r['seconds']:.0f}",
                ]
                for name, r in results.items()
            ],
        )
    )
    print(f"\npicked on dev: {best}")


if __name__ == "__main__":
    main()
