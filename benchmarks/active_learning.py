"""Active learning on GoEmotions: simulated labelling rounds, ``multihot suggest`` against random
selection (issue 34). Dev is read only to score each round's run; test is never read.

The simulation, per seed ``s`` (``--seeds``):

- The pool is GoEmotions train (or a seeded ``--pool`` rows of it) with its labels hidden: a
  strategy sees texts only, and "labelling" a text it picked reveals its train labels.
- Round 0: ``--start`` (500) texts drawn at random with seed ``s``, the same texts for every
  strategy, and one run trained on them from the encoder, shared by every strategy.
- Rounds 1 to ``--rounds`` (6): each strategy picks ``--batch`` (500) texts of the unlabelled
  rest with the previous round's run (``multihot.suggest(run, pool, n, strategy=, diversity=,
  labelled=)``, the labelled texts given, so they are skipped and their positives weight the
  labels); their labels are revealed; the round's run starts from the previous one
  (``init_from``) and trains on every text labelled so far. ``random`` draws uniformly (seeded)
  from the unlabelled rows, with no pass of the model (what ``suggest --strategy random`` picks,
  without the cost).
- Validation: each labelled text is put once and for all in the runs' training part or in their
  validation part: 10% (``--val-fraction``) of the start and of each batch, drawn with seed ``s``.
  The validation part does for each run what a user's own hold-out does: it picks the best
  evaluation, fits the calibration and tunes the thresholds. Since a text never moves from
  validation to training, no run's thresholds are tuned on texts an earlier round trained on;
  dev is not used for any choice, only for the score.
- Budget: every run of every round and strategy gets about ``--steps-per-round`` optimiser steps:
  ``epochs = ceil(steps / steps per epoch)`` of its training part (the config has epochs, not
  steps), no early stopping (``patience 0``; the best evaluation on the validation part is kept),
  training seed ``s``. The steps actually taken are in the JSON.
- Score: dev macro F1 of :meth:`multihot.Classifier.evaluate` (the run's own thresholds).

What it prints:

- dev macro F1 per round (labelled texts) and strategy: the mean over seeds, then each seed;
- the labelled texts each strategy needs to reach random's final dev macro F1 (its score after
  the last round): the first round whose score reaches it, interpolated linearly from the round
  before; "not reached" when none does. On the seeds' mean curves, and per seed against that
  seed's random. A curve that is not monotone can reach it early and fall back (random itself
  then "reaches" its own final before the last round): read the figure with the table;
- the target of issue 34: per seed, the default strategy (``suggest``'s default, with its default
  diversity) reaches random's final figure with at most 60% of random's final count of labelled
  texts, or its final dev macro F1 is at least 0.03 above random's at the same (final) count; met
  when that holds for every seed.

``--plot`` draws the curves (matplotlib): each strategy's mean over seeds, each seed faint, and
random's final figure dashed. ``--runs DIR`` keeps every run and each round's record (labelled
rows, scores) under ``DIR/seed-S/``; run again with the same settings, finished rounds are read
back instead of trained.

    python benchmarks/active_learning.py --json al.json --plot al.png --runs runs/al   # MiniLM
    python benchmarks/active_learning.py --smoke                                       # a minute
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEFAULT_DATA,
    check_kept_settings,
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
    write_json,
)

import multihot
from multihot import Classifier
from multihot.data.readers import Dataset
from multihot.quality.suggest import DEFAULT_STRATEGY, DIVERSITIES, STRATEGIES

RANDOM = "random"
REACH_FRACTION = 0.6
"""The target: the default strategy reaches random's final figure with this share of its texts..."""
GAIN = 0.03
"""...or is this much dev macro F1 above random at the final count."""
BATCH_SIZE = 64
"""The training batch (TrainConfig's default), to turn a step budget into epochs."""


# ------------------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class Arm:
    """One way of picking: a strategy of ``suggest`` with a diversity, or random rows."""

    strategy: str
    diversity: str

    @property
    def name(self) -> str:
        return RANDOM if self.strategy == RANDOM else f"{self.strategy}+{self.diversity}"


DEFAULT_ARM = Arm(DEFAULT_STRATEGY, STRATEGIES[DEFAULT_STRATEGY].diversity)


def parse_arms(spec: str) -> list[Arm]:
    """``threshold,threshold:none,random`` -> arms (a strategy alone takes its own diversity)."""
    arms = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        strategy, _, diversity = part.partition(":")
        if strategy not in STRATEGIES:
            raise SystemExit(
                f"--strategies: unknown strategy {strategy!r} ({', '.join(STRATEGIES)})"
            )
        diversity = diversity or STRATEGIES[strategy].diversity
        if diversity not in DIVERSITIES:
            raise SystemExit(
                f"--strategies: unknown diversity {diversity!r} ({', '.join(DIVERSITIES)})"
            )
        arms.append(Arm(strategy, "none" if strategy == RANDOM else diversity))
    if len({a.name for a in arms}) != len(arms):
        raise SystemExit(f"--strategies: an arm is named twice in {spec!r}")
    return arms


# ---------------------------------------------------------------------------- the labelled texts
@dataclass
class Labelled:
    """The pool rows labelled so far, each in the training part or the validation part for good."""

    train: list[int] = field(default_factory=list)
    val: list[int] = field(default_factory=list)

    def add(self, rows: list[int], rng: np.random.Generator, val_fraction: float) -> Labelled:
        """A copy with ``rows`` added: ``val_fraction`` of them (drawn with ``rng``) to validation."""
        shuffled = [rows[i] for i in rng.permutation(len(rows))]
        cut = round(val_fraction * len(rows))
        return Labelled(self.train + sorted(shuffled[cut:]), self.val + sorted(shuffled[:cut]))

    @property
    def rows(self) -> set[int]:
        return {*self.train, *self.val}

    def __len__(self) -> int:
        return len(self.train) + len(self.val)

    def datasets(self, pool: Dataset) -> tuple[Dataset, Dataset]:
        """The training and validation parts with their revealed labels (all 28 labels kept)."""
        return pool.subset(self.train), pool.subset(self.val)


def epochs_for(steps: int, train_texts: int) -> int:
    """Epochs of ``train_texts`` that take at least ``steps`` optimiser steps."""
    return max(1, math.ceil(steps / math.ceil(train_texts / BATCH_SIZE)))


# ------------------------------------------------------------------------------------- one round
@dataclass
class Setting:
    """What every run shares: the pool, dev, the training flags, where runs go."""

    pool: Dataset
    dev: Dataset
    args: argparse.Namespace
    root: Path
    keep: bool


def train_round(
    s: Setting, labelled: Labelled, seed: int, start: Path | None, out: Path
) -> dict[str, Any]:
    """Train on the labelled texts (from ``start`` when given, else from the encoder), score dev."""
    train, val = labelled.datasets(s.pool)
    epochs = epochs_for(s.args.steps_per_round, len(train))
    flags: dict[str, Any] = {
        "epochs": epochs,
        "patience": 0,
        "seed": seed,
        "compare_baseline": False,
    }
    if start is None:
        flags.update(encoder=s.args.encoder, max_length=s.args.max_length, ensemble=s.args.ensemble)
    if out.exists():  # an interrupted earlier attempt at this round
        shutil.rmtree(out)
    began = time.perf_counter()
    clf = Classifier.train(train, val, output=out, init_from=start, **flags)
    seconds = time.perf_counter() - began
    scores = clf.evaluate(s.dev, batch_size=128)
    return {
        "labelled": len(labelled),
        "train_texts": len(train),
        "val_texts": len(val),
        "epochs": epochs,
        "steps": int(clf.history[-1]["step"]),
        "train_seconds": round(seconds, 1),
        "val_macro_f1": clf.metrics["validation"]["macro_f1"],
        "dev_macro_f1": scores["macro_f1"],
        "dev_micro_f1": scores["micro_f1"],
        "run": str(out),
        "train_rows": labelled.train,
        "val_rows": labelled.val,
    }


def pick(s: Setting, arm: Arm, run: Path, labelled: Labelled, seed: int, round_: int) -> list[int]:
    """The next ``--batch`` pool rows of ``arm``, picked with ``run``."""
    if arm.strategy == RANDOM:
        rng = np.random.default_rng([seed, round_, 1])
        free = np.setdiff1d(np.arange(len(s.pool)), sorted(labelled.rows))
        return sorted(int(i) for i in rng.choice(free, min(s.args.batch, len(free)), replace=False))
    batch = multihot.suggest(
        run,
        s.pool.texts,
        s.args.batch,
        strategy=arm.strategy,
        diversity=arm.diversity,
        labelled=list(labelled.datasets(s.pool)),
        id_col=None,
        seed=seed,
        batch_size=128,
    )
    rows = sorted(batch.rows)
    if labelled.rows & set(rows):  # suggest skips labelled texts: a bug if not
        raise SystemExit(f"{arm.name}, round {round_}: suggest picked labelled rows")
    return rows


def cached_round(
    s: Setting,
    record_path: Path,
    make: Any,
) -> dict[str, Any]:
    """The round's record read back (``--runs``, finished before) or made now and kept."""
    if s.keep and record_path.exists():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        log(f"{record_path}: read back ({record['labelled']} texts, {record['dev_macro_f1']:.4f})")
        return record
    record = make()
    if s.keep:
        record_path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return record


def first_round(s: Setting, seed: int) -> dict[str, Any]:
    """Round 0: ``--start`` random texts, a run from the encoder; shared by every arm."""
    rng = np.random.default_rng([seed, 0, 0])
    start_rows = sorted(int(i) for i in rng.choice(len(s.pool), s.args.start, replace=False))
    labelled = Labelled().add(start_rows, rng, s.args.val_fraction)
    directory = s.root / f"seed-{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    return cached_round(
        s,
        directory / "round-0.json",
        lambda: train_round(s, labelled, seed, None, directory / "round-0"),
    )


def arm_curve(s: Setting, arm: Arm, seed: int, first: dict[str, Any]) -> list[dict[str, Any]]:
    """Rounds 1 to ``--rounds`` of ``arm`` after the shared round 0: one record per round."""
    directory = s.root / f"seed-{seed}" / arm.name
    directory.mkdir(parents=True, exist_ok=True)
    records = [{**first, "pick_seconds": 0.0}]
    for round_ in range(1, s.args.rounds + 1):
        previous = records[-1]
        labelled = Labelled(previous["train_rows"], previous["val_rows"])

        def make(previous=previous, labelled=labelled, round_=round_) -> dict[str, Any]:
            began = time.perf_counter()
            rows = pick(s, arm, Path(previous["run"]), labelled, seed, round_)
            seconds = time.perf_counter() - began
            rng = np.random.default_rng([seed, round_, 2])
            grown = labelled.add(rows, rng, s.args.val_fraction)
            out = directory / f"round-{round_}"
            record = train_round(s, grown, seed, Path(previous["run"]), out)
            return {**record, "pick_seconds": round(seconds, 1)}

        record = cached_round(s, directory / f"round-{round_}.json", make)
        log(
            f"seed {seed}, {arm.name}, round {round_}: {record['labelled']} texts, "
            f"{record['steps']} steps, dev macro F1 {record['dev_macro_f1']:.4f} "
            f"(pick {record['pick_seconds']:.0f} s, train {record['train_seconds']:.0f} s)"
        )
        if not s.keep and round_ > 1:  # the previous run was only needed to start this one
            shutil.rmtree(previous["run"], ignore_errors=True)
        records.append(record)
    if not s.keep:
        shutil.rmtree(records[-1]["run"], ignore_errors=True)
    return records


# -------------------------------------------------------------------------------------- figures
def texts_to_reach(counts: list[int], scores: list[float], target: float) -> float | None:
    """Labelled texts at which the curve first reaches ``target``, interpolated linearly from the
    round before; None when no round does.

    Example:
        >>> texts_to_reach([500, 1000, 1500], [0.2, 0.3, 0.5], 0.4)
        1250.0
    """
    for i, (count, score) in enumerate(zip(counts, scores, strict=True)):
        if score >= target:
            if i == 0:
                return float(count)
            c0, s0 = counts[i - 1], scores[i - 1]
            return c0 + (target - s0) / (score - s0) * (count - c0)
    return None


def shown(texts: float | None, of: int) -> str:
    return "not reached" if texts is None else f"{texts:.0f} ({texts / of:.0%})"


def summarise(curves: dict[str, dict[int, list[dict[str, Any]]]], seeds: list[int]) -> dict:
    """Mean curves, texts to reach random's final figure, and the target, per seed and on the mean."""
    names = list(curves)
    counts = [r["labelled"] for r in curves[names[0]][seeds[0]]]
    f1 = {
        name: {seed: [r["dev_macro_f1"] for r in curves[name][seed]] for seed in seeds}
        for name in names
    }
    mean = {name: np.mean([f1[name][seed] for seed in seeds], axis=0).tolist() for name in names}
    out: dict[str, Any] = {"counts": counts, "dev_macro_f1": f1, "mean": mean}
    if RANDOM not in names:
        return out
    final = counts[-1]
    out["reach"] = {
        name: {
            "mean": texts_to_reach(counts, mean[name], mean[RANDOM][-1]),
            **{
                str(seed): texts_to_reach(counts, f1[name][seed], f1[RANDOM][seed][-1])
                for seed in seeds
            },
        }
        for name in names
    }
    default = DEFAULT_ARM.name
    if default in names:
        per_seed = {}
        for seed in seeds:
            reach = out["reach"][default][str(seed)]
            gain = f1[default][seed][-1] - f1[RANDOM][seed][-1]
            per_seed[str(seed)] = {
                "texts_to_reach": reach,
                "share_of_random_final": None if reach is None else reach / final,
                "final_gain_over_random": gain,
                "met": (reach is not None and reach <= REACH_FRACTION * final) or gain >= GAIN,
            }
        out["target"] = {"per_seed": per_seed, "met": all(v["met"] for v in per_seed.values())}
    return out


def print_tables(summary: dict, seeds: list[int]) -> None:
    counts, f1, mean = summary["counts"], summary["dev_macro_f1"], summary["mean"]
    names = list(f1)
    seeds_shown = " / ".join(f"seed {s}" for s in seeds)
    print(f"\ndev macro F1 per round: mean over seeds ({seeds_shown})")
    rows = [
        [round_, count]
        + [
            f"{mean[n][round_]:.4f} ({' / '.join(f'{f1[n][s][round_]:.4f}' for s in seeds)})"
            for n in names
        ]
        for round_, count in enumerate(counts)
    ]
    print(table(["round", "labelled texts", *names], rows))
    if "reach" not in summary:
        print(f"\n(no {RANDOM} arm: no comparison with random selection)")
        return
    final = counts[-1]
    print(f"\nlabelled texts to reach random's final dev macro F1 ({final} texts)")
    print(
        table(
            [
                "strategy",
                "on the mean curves",
                *(f"seed {s}" for s in seeds),
                "final dev macro F1",
                "final minus random",
            ],
            [
                [
                    n,
                    shown(summary["reach"][n]["mean"], final),
                    *(shown(summary["reach"][n][str(s)], final) for s in seeds),
                    f"{mean[n][-1]:.4f}",
                    f"{mean[n][-1] - mean[RANDOM][-1]:+.4f}",
                ]
                for n in names
            ],
        )
    )
    if "target" in summary:
        target = summary["target"]
        print(
            f"\ntarget: {DEFAULT_ARM.name} reaches random's final with <= "
            f"{REACH_FRACTION:.0%} of the texts, or is >= {GAIN} above random at {final}, "
            f"for every seed: {met(target['met'])}"
        )
        for seed, v in target["per_seed"].items():
            print(
                f"  seed {seed}: reaches it at {shown(v['texts_to_reach'], final)}, final "
                f"{v['final_gain_over_random']:+.4f} over random: {met(v['met'])}"
            )


def plot(summary: dict, seeds: list[int], path: Path, title: str) -> None:
    """The curves: each strategy's mean (markers) and each seed (faint); random's final dashed."""
    counts = summary["counts"]
    with line_plot(path, title, "labelled texts", "dev macro F1") as ax:
        if ax is None:
            return
        for i, (name, curve) in enumerate(summary["mean"].items()):
            colour = f"C{i}"
            ax.plot(counts, curve, marker="o", color=colour, label=name)
            for seed in seeds:
                ax.plot(counts, summary["dev_macro_f1"][name][seed], color=colour, alpha=0.25, lw=1)
        if RANDOM in summary["mean"]:
            final = summary["mean"][RANDOM][-1]
            ax.axhline(final, color="grey", ls="--", lw=1, label="random, final")


# ------------------------------------------------------------------------------------------ main
SMOKE = {
    "encoder": "scratch-tiny",
    "pool": 800,
    "dev_limit": 300,
    "start": 100,
    "batch": 100,
    "rounds": 2,
    "steps_per_round": 10,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument(
        "--strategies",
        default=f"{DEFAULT_STRATEGY},{DEFAULT_STRATEGY}:none,{RANDOM}",
        help="comma-separated STRATEGY[:DIVERSITY] (a strategy alone takes its own diversity)",
    )
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--rounds", type=int, default=6, help="rounds after the start")
    parser.add_argument("--batch", type=int, default=500, help="texts labelled per round")
    parser.add_argument("--start", type=int, default=500, help="random texts labelled at first")
    parser.add_argument("--steps-per-round", type=int, default=200, help="optimiser steps per run")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="of each batch, for good")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--ensemble", type=int, default=1, help="members (strategy ensemble: >=2)")
    parser.add_argument("--pool", type=int, help="a seeded subset of train as the pool (all)")
    parser.add_argument("--dev-limit", type=int, help="a seeded subset of dev (all)")
    parser.add_argument("--runs", type=Path, help="keep every run here (and reuse finished rounds)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plot", type=Path, help="draw the curves to this PNG")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"tiny sizes to check the script end to end: {SMOKE} (flags given still count)",
    )
    args = parser.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    args.arms = parse_arms(args.strategies)
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if any(a.strategy == "ensemble" for a in args.arms) and args.ensemble < 2:
        parser.error("strategy ensemble needs --ensemble 2 or more (every arm trains ensembles)")
    return args


KEPT_SETTINGS = (
    "data",
    "encoder",
    "max_length",
    "ensemble",
    "pool",
    "dev_limit",
    "start",
    "batch",
    "steps_per_round",
    "val_fraction",
)
"""What a kept round depends on: a ``--runs`` directory takes more rounds, seeds or strategies."""


def main() -> None:
    args = parse_args()
    serial_tokenizers()
    setup_logging()
    print(machine_line(describe_machine()), flush=True)
    train, _ = load_goemotions(args.data, "train")
    dev, _ = load_goemotions(args.data, "dev")
    pool, dev = subset(train, args.pool, seed=0), subset(dev, args.dev_limit, seed=0)
    final = args.start + args.rounds * args.batch
    print(
        f"pool {len(pool)} train texts, dev {len(dev)}; {args.encoder}, max length "
        f"{args.max_length}; start {args.start}, {args.rounds} rounds of +{args.batch} (to "
        f"{final}), about {args.steps_per_round} steps per run, validation {args.val_fraction:.0%} "
        f"of each batch; arms {', '.join(a.name for a in args.arms)}; seeds {args.seed_list}",
        flush=True,
    )
    keep = args.runs is not None
    root = (args.runs or Path(tempfile.mkdtemp(prefix="multihot-al-"))).resolve()
    if keep:
        check_kept_settings(root, {k: getattr(args, k) for k in KEPT_SETTINGS})
    setting = Setting(pool, dev, args, root, keep)
    curves: dict[str, dict[int, list[dict[str, Any]]]] = {a.name: {} for a in args.arms}
    for seed in args.seed_list:
        first = first_round(setting, seed)
        log(f"seed {seed}, round 0: {first['labelled']} texts, dev {first['dev_macro_f1']:.4f}")
        for arm in args.arms:
            curves[arm.name][seed] = arm_curve(setting, arm, seed, first)
        if not keep:
            shutil.rmtree(first["run"], ignore_errors=True)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    summary = summarise(curves, args.seed_list)
    print_tables(summary, args.seed_list)
    if args.plot:
        title = (
            f"GoEmotions dev, {args.encoder}, {args.steps_per_round} steps per round, "
            f"seeds {args.seeds}"
        )
        plot(summary, args.seed_list, args.plot, title)
    if args.json:
        for records in (r for by_seed in curves.values() for r in by_seed.values()):
            for record in records:  # the rows are in the runs' records; the JSON keeps scores
                record.pop("train_rows", None)
                record.pop("val_rows", None)
        args_shown = {k: str(v) for k, v in vars(args).items() if k not in ("arms", "seed_list")}
        write_json(args.json, {"args": args_shown, "curves": curves, "summary": summary})


if __name__ == "__main__":
    main()
