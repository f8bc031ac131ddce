"""What the benchmarks share: GoEmotions, the machine line, FLOP counts, dev scores, the Hugging
Face recipes multihot is measured against, and markdown tables.

Each script (goemotions.py, train_speed.py, predict_speed.py, dev_crossfit.py) is its own
comparison, with its own flags and ``main``; what two of them need is written once here. Importing
this module sets ``HF_HUB_OFFLINE=1`` (unless it is set): huggingface_hub reads it when it is first
imported, so the scripts import this module before transformers, and nothing here imports
transformers at the top.

FLOPs are counted analytically, as in the MFU literature: 2 x the multiply-adds of every matmul of
the encoder (Q, K, V and output projections, attention scores and attention-weighted values, both
feed-forward layers) on the real tokens of each text, plus the pooler and classifier layers per
text. Embedding lookups, layer norms, softmax and activations are not counted. Padding is not
counted either: it is work a system chooses to do, so it shows up as a lower achieved FLOP/s.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multihot import Classifier
from multihot.core.precision import cpu_supports_bf16, default_device
from multihot.data.encoding import tokenize
from multihot.data.readers import Dataset, read_goemotions
from multihot.scoring.thresholds import tune_thresholds

# Every model and tokenizer here is built from scratch or read from a local directory: a benchmark
# that reached for the Hub would time the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "goemotions"
"""The official GoEmotions TSVs and labels.txt, beside the repository (``--data`` elsewhere)."""


# ------------------------------------------------------------------------------------- set-up
def serial_tokenizers() -> None:
    """Turn off the Rust tokenizers' own threads (``TOKENIZERS_PARALLELISM=false`` unless set).

    For the accuracy scripts, which fork DataLoader workers after tokenizing (on a GPU): tokenizers
    would warn and turn its threads off in every child. The speed scripts leave them on: their
    timings include tokenization, as a user's would.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def setup_logging(*info: str) -> None:
    """Warnings and errors as bare messages on stderr; INFO as well from the loggers named."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in info:
        logging.getLogger(name).setLevel(logging.INFO)


# --------------------------------------------------------------------------------------- data
def load_goemotions(data_dir: Path, split: str) -> tuple[Dataset, list[str]]:
    """One split (``train``, ``dev`` or ``test``) of the official GoEmotions TSVs as a
    :class:`multihot.data.readers.Dataset`, and the 28 label names of labels.txt."""
    names = (data_dir / "labels.txt").read_text(encoding="utf-8").split()
    return read_goemotions(data_dir / f"{split}.tsv", names), names


def subset(dataset: Dataset, size: int | None, seed: int | np.random.Generator = 0) -> Dataset:
    """``size`` rows of ``dataset`` drawn at random (kept in file order); all of it for None.

    ``seed`` is a seed or a generator: several subsets drawn from one generator follow one stream.
    """
    if size is None or size >= len(dataset):
        return dataset
    rng = np.random.default_rng(seed)  # a Generator passes through unchanged
    return dataset.subset(np.sort(rng.choice(len(dataset), size, replace=False)))


def token_lengths(clf, texts: Sequence[str]) -> np.ndarray:
    """Tokens per text as the run ``clf`` reads them (special tokens in, truncated, no padding)."""
    ids = tokenize(clf.tokenizer, texts, clf.config.model.max_length)
    return np.array([len(row) for row in ids])


# ------------------------------------------------------------------------------------ machine
def cpu_model() -> str:
    """The processor's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The matrix-math extensions the processor reports that matter for bf16/int8 speed."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
    return [f for f in wanted if f in flags]


def version(package: str) -> str:
    """The installed version of ``package``, or ``not installed``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def proc_status_bytes(pid: int, field: str) -> int | None:
    """A size from Linux ``/proc/PID/status`` in bytes (``VmRSS``: resident now, ``VmHWM``: the
    peak so far), or None where the process or the field is not there."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def describe_machine() -> dict[str, Any]:
    """What a reader needs to compare figures across machines (and whether this one was busy)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": usable,
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "bf16_fast": cpu_supports_bf16(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "versions": {
            p: version(p)
            for p in ("multihot", "torch", "transformers", "onnxruntime", "accelerate")
        },
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    """The speed benchmarks' machine lines: processor, cores, threads, GPU; versions; load."""
    v = info["versions"]
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores ({', '.join(info['cpu_flags']) or 'no AVX'}),"
        f" torch threads {info['torch_threads']}, fast bf16 {'yes' if info['bf16_fast'] else 'no'}"
        + (f", GPU {info['gpu']}" if info["gpu"] else ""),
        f"versions: python {info['python']}, "
        + ", ".join(f"{name} {number}" for name, number in v.items()),
    ]
    if "load_average_1min" in info:
        lines.append(
            f"load average at start: {info['load_average_1min']} "
            f"(above {info['cores']} means other work shared the cores)"
        )
    return lines


def machine_line(info: dict[str, Any]) -> str:
    """The accuracy benchmark's one machine line: processor, cores, torch and its threads."""
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, torch {info['versions']['torch']}, "
        f"threads {info['torch_threads']}"
    )


def matmul_peak(
    dtype: torch.dtype, size: int = 2048, seconds: float = 1.0, device: str = "cpu"
) -> float:
    """FLOP/s of the best square ``size`` x ``size`` ``torch.matmul`` in ``dtype`` over ``seconds``.

    The best of many repetitions is the peak: on a shared machine the slower ones measure the
    neighbours, not the hardware.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    on_gpu = torch.device(device).type == "cuda"

    def matmul() -> None:
        torch.matmul(a, b)
        if on_gpu:
            torch.cuda.synchronize()

    for _ in range(2):  # oneDNN and cuBLAS pick and build their kernels on the first calls
        matmul()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def matmul_peaks(seconds: float = 1.0) -> dict[str, Any]:
    """Measured fp32 and bf16 matmul FLOP/s now, on the device multihot uses (GPU if there is one).

    2048 x 2048 on a CPU; 8192 x 8192 on a GPU, where smaller products cannot fill the device.
    """
    device = default_device().type
    size = 8192 if device == "cuda" else 2048
    return {
        "device": device,
        "size": size,
        "fp32": matmul_peak(torch.float32, size, seconds, device),
        "bf16": matmul_peak(torch.bfloat16, size, seconds, device),
    }


def peak_line(peaks: dict[str, Any]) -> str:
    """The line that prints :func:`matmul_peaks`."""
    return (
        f"measured matmul peak ({peaks['size']} x {peaks['size']} on {peaks['device']}, best of "
        f"1 s): fp32 {gflops(peaks['fp32'])} GFLOP/s, bf16 {gflops(peaks['bf16'])} GFLOP/s"
    )


def start_report() -> tuple[Callable[[str], None], dict[str, Any], dict[str, Any]]:
    """Print the machine and its measured matmul peaks; return a timestamped stderr logger, both.

    Every speed benchmark opens the same way, so its table can be read against the machine it ran on.
    """
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f}s] {message}", file=sys.stderr, flush=True)

    machine = describe_machine()
    print("\n".join(machine_lines(machine)))
    peaks = matmul_peaks()
    print(peak_line(peaks))
    return log, machine, peaks


# -------------------------------------------------------------------------------------- FLOPs
def forward_flops(
    encoder_config: dict[str, Any],
    lengths: Iterable[int],
    num_labels: int,
    first_token_only: bool = False,
) -> float:
    """FLOPs of one forward pass of a BERT-style encoder + pooler + linear head over texts of these
    token lengths (special tokens included, no padding).

    Per layer and text of ``L`` tokens, hidden ``H``, feed-forward ``I``: multiply-adds
    ``L * (4 H^2 + 2 H I)`` for the projections and feed-forward, ``2 L^2 H`` for attention
    (``Q K^T`` and ``softmax(.) V``); per text ``H^2 + H * num_labels`` for pooler and classifier.
    With ``first_token_only`` (a cls/pooler model reads only the first token's last state, see
    ``multihot.modeling.first_token``) the last layer counts what that state needs: keys and values
    of every token, ``L * 2 H^2``, and for the one query ``4 H^2 + 2 H I - 2 H^2 + 2 L H``.

    Example:
        >>> forward_flops({"hidden_size": 2, "intermediate_size": 8, "num_hidden_layers": 1}, [1], 1)
        116.0
    """
    h = int(encoder_config["hidden_size"])
    inner = int(encoder_config["intermediate_size"])
    layers = int(encoder_config["num_hidden_layers"])
    lens = np.fromiter(lengths, dtype=np.float64)
    per_layer = lens * (4 * h * h + 2 * h * inner) + 2 * lens**2 * h
    per_text = h * h + h * num_labels
    total = layers * per_layer.sum() + per_text * len(lens)
    if first_token_only:
        last = lens * 2 * h * h + (2 * h * h + 2 * h * inner) + 2 * lens * h
        total += (last - per_layer).sum()
    return float(2 * total)


def training_flops(forward: float) -> float:
    """A training step costs about three forward passes (backward: gradients of inputs and weights)."""
    return 3.0 * forward


def chunks(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``order`` (indices) cut into consecutive batches of ``batch_size``, the last one short."""
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def padded_tokens(
    lengths: Sequence[int], batches: Iterable[Sequence[int]], multiple: int = 1
) -> int:
    """Tokens a model computes on when each batch (indices into ``lengths``) is padded to its
    longest text, rounded up to ``multiple``.

    Example:
        >>> padded_tokens([3, 1, 2], [[0, 1], [2]], multiple=2)
        10
    """
    lens = np.asarray(lengths)
    total = 0
    for batch in batches:
        longest = -(-int(lens[np.asarray(batch)].max()) // multiple) * multiple
        total += longest * len(batch)
    return total


# ------------------------------------------------------------------------------------- scores
def tuned_macro_f1(
    targets: np.ndarray,
    probs: np.ndarray,
    config,
    names: Sequence[str],
    measure: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Macro F1 with thresholds tuned on ``(targets, probs)`` the way the run tunes them
    (``config`` its :class:`multihot.core.config.TrainConfig`), measured on ``measure`` (targets
    and probabilities of other rows) or, without it, on the same rows: optimistic, since the
    thresholds have seen the answers.

    Args:
        targets: multi-hot ``(n_texts, num_labels)``.
        probs: probabilities ``(n_texts, num_labels)``, columns in the order of ``names``.
    """
    thresholds = tune_thresholds(targets, probs, **config.threshold_settings())
    measured_targets, measured_probs = measure or (targets, probs)
    return thresholds.metrics(measured_targets, measured_probs, names)["macro_f1"]


def met(ok: bool) -> str:
    """How the scripts report a target: ``met`` or ``NOT met``."""
    return "met" if ok else "NOT met"


# ---------------------------------------------------------------------- Hugging Face recipes
def train_pooler_run(
    data: Path,
    train_rows: int | None,
    val_rows: int | None,
    out: Path,
    encoder: str = "scratch-mini",
) -> Path:
    """A pooler + linear run on ``encoder``: one epoch on ``train_rows`` rows of train (None: all),
    thresholds on ``val_rows`` rows of dev."""
    train, _ = load_goemotions(data, "train")
    dev, _ = load_goemotions(data, "dev")
    Classifier.train(
        subset(train, train_rows),
        subset(dev, val_rows),
        encoder=encoder,
        pooling="pooler",
        head="linear",
        epochs=1,
        output=out,
    )
    return out


def hf_config(encoder_config: dict[str, Any], labels):
    """The transformers config of a multihot run's encoder (``encoder_config``) with its
    ``labels`` (a :class:`multihot.data.labels.LabelSet`) and
    ``problem_type="multi_label_classification"``: what ``AutoModelForSequenceClassification``
    builds the same encoder and a linear head from."""
    from transformers import AutoConfig

    config = dict(encoder_config)
    model_type = config.pop("model_type")
    for key in ("problem_type", "id2label", "label2id", "num_labels", "architectures"):
        config.pop(key, None)
    return AutoConfig.for_model(
        model_type,
        **config,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels.names)),
        label2id=labels.index,
    )


def hf_model(clf):
    """``AutoModelForSequenceClassification`` on the multihot run's encoder config and labels,
    with the run's seed: freshly initialised for a scratch encoder, else the same pretrained
    weights the run started from (and a new linear head)."""
    from transformers import AutoModelForSequenceClassification, set_seed

    from multihot.modeling.encoders import is_scratch, resolve_encoder

    config = hf_config(clf.encoder_config, clf.labels)
    set_seed(clf.config.train.seed)
    if is_scratch(clf.config.model.encoder):
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(
        resolve_encoder(clf.config.model.encoder), config=config, use_safetensors=True
    )


class HFEncoded(torch.utils.data.Dataset):
    """Texts tokenized once, up front (as ``datasets.map`` would), with multi-hot float labels:
    what the Trainer reads.

    Truncated at the run's ``max_length``; with ``pad_to``, every text padded (and truncated) to
    that many tokens, as ``run_classification.py``'s ``pad_to_max_length`` does.
    """

    def __init__(self, clf, data: Dataset, pad_to: int | None = None):
        padding: dict[str, Any] = (
            {"padding": "max_length", "max_length": pad_to}
            if pad_to
            else {"max_length": clf.config.model.max_length}
        )
        self.enc = clf.tokenizer(data.texts, truncation=True, **padding)
        self.targets = clf.labels.encode(data.labels)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": self.enc["input_ids"][i],
            "attention_mask": self.enc["attention_mask"][i],
            "labels": self.targets[i],
        }


def hf_trainer(
    clf,
    train: Dataset,
    out: Path,
    *,
    epochs: int = 1,
    max_steps: int = -1,
    pad_to: int | None = None,
    eval_batch_size: int | None = None,
    log_epochs: bool = False,
    callbacks: Sequence[Any] = (),
):
    """The Hugging Face recipe multihot is measured against, ready to ``train()``.

    ``AutoModelForSequenceClassification(problem_type="multi_label_classification")`` (plain
    BCE) on the multihot run's encoder config, vocabulary and tokenizer (:func:`hf_model`), with
    the run's batch size, learning rate, weight decay, seed and precision (bf16 or fp16 autocast
    where the run used it) and the Trainer's other defaults: ``DataCollatorWithPadding``, or
    ``default_data_collator`` when every text is padded to ``pad_to`` tokens.

    Args:
        clf: the multihot run whose set-up the Trainer copies.
        train: the texts and labels to train on.
        out: the Trainer's ``output_dir`` (nothing is saved there).
        epochs, max_steps: ``num_train_epochs`` and ``max_steps`` (-1: whole epochs).
        pad_to: pad every text to this many tokens (``run_classification.py``'s default).
        eval_batch_size: ``per_device_eval_batch_size`` (default twice the training batch).
        log_epochs: the Trainer prints its loss once an epoch and its summary at the end (and a
            progress bar on a terminal); otherwise it prints nothing.
        callbacks: more ``TrainerCallback`` objects (timers).
    """
    from accelerate.state import AcceleratorState
    from transformers import (
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    AcceleratorState._reset_state()  # the multihot run in this process chose its own precision
    t = clf.config.train
    precision = clf.metrics.get("precision")
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=eval_batch_size or 2 * t.batch_size,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="epoch" if log_epochs else "no",
        report_to="none",
        seed=t.seed,
        disable_tqdm=not (log_epochs and sys.stderr.isatty()),
    )
    trainer = Trainer(
        model=hf_model(clf),
        args=args,
        train_dataset=HFEncoded(clf, train, pad_to),
        data_collator=default_data_collator if pad_to else DataCollatorWithPadding(clf.tokenizer),
        callbacks=list(callbacks),
    )
    if not log_epochs:
        trainer.remove_callback(PrinterCallback)  # its final metrics dict would land in the tables
    return trainer


def hf_predict_proba(trainer, clf, data: Dataset, pad_to: int | None = None) -> np.ndarray:
    """Probabilities ``(n_texts, num_labels)`` (float64, label order of ``clf``) of the trained
    :func:`hf_trainer` on ``data``, its texts encoded as for training."""
    logits = trainer.predict(HFEncoded(clf, data, pad_to)).predictions
    return 1 / (1 + np.exp(-logits.astype(np.float64)))


# ------------------------------------------------------------------------------------- output
def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def gflops(flops_per_second: float) -> str:
    """FLOP/s as GFLOP/s with one decimal."""
    return f"{flops_per_second / 1e9:.1f}"


def fraction(value: float, peak: float) -> str:
    """``value`` as a percentage of ``peak``, one decimal."""
    return f"{value / peak:.1%}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON (what JSON cannot hold written as its ``str``)."""
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def check_kept_settings(directory: Path, settings: dict[str, Any]) -> None:
    """Refuse to read back runs a script kept in ``directory`` (its ``--runs``) under other
    settings; record ``settings`` there (``settings.json``) the first time.

    Raises:
        SystemExit: the directory's runs were made with other settings.
    """
    settings = {key: str(value) for key, value in settings.items()}
    path = directory / "settings.json"
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != settings:
            changed = sorted(k for k in {*saved, *settings} if saved.get(k) != settings.get(k))
            raise SystemExit(
                f"{path}: the runs there were made with other settings ({', '.join(changed)}: "
                f"{[saved.get(k) for k in changed]}, now {[settings.get(k) for k in changed]}); "
                "give another --runs directory"
            )
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


STARTED = time.perf_counter()


def log(message: str) -> None:
    """A progress line on stderr, with the seconds since the script started."""
    print(f"[{time.perf_counter() - STARTED:6.0f}s] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def line_plot(path: Path, title: str, xlabel: str, ylabel: str):
    """Axes to draw curves on (``with line_plot(...) as ax``), saved to ``path`` as a PNG with a
    grid and a legend; ``ax`` is None when matplotlib is not installed (then no plot)."""
    try:
        import matplotlib  # optional: only a plot needs it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot")
        yield None
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    yield ax
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    log(f"plot: {path}")
