"""Continuing a run on new data (``train --init-from``) against training from the encoder: how many
optimiser steps each needs to reach the from-scratch run's dev macro F1 (issue 34). Test is never
read.

GoEmotions train (or a seeded ``--train-limit`` rows of it) is split at random (``--seed``) into
A (``--first-fraction``, half) and B (the rest): A is the data a team labelled first, B what it
labelled since.

1. Run A: trained on A from the encoder.
2. Scratch: trained on B from the encoder.
3. Continued: trained on B from run A (``Classifier.train(B, init_from=A)``).

Every run: the same ``--epochs`` (no early stopping, ``patience 0``), the same seed, and dev as its
validation data. Runs 2 and 3 evaluate dev every ``--eval-every`` optimiser steps, and their
history gives dev macro F1 at each evaluation, with thresholds tuned on dev at that evaluation as
every evaluation of a run tunes them on its validation data (optimistic for both runs alike: the
comparison is of steps, not of the figure). "Step 0" of the continued run is run A's model on dev,
scored the same way (its uncalibrated probabilities, thresholds tuned on dev), before any step on B.

Figures:

- scratch's final dev macro F1: the best of its evaluations (the weights a run keeps), and the step
  it was first reached at;
- the steps the continued run needs to reach that figure: its first evaluation at or above it (0
  when run A is there already; "not reached" when no evaluation is);
- the target: the continued run reaches it in at most half the steps scratch took to reach it
  (also shown against scratch's whole budget).

Since A and B are halves of one distribution, run A alone may score about as well as scratch on B:
the step-0 row says how much of the target was met before continuing trained at all.

    python benchmarks/init_from.py --json init-from.json --plot init-from.png   # MiniLM
    python benchmarks/init_from.py --smoke                                        # a minute
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEFAULT_DATA,
    describe_machine,
    line_plot,
    load_goemotions,
    log,
    machine_line,
    met,
    serial_tokenizers,
    setup_logging,
    subset,
    table,
    tuned_macro_f1,
    write_json,
)

from multihot import Classifier
from multihot.data.readers import Dataset

HALF = 0.5
"""The target: the continued run needs at most this share of scratch's steps."""


def split(data: Dataset, first: float, seed: int) -> tuple[Dataset, Dataset]:
    """``data`` cut at random into ``first`` of its rows and the rest (each kept in file order)."""
    order = np.random.default_rng(seed).permutation(len(data))
    cut = round(first * len(data))
    return data.subset(np.sort(order[:cut])), data.subset(np.sort(order[cut:]))


def curve(clf: Classifier) -> list[tuple[int, float]]:
    """``(step, dev macro F1)`` of each evaluation in the run's history."""
    return [(int(r["step"]), float(r["macro_f1"])) for r in clf.history if "macro_f1" in r]


def step_zero(run_a: Classifier, dev: Dataset) -> float:
    """Run A's dev macro F1 as an evaluation scores it: uncalibrated probabilities, thresholds
    tuned on dev with the run's settings."""
    _, targets = run_a.labelled(dev)
    calibration, run_a.calibration = run_a.calibration, None
    try:
        probs = run_a.predict_proba(dev.texts, batch_size=128)
    finally:
        run_a.calibration = calibration
    return tuned_macro_f1(targets, probs, run_a.config.train, run_a.label_names)


def first_reaching(points: list[tuple[int, float]], target: float) -> int | None:
    """The step of the first point at or above ``target``, or None.

    Example:
        >>> first_reaching([(0, 0.3), (50, 0.5), (100, 0.45)], 0.45)
        50
    """
    return next((step for step, score in points if score >= target), None)


def train(data: Dataset, dev: Dataset, out: Path, args, **flags: Any) -> tuple[Classifier, float]:
    began = time.perf_counter()
    clf = Classifier.train(
        data,
        dev,
        output=out,
        epochs=args.epochs,
        patience=0,
        seed=args.seed,
        compare_baseline=False,
        **flags,
    )
    return clf, time.perf_counter() - began


def plot(scratch, continued, zero: float, path: Path, title: str) -> None:
    """Dev macro F1 against steps on B, from the encoder and from run A; scratch's best dashed."""
    ylabel = "dev macro F1 (thresholds tuned on dev)"
    with line_plot(path, title, "optimiser steps on B", ylabel) as ax:
        if ax is None:
            return
        ax.plot(*zip(*scratch, strict=True), marker=".", label="from the encoder (scratch)")
        ax.plot(*zip(*[(0, zero), *continued], strict=True), marker=".", label="--init-from run A")
        best = max(s for _, s in scratch)
        ax.axhline(best, color="grey", ls="--", lw=1, label="scratch's best")


SMOKE = {
    "encoder": "scratch-tiny",
    "train_limit": 600,
    "dev_limit": 300,
    "epochs": 2,
    "eval_every": 4,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="of every run")
    parser.add_argument("--eval-every", type=int, default=50, help="steps, runs on B")
    parser.add_argument("--first-fraction", type=float, default=HALF, help="of train, for run A")
    parser.add_argument("--train-limit", type=int, help="a seeded subset of train (all)")
    parser.add_argument("--dev-limit", type=int, help="a seeded subset of dev (all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, help="keep the three runs here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plot", type=Path, help="draw both runs' dev curves to this PNG")
    parser.add_argument("--smoke", action="store_true", help=f"tiny sizes: {SMOKE}")
    args = parser.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    serial_tokenizers()
    setup_logging()
    print(machine_line(describe_machine()), flush=True)
    data, _ = load_goemotions(args.data, "train")
    dev, _ = load_goemotions(args.data, "dev")
    data, dev = subset(data, args.train_limit, seed=0), subset(dev, args.dev_limit, seed=0)
    a, b = split(data, args.first_fraction, args.seed)
    print(
        f"A {len(a)} and B {len(b)} train texts, dev {len(dev)}; {args.encoder}, max length "
        f"{args.max_length}, {args.epochs} epochs per run, dev evaluated every "
        f"{args.eval_every} steps on B, seed {args.seed}",
        flush=True,
    )
    root = args.runs or Path(tempfile.mkdtemp(prefix="multihot-init-from-"))
    model = {"encoder": args.encoder, "max_length": args.max_length}
    run_a, seconds_a = train(a, dev, root / "a", args, **model)
    log(f"run A: {seconds_a:.0f} s")
    zero = step_zero(run_a, dev)
    scratch, seconds_s = train(b, dev, root / "scratch", args, eval_every=args.eval_every, **model)
    log(f"scratch on B: {seconds_s:.0f} s")
    continued, seconds_c = train(
        b, dev, root / "continued", args, eval_every=args.eval_every, init_from=root / "a"
    )
    log(f"continued on B: {seconds_c:.0f} s")
    if args.runs is None:
        shutil.rmtree(root, ignore_errors=True)

    s_curve, c_curve = curve(scratch), curve(continued)
    target = max(score for _, score in s_curve)
    s_steps, s_total = first_reaching(s_curve, target), s_curve[-1][0]
    c_steps = 0 if zero >= target else first_reaching(c_curve, target)
    rows = [
        ["run A alone (step 0 of continued)", "0", f"{zero:.4f}", "-", f"{seconds_a:.0f}"],
        *(
            [
                name,
                str(points[-1][0]),
                f"{max(s for _, s in points):.4f}",
                "not reached" if reach is None else str(reach),
                f"{seconds:.0f}",
            ]
            for name, points, reach, seconds in (
                ("scratch: B from the encoder", s_curve, s_steps, seconds_s),
                ("continued: B --init-from run A", c_curve, c_steps, seconds_c),
            )
        ),
    ]
    print()
    print(
        table(
            ["run", "steps on B", "best dev macro F1", f"steps to reach {target:.4f}", "seconds"],
            rows,
        )
    )
    ok = c_steps is not None and c_steps <= HALF * s_steps
    print(
        f"\ntarget: --init-from reaches scratch's dev macro F1 ({target:.4f}, at step {s_steps} "
        f"of {s_total}) in <= half its steps: "
        + (
            "not reached"
            if c_steps is None
            else f"{c_steps} steps ({c_steps / s_steps:.0%}; "
            f"{c_steps / s_total:.0%} of scratch's budget)"
        )
        + f": {met(ok)}"
    )
    if zero >= target:
        print(
            "note: run A alone already scores scratch's figure, before any step on B; a smaller "
            "--first-fraction asks more of continuing"
        )
    if args.plot:
        title = f"GoEmotions dev, {args.encoder}, A {len(a)} / B {len(b)} texts, seed {args.seed}"
        plot(s_curve, c_curve, zero, args.plot, title)
    if args.json:
        write_json(
            args.json,
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "run_a": {"texts": len(a), "seconds": seconds_a, "step_zero_dev_macro_f1": zero},
                "scratch": {"texts": len(b), "seconds": seconds_s, "curve": s_curve},
                "continued": {"texts": len(b), "seconds": seconds_c, "curve": c_curve},
                "target_f1": target,
                "scratch_steps_to_target": s_steps,
                "scratch_steps": s_total,
                "continued_steps_to_target": c_steps,
                "met": ok,
            },
        )


if __name__ == "__main__":
    main()
