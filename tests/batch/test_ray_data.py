"""``multihot predict --engine ray`` on a Ray instance started here: the rows and probabilities of
``multihot predict``, byte for byte; a killed actor retried; bad input a one-line error and no
output. Ray gets three CPU slots on this machine: two actors and one for Ray Data's read and write
tasks, which wait forever behind actors holding every slot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import SAMPLE, assert_clean_error, invoke, read_jsonl, subprocess_env
from multihot.batch import BatchOptions, BatchPredictor, RayOptions, predict_file

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'multihot[ray]')")

ROWS = 20_000


@pytest.fixture(scope="module")
def ray_local():
    """A Ray instance for this module's tests; the CLI uses it as it finds it."""
    # Ray Data's log handlers keep the stderr they were made with: the real one, not the
    # stream of the first CliRunner that would import it (closed once that command returns).
    import ray.data  # noqa: F401

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    """20,000 texts of the bundled sample (its 4,000 training texts five times), JSON lines."""
    lines = (SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line)["text"] for line in lines] * (ROWS // len(lines))
    path = tmp_path_factory.mktemp("ray") / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), encoding="utf-8")
    return path


def local_predict(run: Path, data: Path, out: Path, *flags) -> list[dict]:
    """``multihot predict`` in this process (``--threads`` changes its thread count: take the
    ``restore_threads`` fixture): its output's records."""
    result = invoke("predict", run, data, "-o", out, *flags)
    assert result.exit_code == 0, result.output
    return read_jsonl(out)


def ray_predict(run: Path, data: Path, out: Path, *flags) -> Path:
    result = invoke("predict", run, data, "-o", out, "--engine", "ray", *flags)
    assert result.exit_code == 0, result.output
    assert f"wrote {ROWS} predictions" in result.stderr
    return out


def assert_same_rows(table, records: list[dict]) -> None:
    """An Arrow table of predictions holds the records ``predict`` wrote: texts and labels in
    order, probabilities equal once rounded as ``predict`` rounds them."""
    names = list(records[0]["probs"])
    assert table.column_names == ["text", "labels", *names]
    assert table.column("text").to_pylist() == [r["text"] for r in records]
    assert table.column("labels").to_pylist() == [r["labels"] for r in records]
    probs = np.column_stack([table.column(name).to_numpy() for name in names])
    rounded = np.round(probs.astype(np.float64), 6)
    np.testing.assert_array_equal(rounded, [[r["probs"][n] for n in names] for r in records])


def test_refusals_before_ray_starts(onnx_run, toy_run, texts, tmp_path):
    """Options, inputs and outputs the engine cannot take are refused on the driver."""
    _, run, _ = onnx_run
    (tmp_path / "exists").mkdir()
    csv = tmp_path / "texts.csv"
    csv.write_text("text\nhello\n")
    cases = [
        (["--text", "hi", "--engine", "ray", "-o", tmp_path / "o.jsonl"], "labels a file"),
        ([texts, "--engine", "ray"], "give -o"),
        ([texts, "--engine", "ray", "--processes", "2", "-o", "o.jsonl"], "see --concurrency"),
        ([texts, "--concurrency", "2", "-o", tmp_path / "o.jsonl"], "applies to --engine ray"),
        ([texts, "--engine", "spark", "-o", tmp_path / "o.jsonl"], "expected one of local, ray"),
        ([texts, "--engine", "ray", "-o", tmp_path / "exists"], "exists; a directory output"),
        ([texts, "--engine", "ray", "-o", tmp_path / "o.txt"], "unsupported output"),
        ([texts, "--engine", "ray", "-o", tmp_path / "o.jsonl", "--text-col", "body"], "body"),
        ([csv, "--engine", "ray", "-o", tmp_path / "o.jsonl"], "reads .parquet or .jsonl"),
        ([texts, "--engine", "ray", "-o", texts], "is the input file"),
        ([texts, "--engine", "ray", "-o", run / "o.jsonl"], "inside"),
    ]
    graph = ["--backend", "onnx", "--onnx-model", tmp_path / "no.onnx"]
    cases.append(([texts, "--engine", "ray", *graph, "-o", tmp_path / "o.jsonl"], "no.onnx: no"))
    for args, fragment in cases:
        assert_clean_error(invoke("predict", run, *args), fragment)
    not_exported = toy_run[1]
    flags = ["--engine", "ray", "--backend", "onnx", "-o", tmp_path / "o.jsonl"]
    assert_clean_error(invoke("predict", not_exported, texts, *flags), "write it with")
    assert not ray.is_initialized()  # first in this module: nothing started Ray yet


def test_two_actors_write_what_predict_writes(
    ray_local, onnx_run, texts, tmp_path, restore_threads
):
    """fp32 torch, two actors of one thread: the file one process on one thread writes, byte
    for byte."""
    _, run, _ = onnx_run
    local_predict(run, texts, tmp_path / "local.jsonl", "--precision", "fp32", "--threads", "1")
    flags = ("--precision", "fp32", "--concurrency", "2")
    got = ray_predict(run, texts, tmp_path / "ray.jsonl", *flags)
    assert got.read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.jsonl", "ray.jsonl"]


def test_actors_compute_on_the_threads_given(ray_local, onnx_run, texts, tmp_path):
    """An actor computes on one thread (the CPU Ray gives it), or on ``threads``: the same count
    as ``predict --threads`` must be given for the same bytes, since kernels sum in another order
    on another count (bf16 rounding shows it: see :mod:`multihot.core.threads`)."""
    import pyarrow as pa

    _, run, _ = onnx_run
    small = tmp_path / "small.jsonl"
    small.write_text("".join(texts.read_text(encoding="utf-8").splitlines(True)[:200]))

    class ReportsThreads(BatchPredictor):
        def __call__(self, batch):
            import torch

            out = super().__call__(batch)
            return out.append_column("threads", pa.array([torch.get_num_threads()] * len(out)))

    for threads, cpus in ((None, 1.0), (2, 2.0)):
        out = tmp_path / f"threads-{threads}.parquet"
        options = BatchOptions(run=run, threads=threads)
        job = RayOptions(cpus_per_actor=cpus)
        assert predict_file(small, out, options, job, predictor=ReportsThreads) == 200
        assert set(pq.read_table(out).column("threads").to_pylist()) == {threads or 1}


def test_threads_flag_sets_the_process_or_each_actor(
    onnx_run, texts, tmp_path, monkeypatch, restore_threads
):
    """``--threads N``: this process computes on N threads; with ``--engine ray`` each actor
    does, and Ray reserves N CPUs for it."""
    import torch

    from multihot.cli import predict as cli_predict

    _, run, _ = onnx_run
    jobs = []
    monkeypatch.setattr(cli_predict, "_predict_on_ray", lambda *args: jobs.append(args[2:]))
    out = tmp_path / "o.jsonl"
    assert (
        invoke("predict", run, texts, "-o", out, "--engine", "ray", "--threads", 2).exit_code == 0
    )
    ((options, job),) = jobs
    assert (options.threads, job.cpus_per_actor) == (2, 2.0)
    assert invoke("predict", run, "--text", "hi", "--threads", 1).exit_code == 0
    assert torch.get_num_threads() == 1


def test_onnx_backend_through_ray_address(ray_local, onnx_run, texts, tmp_path):
    """A second driver, in its own process, joins the Ray instance named by ``RAY_ADDRESS`` (as
    on a cluster) and writes one Parquet file with what ``predict --backend onnx`` gives."""
    _, run, _ = onnx_run
    expected = local_predict(run, texts, tmp_path / "local.jsonl", "--backend", "onnx")
    out = tmp_path / "ray.parquet"
    env = {**subprocess_env(), "RAY_ADDRESS": ray_local}
    command = [sys.executable, "-m", "multihot", "predict", str(run), str(texts), "-o", str(out)]
    command += ["--engine", "ray", "--backend", "onnx"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {ROWS} predictions" in done.stderr
    assert_same_rows(pq.read_table(out), expected)


def test_killed_actor_is_retried(ray_local, onnx_run, texts, tmp_path, restore_threads):
    """The actor exits (as a killed process does) on its first batch; Ray restarts it and
    retries the batch. The directory of Parquet parts is complete, its parts in row order."""
    _, run, _ = onnx_run
    small = tmp_path / "small.jsonl"
    small.write_text("".join(texts.read_text(encoding="utf-8").splitlines(True)[:3000]))
    flags = ("--chunk-size", "1000", "--precision", "fp32", "--threads", "1")
    expected = local_predict(run, small, tmp_path / "local.jsonl", *flags)
    marker = tmp_path / "die-once"
    marker.touch()

    class DiesOnce(BatchPredictor):  # defined here, so Ray pickles it by value for the actors
        def __call__(self, batch):
            try:
                marker.unlink()  # only one actor can remove it: that one dies, once
            except FileNotFoundError:
                return super().__call__(batch)
            os._exit(1)

    out = tmp_path / "parts"
    options = BatchOptions(run=run, precision="fp32")
    job = RayOptions(chunk_size=1000, rows_per_file=1000)
    assert predict_file(small, out, options, job, predictor=DiesOnce) == 3000
    assert not marker.exists()
    assert len(list(out.glob("*.parquet"))) == len(list(out.iterdir())) == 3
    assert_same_rows(pq.read_table(out), expected)  # its parts in name order


def test_bad_text_is_one_line_and_no_output(ray_local, onnx_run, tmp_path):
    _, run, _ = onnx_run
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["fine", "ok", "  ", "yes"]))
    for out in (tmp_path / "out.jsonl", tmp_path / "parts"):
        result = invoke("predict", run, data, "-o", out, "--engine", "ray")
        assert_clean_error(result, "column 'text', in a batch of 4 rows: text 3: empty text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]
