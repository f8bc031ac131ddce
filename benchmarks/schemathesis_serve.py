"""Schemathesis against a live ``multihot serve``: the OpenAPI schema the server publishes at
``/openapi.json``, every check, a bounded number of generated cases per operation.

A tiny run is trained first (scratch-tiny, one epoch on 300 GoEmotions rows: a few seconds), or
``--run DIR`` is served. The server runs in a subprocess on a free loopback port, with small
limits (8 texts, 300 characters, 6,000 bytes) so that generated cases reach them; the schema
states the first two (maxItems, maxLength), and the check of schema-violating requests is told
that 413 is a rejection too (schemathesis's default list of rejections leaves it out). Prints
the number of cases generated and each failure; exits 1 if there is one.

    python benchmarks/schemathesis_serve.py                      # about a minute on 2 cores
    python benchmarks/schemathesis_serve.py --max-examples 200 --seed 7
    python benchmarks/schemathesis_serve.py --run runs/x --backend onnx

Needs the dev extra (schemathesis); nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "goemotions"
LIMITS = ("--max-texts", "8", "--max-chars", "300", "--max-body-bytes", "6000")
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                     "429", "5XX"]
"""
"""schemathesis.toml: its default rejections, and 413 Content Too Large."""
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def multihot(*args: str) -> list[str]:
    return [sys.executable, "-m", "multihot", *args]


def train_tiny(workdir: Path) -> Path:
    """A one-epoch scratch-tiny run on the first 300 / 100 rows of the bundled sample."""
    data = {}
    for split, rows in (("train", 300), ("dev", 100)):
        lines = (SAMPLE / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:rows]
        data[split] = workdir / f"{split}.jsonl"
        data[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = workdir / "run"
    subprocess.run(
        multihot(
            "train",
            str(data["train"]),
            "--val",
            str(data["dev"]),
            "--encoder",
            "scratch-tiny",
            "--epochs",
            "1",
            "--precision",
            "fp32",
            "-o",
            str(run),
        ),
        check=True,
        env=ENV,
        stdout=subprocess.DEVNULL,
    )
    return run


def start_server(run: Path, flags: list[str]) -> tuple[subprocess.Popen, str]:
    """The server process and its URL, once ``/readyz`` answers 200."""
    process = subprocess.Popen(
        multihot("serve", str(run), "--port", "0", *LIMITS, *flags),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = ""
    while not url:
        line = process.stderr.readline()
        if not line:
            raise SystemExit(f"the server exited with {process.wait()}")
        if " at http://" in line:
            url = line.split(" at ", 1)[1].split()[0].rstrip(";")
    # Keep reading stderr, so that a chatty server never blocks on a full pipe.
    threading.Thread(target=lambda: sys.stderr.writelines(process.stderr), daemon=True).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not become ready within 120 s")


def run_schemathesis(url: str, max_examples: int, seed: int, workdir: Path) -> dict:
    """``st run`` with every check; its JSON report."""
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    config, report = workdir / "schemathesis.toml", workdir / "report.json"
    config.write_text(CONFIG, encoding="utf-8")
    command = [
        st,
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--request-timeout",
        "30",
    ]
    subprocess.run(command, env=ENV, check=False)
    return json.loads(report.read_text(encoding="utf-8"))


def summarise(report: dict, seconds: float) -> int:
    cases = report["test_cases"]
    print(
        f"\nschemathesis {report['schemathesis_version']}, seed {report['seed']}: "
        f"{report['operations']['tested']} operations, {cases['generated']} cases generated, "
        f"{cases['with_failures']} with failures ({cases['unique_failures']} unique), "
        f"{cases['errored']} errored, in {seconds:.1f} s"
    )
    for failure in report["failures"]:
        where = ", ".join(map(str, failure.get("operations", [])))
        print(f"  {failure['code']} {failure['title']}: {failure['count']} ({where})")
    for error in report.get("errors") or []:
        print(f"  error: {error}")
    return 1 if report["failures"] or report.get("errors") or cases["errored"] else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--run", type=Path, help="serve this run directory (default: train a tiny one)"
    )
    parser.add_argument(
        "--max-examples", type=int, default=100, help="cases per operation and phase"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="multihot-st-") as tmp:
        workdir = Path(tmp)
        run = args.run or train_tiny(workdir)
        flags = ["--backend", args.backend] + (
            ["--precision", "fp32"] if args.backend == "torch" else []
        )
        process, url = start_server(run, flags)
        try:
            started = time.monotonic()
            report = run_schemathesis(url, args.max_examples, args.seed, workdir)
            status = summarise(report, time.monotonic() - started)
        finally:
            process.terminate()
            process.wait(60)
    sys.exit(status)


if __name__ == "__main__":
    main()
