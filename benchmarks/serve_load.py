"""Serving under load: ``multihot serve`` with micro-batching, the same with ``--max-batch 1``, and the
server a user would write by hand (``handwritten_server.py``: FastAPI calling a transformers
text-classification pipeline on the run's ``--format hf`` export, sigmoid, one request at a time),
all three on the same run, on loopback.

Each server runs alone (a subprocess, started, warmed up with 20 requests, then stopped before the
next). For each number of concurrent clients (16, 64, 256; each client one keep-alive connection,
one text per request, the next request sent when the answer is in), a bounded load: ``--requests``
requests in all or ``--time-limit`` seconds, whichever comes first. Texts are GoEmotions test
texts, in order. Printed per server and client count: requests/s answered 200, latency p50/p95/p99
of those, 503s (each checked for ``Retry-After``), other 5xx and failed connections, and the
server's peak resident memory during that load (sampled every 50 ms).

The load generator shares the machine with the server (an asyncio loop in this process, raw
HTTP/1.1). The run is pooler + linear (the shape the HF export takes): by default the packaged
all-MiniLM-L6-v2 fine-tuned for one epoch on the bundled sample (speed does not depend on
accuracy), or ``--run DIR``.

    python benchmarks/serve_load.py                 # about 15 minutes on 2 cores
    python benchmarks/serve_load.py --quick         # scratch-mini, 16 and 64 clients, a smoke run
    python benchmarks/serve_load.py --run runs/x    # an existing pooler + linear run

Issue 19 targets: at 64 clients >= 3x the requests/s of --max-batch 1 and >= 5x the hand-written
server, with p99 latency no worse than the hand-written server's; at 256 clients no 5xx other than
503 with Retry-After, and peak memory within 20% of the 16-client run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from _common import (
    DEFAULT_DATA,
    ROOT,
    describe_machine,
    load_goemotions,
    machine_line,
    met,
    proc_status_bytes,
    table,
    write_json,
)

SAMPLE = ROOT / "examples" / "goemotions"
HANDWRITTEN = Path(__file__).resolve().parent / "handwritten_server.py"


# ---------------------------------------------------------------------------------- the model
def sample_run(out: Path, encoder: str) -> Path:
    """A pooler + linear run on ``encoder``, one epoch on the bundled sample."""
    from multihot import Classifier

    Classifier.train(
        SAMPLE / "train.jsonl",
        SAMPLE / "dev.jsonl",
        output=out,
        encoder=encoder,
        pooling="pooler",
        head="linear",
        epochs=1,
        compare_baseline=False,
    )
    return out


def onnx_flags(run: Path, flags: list[str]) -> list[str]:
    """Serve's flags with the graph the ONNX backend needs exported first: ``--backend onnx``
    serves ``run/model.onnx``, ``--backend onnx --onnx-model model.int8.onnx`` (a bare name is a
    file of the run) the int8 graph. The int8 export's F1 gate is opened (its figures are still
    printed): this benchmark measures speed, and the default run is one epoch on the sample."""
    if "--backend" not in flags or flags[flags.index("--backend") + 1] != "onnx":
        return flags
    from multihot.export import export_onnx
    from multihot.export.int8 import Int8Settings

    flags = list(flags)
    if "--onnx-model" in flags:
        at = flags.index("--onnx-model") + 1
        if "/" not in flags[at]:
            flags[at] = str(run / flags[at])
        graph = Path(flags[at])
    else:
        graph = run / "model.onnx"
    if not graph.exists():
        int8 = "int8" in graph.name
        result = export_onnx(
            run,
            graph,
            quantize="int8" if int8 else None,
            int8=Int8Settings(max_f1_drop=1.0) if int8 else None,
        )
        check = result.accuracy or result.parity
        print(f"exported {graph.name}: {check.summary() if check else 'no check'}", flush=True)
    return flags


def hf_export(run: Path) -> Path:
    from multihot.export import export_hf

    target = run / "hf"
    if not (target / "config.json").exists():
        export_hf(run, target)
    return target


# -------------------------------------------------------------------------------- the servers
class ServerProcess:
    """A server in a subprocess on ``port``, ready once ``health`` answers 200."""

    def __init__(self, name: str, command: list[str], port: int, path: str, health: str):
        self.name, self.port, self.path = name, port, path
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self.process.stderr.read, daemon=True).start()
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name}: the server did not start")
            time.sleep(0.2)

    def rss_bytes(self) -> int:
        return proc_status_bytes(self.process.pid, "VmRSS") or 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, run: Path, hf_dir: Path | None) -> ServerProcess:
    port = free_port()
    if kind == "handwritten":
        command = [sys.executable, str(HANDWRITTEN), str(hf_dir), "--port", str(port)]
        return ServerProcess(kind, command, port, "/predict", "/health")
    if not kind.startswith("multihot"):
        raise SystemExit(f"unknown server {kind!r}: multihot [FLAGS] or handwritten")
    flags = onnx_flags(run, kind.split()[1:])  # "multihot --max-batch 1": serve's own flags
    command = [sys.executable, "-m", "multihot", "serve", str(run), "--port", str(port), *flags]
    return ServerProcess(kind, command, port, "/v1/predict", "/readyz")


# ----------------------------------------------------------------------------------- the load
async def one_client(port, path, texts, counter, total, deadline, results) -> None:
    reader = writer = None
    try:
        while True:
            i = next(counter)
            if i >= total or time.monotonic() > deadline:
                return
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = json.dumps({"texts": [texts[i % len(texts)]]}).encode()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            try:
                writer.write(head + body)
                await writer.drain()
                status = int((await reader.readline()).split()[1])
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = line.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", 0)))
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                results.append(("failed", time.perf_counter() - started, False))
                writer.close()
                reader = writer = None
                continue
            results.append((status, time.perf_counter() - started, "retry-after" in headers))
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def load(server: ServerProcess, texts, clients: int, total: int, seconds: float):
    counter = itertools.count()
    results: list = []
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(
            one_client(server.port, server.path, texts, counter, total, deadline, results)
            for _ in range(clients)
        )
    )
    return results, time.perf_counter() - started


def run_loop(coroutine):
    """``asyncio.run``, on uvloop where it is installed (the load generator's own CPU is the
    server's loss: they share the machine)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def measure(server: ServerProcess, texts, clients: int, total: int, seconds: float) -> dict:
    peak = [server.rss_bytes()]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], server.rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results, elapsed = run_loop(load(server, texts, clients, total, seconds))
    done.set()
    sampler.join()
    ok = np.array([lat for status, lat, _ in results if status == 200])
    busy = [r for r in results if r[0] == 503]
    return {
        "server": server.name,
        "clients": clients,
        "requests": len(results),
        "ok": int(ok.size),
        "seconds": elapsed,
        "rps": ok.size / elapsed,
        "p50_ms": float(np.percentile(ok, 50) * 1000) if ok.size else None,
        "p95_ms": float(np.percentile(ok, 95) * 1000) if ok.size else None,
        "p99_ms": float(np.percentile(ok, 99) * 1000) if ok.size else None,
        "503": len(busy),
        "503_without_retry_after": sum(1 for r in busy if not r[2]),
        "other_5xx": sum(1 for s, _, _ in results if isinstance(s, int) and s >= 500 and s != 503),
        "failed": sum(1 for s, _, _ in results if s == "failed"),
        "other": sum(1 for s, _, _ in results if isinstance(s, int) and s != 200 and s < 500),
        "peak_rss_mb": peak[0] / 2**20,
    }


def verdict(rows: list[dict]) -> list[str]:
    """The targets, for each multihot server measured but ``--max-batch 1`` (each backend is a
    candidate for "the best backend for CPU")."""
    by = {(r["server"], r["clients"]): r for r in rows}
    lines = []
    one, hand = by.get(("multihot --max-batch 1", 64)), by.get(("handwritten", 64))
    names = dict.fromkeys(r["server"] for r in rows if r["server"].startswith("multihot"))
    for name in (n for n in names if n != "multihot --max-batch 1"):
        lines.extend(f"{name}: {line}" for line in server_verdict(by, name, one, hand))
    return lines


def server_verdict(by: dict, name: str, one: dict | None, hand: dict | None) -> list[str]:
    lines = []
    mb = by.get((name, 64))
    if mb and one and name == "multihot":
        x = mb["rps"] / max(one["rps"], 1e-9)
        lines.append(
            f"64 clients: {x:.1f}x the requests/s of --max-batch 1 (target >= 3x): {met(x >= 3)}"
        )
    if mb and hand:
        x = mb["rps"] / max(hand["rps"], 1e-9)
        lines.append(f"64 clients: {x:.1f}x the hand-written server (target >= 5x): {met(x >= 5)}")
        ok = (
            mb["p99_ms"] is not None
            and hand["p99_ms"] is not None
            and mb["p99_ms"] <= hand["p99_ms"]
        )
        lines.append(
            f"64 clients: p99 {mb['p99_ms']:.0f} ms against the hand-written server's "
            f"{hand['p99_ms']:.0f} ms (target: no worse): {met(ok)}"
        )
    big, small = by.get((name, 256)), by.get((name, 16))
    if big:
        bad = big["other_5xx"] + big["503_without_retry_after"] + big["failed"]
        lines.append(
            f"256 clients: {bad} 5xx other than 503 with Retry-After, or failed "
            f"connections (target 0): {met(bad == 0)}"
        )
    if big and small:
        growth = big["peak_rss_mb"] / small["peak_rss_mb"] - 1
        lines.append(
            f"256 clients: peak memory {big['peak_rss_mb']:.0f} MB, {growth:+.0%} on 16 "
            f"clients' {small['peak_rss_mb']:.0f} MB (target within 20%): "
            f"{met(abs(growth) <= 0.20)}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="a pooler + linear run (default: trained here)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--clients", default=None, help="comma-separated (default 16,64,256)")
    parser.add_argument("--requests", type=int, default=None, help="requests per load (2000)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per load (60)")
    parser.add_argument(
        "--servers",
        default="multihot,multihot --max-batch 1,handwritten",
        help="comma-separated: multihot, multihot with serve's flags "
        "('multihot --max-batch 32', 'multihot --backend onnx', 'multihot --backend onnx "
        "--onnx-model model.int8.onnx': graphs exported first when missing), handwritten",
    )
    parser.add_argument("--quick", action="store_true", help="scratch-mini, 16 and 64 clients")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    clients = [
        int(c) for c in (args.clients or ("16,64" if args.quick else "16,64,256")).split(",")
    ]
    total = args.requests or (300 if args.quick else 2000)
    seconds = args.time_limit or (20.0 if args.quick else 60.0)

    print(machine_line(describe_machine()))
    work = Path(tempfile.mkdtemp(prefix="multihot-serve-load-"))
    run = args.run
    if run is None:
        encoder = "scratch-mini" if args.quick else "minilm"
        print(f"training a pooler + linear {encoder} run, 1 epoch on the bundled sample")
        run = sample_run(work / "run", encoder)
    servers = [s.strip() for s in args.servers.split(",")]
    hf_dir = hf_export(run) if "handwritten" in servers else None
    texts = load_goemotions(args.data, "test")[0].texts
    print(f"run {run}; {len(texts)} test texts; {total} requests or {seconds:.0f} s per load")

    rows = []
    for name in servers:
        server = start_server(name, run, hf_dir)
        try:
            run_loop(load(server, texts[:20], 4, 20, 60))  # warm up
            for n in clients:
                row = measure(server, texts, n, total, seconds)
                rows.append(row)
                print(
                    f"  {name}, {n} clients: {row['rps']:.1f} req/s, p99 {row['p99_ms']:.0f} ms",
                    flush=True,
                )
        finally:
            server.stop()

    def ms(value):
        return "-" if value is None else f"{value:.0f}"

    print()
    print(
        table(
            [
                "server",
                "clients",
                "answered 200",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "503 (all with Retry-After)",
                "other 5xx / failed",
                "peak RSS MB",
            ],
            [
                [
                    r["server"],
                    r["clients"],
                    f"{r['ok']}/{r['requests']}",
                    f"{r['rps']:.1f}",
                    ms(r["p50_ms"]),
                    ms(r["p95_ms"]),
                    ms(r["p99_ms"]),
                    f"{r['503']} ({'yes' if not r['503_without_retry_after'] else 'no'})",
                    f"{r['other_5xx']} / {r['failed']}",
                    f"{r['peak_rss_mb']:.0f}",
                ]
                for r in rows
            ],
        )
    )
    print()
    for line in verdict(rows):
        print(line)
    if args.json:
        write_json(args.json, {"run": str(run), "rows": rows})


if __name__ == "__main__":
    main()
