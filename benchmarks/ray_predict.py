"""Batch prediction on Ray Data against single-process ``predict``, on one machine.

The same ``multihot predict RUN texts.jsonl -o out.jsonl`` command runs five ways, each in a
fresh subprocess, one after the other: single-process (``--engine local``) on every core and on one
thread, and ``--engine ray`` with 1 and 2 actors of one thread each (one CPU each, Ray's default)
and with 1 actor on every core (``--threads``); Ray is started inside the command on this
machine, as without ``RAY_ADDRESS``. For each: rows/s end to end (start-up,
Ray's included, reading and writing: what a user waits for), and the peak memory of the command's
whole process tree (the driver, Ray's own processes and the actors), as the sum of the processes'
PSS (proportional set size: a page shared by several processes, such as Ray's object store or
torch's libraries, counts once in all, where summing RSS would count it in each), polled every
0.2 s with psutil. Then the check: each ``--engine ray`` file must be identical, byte for byte, to
the single-process one on the same thread count per process (the same chunks of ``--chunk-size``
rows are labelled alike, see :mod:`multihot.batch.ray_data`; kernels sum in another order on
another thread count, which bf16 rounding shows, see :mod:`multihot.core.threads`). rows/s are
compared with single-process ``predict`` on every core.

Texts: GoEmotions train texts repeated to ``--rows`` (200,000), as JSON lines. Model: the run
given with ``--run`` (a MiniLM run, say ``runs/emo-minilm`` from the README's quickstart), or in
``--smoke`` mode a scratch-tiny run trained here for one epoch on 2,000 texts.

Commands (from the repository root; ``pip install 'multihot[ray]'``):

    python benchmarks/ray_predict.py --run runs/emo-minilm          # 200,000 texts
    python benchmarks/ray_predict.py --run runs/emo-minilm --backend onnx   # its model.onnx
    python benchmarks/ray_predict.py --smoke                        # a minute: 2,000 texts
    python benchmarks/ray_predict.py --run RUN --json ray.json      # also save the results

Issue 35 target: ``--engine ray`` output identical to ``predict``; on one machine within 25% of
single-process ``predict`` rows/s (it exists for clusters, not to win here).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_DATA,
    load_goemotions,
    met,
    setup_logging,
    start_report,
    table,
    train_pooler_run,
    write_json,
)

TARGET_SLOWDOWN = 0.25
"""--engine ray may be this much slower than single-process predict, on one machine."""


class TreeMemory:
    """The peak, over the life of a process, of the summed PSS of it and all its descendants."""

    def __init__(self, pid: int, every: float = 0.2):
        import psutil  # accelerate's dependency, so installed with multihot

        self.root = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.peak_processes = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil  # accelerate's dependency, so installed with multihot

        while not self._done.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:  # the root has exited
                return
            total = 0
            for process in processes:
                # A process may exit between the listing and the reading.
                with contextlib.suppress(psutil.Error):
                    total += process.memory_full_info().pss
            if total > self.peak:
                self.peak, self.peak_processes = total, len(processes)
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_predict(run: Path, texts: Path, out: Path, flags: list[str]) -> dict[str, Any]:
    """``multihot predict RUN texts -o out FLAGS`` in a subprocess: seconds and peak tree PSS."""
    command = [sys.executable, "-m", "multihot", "predict", str(run), str(texts), "-o", str(out)]
    command += flags
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        memory = TreeMemory(process.pid)
        process.wait()
        seconds = time.perf_counter() - start
        memory.stop()
        if process.returncode:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{message}")
    return {"seconds": seconds, "peak_pss_bytes": memory.peak, "processes": memory.peak_processes}


def write_texts(data: Path, rows: int, path: Path) -> None:
    """GoEmotions train texts, repeated to ``rows``, one JSON object per line."""
    import json

    train, _ = load_goemotions(data, "train")
    texts = list(train.texts)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"text": texts[i % len(texts)]}, ensure_ascii=False) + "\n")


def differing_lines(a: Path, b: Path) -> int:
    """Lines that differ between two prediction files (all of them if the counts differ)."""
    with a.open("rb") as fa, b.open("rb") as fb:
        left, right = fa.readlines(), fb.readlines()
    if len(left) != len(right):
        return max(len(left), len(right))
    return sum(x != y for x, y in zip(left, right, strict=True))


def measure(args: argparse.Namespace, run: Path, work: Path, log) -> list[dict[str, Any]]:
    """The sides on the same file; each record with its rows/s and its check against the
    single-process side on the same thread count."""
    texts = work / "texts.jsonl"
    write_texts(args.data, args.rows, texts)
    common = ["--backend", args.backend, "--chunk-size", str(args.chunk_size)]
    if args.backend == "torch":
        common += ["--precision", args.precision]
    cores = len(os.sched_getaffinity(0))
    ray = ["--engine", "ray", "--concurrency"]
    # (name, flags, the side whose file it must equal: the same thread count per process)
    sides = [
        (f"predict, {cores} threads", ["--threads", str(cores)], 0),
        ("predict, 1 thread", ["--threads", "1"], 1),
        ("--engine ray, 1 actor of 1 thread", [*ray, "1"], 1),
        ("--engine ray, 2 actors of 1 thread", [*ray, "2"], 1),
        (f"--engine ray, 1 actor of {cores} threads", [*ray, "1", "--threads", str(cores)], 0),
    ]
    records = []
    for i, (name, flags, reference) in enumerate(sides):
        log(f"{name}: {args.rows:,} texts")
        out = work / f"out-{i}.jsonl"
        record = {"name": name, **run_predict(run, texts, out, [*common, *flags])}
        record["rows_per_second"] = args.rows / record["seconds"]
        record["compared_with"] = sides[reference][0]
        record["differing_lines"] = differing_lines(work / f"out-{reference}.jsonl", out)
        records.append(record)
        log(f"  {record['seconds']:.1f}s, peak PSS {record['peak_pss_bytes'] / 1e6:.0f} MB")
    return records


def report(records: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = records[0]["rows_per_second"]
    rows = [
        [
            r["name"],
            f"{r['seconds']:.1f}",
            f"{r['rows_per_second']:.0f}",
            f"{r['rows_per_second'] / base:.2f}",
            f"{r['peak_pss_bytes'] / 1e6:.0f}",
            r["processes"],
            "-"
            if r["compared_with"] == r["name"]
            else ("yes" if r["differing_lines"] == 0 else f"no ({r['differing_lines']:,} differ)")
            + f" (to {r['compared_with']})",
        ]
        for r in records
    ]
    headers = ["side", "wall s", "rows/s", "vs predict", "peak PSS MB", "processes", "identical"]
    print(f"\n{args.rows:,} texts, --backend {args.backend}, --chunk-size {args.chunk_size}\n")
    print(table(headers, rows))
    on_ray = [r for r in records if r["name"].startswith("--engine ray")]
    best = max(on_ray, key=lambda r: r["rows_per_second"])
    ratio = best["rows_per_second"] / base
    identical = all(r["differing_lines"] == 0 for r in records)
    print(f"\noutput identical to predict on the same threads per process: {met(identical)}")
    print(
        f"best --engine ray ({best['name']}) at {ratio:.2f}x single-process rows/s (target at "
        f"least {1 - TARGET_SLOWDOWN:.2f}x): {met(ratio >= 1 - TARGET_SLOWDOWN)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="the run to predict with (a MiniLM run)")
    parser.add_argument("--smoke", action="store_true", help="2,000 texts, a scratch-tiny run")
    parser.add_argument("--rows", type=int, help="texts to label (200,000; smoke: 2,000)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--precision", default="auto", help="torch backend, every side")
    parser.add_argument("--chunk-size", type=int, help="rows per chunk (8192; smoke: 500)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.run is None and not args.smoke:
        parser.error("give --run RUN (a MiniLM run, say), or --smoke")
    args.rows = args.rows or (2_000 if args.smoke else 200_000)
    args.chunk_size = args.chunk_size or (500 if args.smoke else 8192)
    setup_logging()
    log, machine, _ = start_report()
    with tempfile.TemporaryDirectory(prefix="ray-predict-") as tmp:
        work = Path(tmp)
        run = args.run
        if run is None:
            log("smoke: training a scratch-tiny run for one epoch on 2,000 texts")
            run = train_pooler_run(args.data, 2000, 500, work / "run", encoder="scratch-tiny")
        records = measure(args, run, work, log)
    report(records, args)
    if args.json:
        write_json(args.json, {"machine": machine, "settings": vars(args), "records": records})


if __name__ == "__main__":
    main()
