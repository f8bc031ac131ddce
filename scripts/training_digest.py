"""Digest of a tiny fp32 training run that is SIGKILLed and resumed, to show a change to the
training core leaves training bit-identical.

    .venv/bin/python scripts/training_digest.py [WORKDIR]

Trains an ensemble of two scratch-tiny members (masking, MLM, EMA, ``--eval-every``) on a slice of
the bundled GoEmotions sample twice: once uninterrupted, once killed with SIGKILL from outside as
soon as member 1 has written its first checkpoint, then resumed. Prints the SHA-256 of the weights
(every tensor, by name), the history (without the seconds), the thresholds and the metrics (without
timings) of each, and whether the two agree. Run it before and after a change: the digests must be
equal.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "goemotions"
FLAGS = [
    "--encoder",
    "scratch-tiny",
    "--vocab-size",
    "400",
    "--max-length",
    "48",
    "--precision",
    "fp32",
    "--seed",
    "3",
    "--ensemble",
    "2",
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--eval-every",
    "7",
    "--mask-prob",
    "0.15",
    "--mlm-weight",
    "0.3",
    "--ema-decay",
    "0.9",
    "--no-compare-baseline",
]


def _slice(source: Path, target: Path, rows: int) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:rows]
    target.write_text("".join(lines), encoding="utf-8")
    return target


def _multihot(*args, wait: bool = True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "multihot", *map(str, args)]
    if wait:
        subprocess.run(command, env=env, check=True, capture_output=True)
        return None
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def digest(run: Path) -> dict[str, str]:
    from safetensors.torch import load_file

    weights = load_file(run / "model.safetensors")
    by_name = b"".join(
        name.encode() + weights[name].contiguous().numpy().tobytes() for name in sorted(weights)
    )
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "weights": _sha(by_name),
        "history": _sha(json.dumps(_untimed(history), sort_keys=True).encode()),
        "thresholds": _sha((run / "thresholds.json").read_bytes()),
        "metrics": _sha(json.dumps(_untimed(metrics), sort_keys=True).encode()),
        "val macro_f1": f"{metrics['validation']['macro_f1']:.6f}",
        "evaluations": str(len(history)),
    }


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="digest-"))
    work.mkdir(parents=True, exist_ok=True)
    train = _slice(SAMPLE / "train.jsonl", work / "train.jsonl", 320)
    val = _slice(SAMPLE / "dev.jsonl", work / "val.jsonl", 120)
    common = [train, "--val", val, *FLAGS]

    straight = work / "straight"
    _multihot("train", *common, "-o", straight)

    killed = work / "killed"
    state = killed / "checkpoints" / "member-1" / "last" / "state.json"
    process = _multihot("train", *common, "-o", killed, wait=False)
    while process.poll() is None and not state.exists():
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    if process.wait() != -signal.SIGKILL:
        raise SystemExit("the run ended before it could be killed")
    step = json.loads(state.read_text())["step"]
    _multihot("train", "--resume", killed)

    a, b = digest(straight), digest(killed)
    print(f"killed in member 1 after its checkpoint at step {step}, then resumed")
    for key in a:
        print(f"{key:12} uninterrupted {a[key]:16}  killed+resumed {b[key]:16}")
    print("identical" if a == b else "DIFFERENT")


if __name__ == "__main__":
    main()
