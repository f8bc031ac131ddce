"""Time and peak memory of reading one long document whole (``--long-text chunk``), prediction and
a training step, against its length: 1k, 4k, 16k and 64k tokens. Windows cost the same each, so
both should grow linearly with the length; a model attending over the whole document at once
would grow quadratically (its attention alone is tokens squared).

    python benchmarks/long_docs.py                      # all-MiniLM-L6-v2, windows of 128
    python benchmarks/long_docs.py --encoder scratch-mini --lengths 1024,4096

Each measurement runs in a fresh process, so its peak resident memory is its own. The model is
loaded and warmed up on a one-window document (the resident memory then is the base). Then the
document is predicted twice, the second pass timed (``TorchBackend``, the path of
``Classifier.predict_proba``: tokenizing, windows, packing up to ``--batch-tokens``), or trained
on for two steps, the second timed (forward over all windows, window pooling, loss, backward,
AdamW), in bf16 autocast where the CPU has it. The document is GoEmotions train comments joined
until it has the tokens asked for. "Extra memory" is the peak less the base.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import DEFAULT_DATA, describe_machine, load_goemotions, machine_line, table, write_json

LENGTHS = (1024, 4096, 16384, 65536)


def document(tokenizer, tokens: int, data: Path) -> str:
    """GoEmotions train comments joined until the text has ``tokens`` tokens (without specials)."""
    from multihot.data.encoding import content_ids

    texts, _ = load_goemotions(data, "train")
    pieces, count = [], 0
    for text, ids in zip(texts.texts, content_ids(tokenizer, texts.texts[:20000]), strict=False):
        pieces.append(text)
        count += len(ids)
        if count >= tokens:
            break
    words = " ".join(pieces)
    ids = content_ids(tokenizer, [words])[0][:tokens]
    return tokenizer.decode(ids)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args) -> dict:
    """One measurement, in this process: ``{"seconds", "peak_mb", "base_mb", "windows"}``."""
    import torch

    from multihot.core.config import ModelConfig
    from multihot.core.precision import autocast, resolve_precision
    from multihot.data.batching import Collator, model_inputs
    from multihot.data.encoding import Reading, tokenize
    from multihot.inference.torch_backend import TorchBackend
    from multihot.modeling.encoders import build_encoder, is_scratch
    from multihot.modeling.model import MultiLabelModel
    from multihot.training.setup import checkpoint_activations

    torch.manual_seed(0)
    texts, _ = load_goemotions(args.data, "train")
    encoder, tokenizer, encoder_config = build_encoder(
        args.encoder, texts.texts[:5000], 8000, args.max_length, 0.1
    )
    config = ModelConfig(
        encoder=args.encoder,
        pooling="mean" if is_scratch(args.encoder) else "label-attention",
        max_length=args.max_length,
        long_text="chunk",
        max_chunks=10**6,
        batch_tokens=args.batch_tokens,
    )
    model = MultiLabelModel(encoder, 28, config)
    reading = Reading.of(config)
    text = document(tokenizer, args.tokens, args.data)
    precision = resolve_precision("auto", "cpu")
    windows = len(tokenize(tokenizer, [text], reading)[0])
    if args.task == "predict":
        backend = TorchBackend(model, tokenizer, encoder_config, reading)
        backend.predict_proba(["a short warm-up text"])
        base = rss_mb()
        backend.predict_proba([text])  # warm-up: the first pass over new shapes compiles them
        started = time.perf_counter()
        backend.predict_proba([text])
        seconds = time.perf_counter() - started
    else:
        model.train()
        if args.gradient_checkpointing:
            checkpoint_activations(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        collate = Collator(tokenizer.pad_token_id, None)
        targets = torch.zeros(28)

        def step(doc_text: str) -> None:
            ids = tokenize(tokenizer, [doc_text], reading)
            batch = collate([(0, ids[0], targets.numpy())])
            with autocast("cpu", precision):
                logits = model(**model_inputs(batch, "cpu", args.batch_tokens))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits.float(), batch["targets"]
            )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step("a short warm-up text")
        base = rss_mb()
        step(text)  # warm-up: the first pass over new shapes compiles them
        started = time.perf_counter()
        step(text)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "base_mb": base,
        "windows": windows,
        "precision": precision,
    }


def measure(args, task: str, tokens: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        task,
        "--tokens",
        str(tokens),
        "--encoder",
        args.encoder,
        "--max-length",
        str(args.max_length),
        "--batch-tokens",
        str(args.batch_tokens),
        "--data",
        str(args.data),
        *(["--gradient-checkpointing"] if args.gradient_checkpointing else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{task} at {tokens} tokens failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per window")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="train with the encoder's activations recomputed in the backward pass",
    )
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=("predict", "train"), help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.task = args.child
        print(json.dumps(child(args)))
        return
    print(machine_line(describe_machine()))
    lengths = [int(n) for n in args.lengths.split(",")]
    results = {task: {n: measure(args, task, n) for n in lengths} for task in ("predict", "train")}
    first = lengths[0]
    rows = []
    for n in lengths:
        row = [f"{n:,}", results["predict"][n]["windows"]]
        for task in ("predict", "train"):
            r, r0 = results[task][n], results[task][first]
            row += [
                f"{r['seconds']:.2f}",
                f"{r['seconds'] / n * 1000:.3f}",
                f"{r['seconds'] / r0['seconds']:.1f}x",
                f"{r['peak_mb']:.0f}",
                f"{r['peak_mb'] - r['base_mb']:.0f}",
            ]
        rows.append(row)
    print(
        f"encoder {args.encoder}, windows of {args.max_length} tokens (stride "
        f"{args.max_length // 4}), batch tokens {args.batch_tokens}, "
        f"{'gradient checkpointing, ' if args.gradient_checkpointing else ''}"
        f"{results['predict'][first]['precision']}; one document per measurement, fresh process"
    )
    print(
        table(
            [
                "tokens",
                "windows",
                "predict s",
                "predict s / 1k tokens",
                "predict time vs 1k",
                "predict peak RSS MB",
                "predict extra MB",
                "train step s",
                "train s / 1k tokens",
                "train time vs 1k",
                "train peak RSS MB",
                "train extra MB",
            ],
            rows,
        )
    )
    last = lengths[-1]
    ratio = last / first
    for task in ("predict", "train"):
        grew = results[task][last]["seconds"] / results[task][first]["seconds"]
        extra = [results[task][n]["peak_mb"] - results[task][n]["base_mb"] for n in (first, last)]
        print(
            f"{task}: {ratio:.0f}x the tokens took {grew:.1f}x the time (linear: {ratio:.0f}x, "
            f"quadratic: {ratio**2:.0f}x); extra memory {extra[0]:.0f} MB -> {extra[1]:.0f} MB"
        )
    if args.json:
        write_json(args.json, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
