"""Resumable runs: a checkpoint at every evaluation, a killed run continued, never a run that loads wrong.

In-process tests crash training from a callback (an exception at a given step, the state on disk
as a kill would leave it) and resume in the same process. The subprocess test sends SIGKILL to
``multihot train`` at several points, from outside and from inside (a wrapper that patches one
function to kill its own process there). On a CPU in fp32 a resumed run ends with exactly the
weights, metrics and history (all but the timings) of a run that was never interrupted.
"""

from __future__ import annotations

import json
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import (
    TINY,
    TOY_LABELS,
    TOY_TEXTS,
    assert_clean_error,
    copy_run,
    invoke,
    read_jsonl,
    subprocess_env,
    tiny_flags,
    write_payload,
)
from multihot import Classifier
from multihot.core.errors import ConfigError, RunDirError
from multihot.core.files import dumps
from multihot.data.readers import Dataset
from multihot.inference.predictor import Predictor
from multihot.training.checkpoint import RunCheckpoints, TrainingCheckpoint
from multihot.training.state import LoopState, epoch_batches

# 8 toy texts in batches of 2: 4 steps an epoch, 24 steps, an evaluation (and a checkpoint) every
# 3 steps: some in the middle of an epoch, some at its last batch.
RUN = dict(epochs=6, batch_size=2, eval_every=3, **TINY)


class Crash(Exception):
    """Stands for a kill: raised from a callback, it leaves the run directory as a kill would."""


class Recorder:
    """A training callback that records what it sees and can crash at a chosen step."""

    def __init__(self, crash_at_step: int | None = None, crash_in_member: int = 0):
        self.crash_at_step, self.crash_in_member = crash_at_step, crash_in_member
        self.starts, self.steps = 0, []

    def on_train_start(self, total_steps, steps_per_epoch):
        self.starts += 1

    def on_step(self, step, loss, samples_per_second):
        self.steps.append(step)
        if step == self.crash_at_step and self.starts == self.crash_in_member + 1:
            raise Crash(f"crash at step {step}")

    def on_evaluate(self, record):
        pass

    def on_train_end(self):
        pass


def crash(toy_file, output, step, member=0, **settings):
    with pytest.raises(Crash):
        Classifier.train(
            toy_file,
            toy_file,
            output=output,
            callback=Recorder(crash_at_step=step, crash_in_member=member),
            **settings,
        )


def saved_state(output, member=0) -> dict:
    return json.loads((RunCheckpoints(output).member_state(member) / "state.json").read_text())


def without_timings(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def metrics_without_timings(clf: Classifier) -> dict:
    """The run's metrics but for the seconds the comparison baseline took to fit."""
    metrics = dict(clf.metrics)
    if "linear_baseline" in metrics:
        metrics["linear_baseline"] = without_timings([metrics["linear_baseline"]])[0]
    return metrics


def assert_same_training(a: Classifier, b: Classifier):
    """Bit-identical weights, and the same metrics and history (but for the seconds taken)."""
    weights_a, weights_b = a.model.state_dict(), b.model.state_dict()
    assert weights_a.keys() == weights_b.keys()
    for name, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[name]), name
    # Through JSON: NaN compares equal to NaN.
    assert dumps(metrics_without_timings(a)) == dumps(metrics_without_timings(b))
    assert dumps(without_timings(a.history)) == dumps(without_timings(b.history))
    assert np.array_equal(a.training_texts.values, b.training_texts.values)


def assert_refuses_to_load(run: Path):
    """An unfinished run never loads, and says how to finish it."""
    for load in (Classifier.load, Predictor.load):
        with pytest.raises(RunDirError, match=r"unfinished training run.*multihot train --resume"):
            load(run)


# --------------------------------------------------------------------------- the state on disk
def test_checkpoint_round_trip_restores_every_state_without_unpickling(tmp_path, monkeypatch):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from multihot.core.config import TrainConfig
    from multihot.training.optim import warmup_decay

    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(mixed_precision="no")

    def build(seed):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(6, 4), torch.nn.Dropout(0.3), torch.nn.Linear(4, 3)
        )
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, fused=True)
        scheduler = warmup_decay(optimizer, TrainConfig(warmup_ratio=0.2), 10)
        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
        generator = torch.Generator().manual_seed(seed)
        state = LoopState(
            net=net, optimizer=optimizer, scheduler=scheduler, ema=ema, masking=generator
        )
        checkpoint = TrainingCheckpoint(tmp_path / "last", accelerator, steps_per_epoch=4)
        return net, optimizer, scheduler, ema, generator, state, checkpoint

    net, optimizer, scheduler, ema, generator, state, checkpoint = build(0)
    for _ in range(3):
        net(torch.randn(5, 6)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        ema.update_parameters(net)
    torch.rand(3, generator=generator)
    record = {"step": 3, "epoch": 0.75, "macro_f1": 0.5, "macro_roc_auc": float("nan")}
    state.best_weights = {k: v.clone() for k, v in net.state_dict().items()}
    state.best, state.history = record, [record]
    state.best_probs = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    state.step, state.epoch, state.batch, state.stale, state.seen, state.seconds = (
        4,
        1,
        0,
        1,
        15,
        2.5,
    )
    random.seed(1)
    np.random.seed(2)
    rng_before = (
        torch.get_rng_state(),
        generator.get_state(),
        random.getstate(),
        np.random.get_state(),
    )
    checkpoint.save(state)
    assert sorted(p.name for p in (tmp_path / "last").iterdir()) == [
        "state.json",
        "state.safetensors",
    ]

    # Pickles planted where other tools keep optimizer and RNG states are never opened, and
    # nothing is unpickled at all.
    marker = tmp_path / "pwned"
    for name in ("optimizer.bin", "random_states_0.pkl", "scheduler.pt"):
        write_payload(tmp_path / "last" / name, marker)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)

    net2, optimizer2, scheduler2, ema2, generator2, restored, checkpoint2 = build(1)
    checkpoint2.restore(restored)
    torch.rand(7), torch.rand(7, generator=generator2), random.random(), np.random.rand()
    assert epoch_batches(restored, accelerator, ["batches"]) == ["batches"]  # restores the RNGs
    assert not marker.exists()

    counters = ("step", "epoch", "batch", "stale", "stopped", "seen", "seconds")
    assert [getattr(restored, k) for k in counters] == [4, 1, 0, 1, False, 15, 2.5]
    for a, b in [(net, net2), (ema, ema2)]:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), name
    state, state2 = optimizer.state_dict(), optimizer2.state_dict()
    assert state["param_groups"] == state2["param_groups"]
    for index, values in state["state"].items():
        for name, value in values.items():
            assert torch.equal(value, state2["state"][index][name]), (index, name)
    assert scheduler.state_dict() == scheduler2.state_dict()
    assert [g["lr"] for g in optimizer.param_groups] == [g["lr"] for g in optimizer2.param_groups]
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, restored.best_weights[name])
    np.testing.assert_array_equal(
        restored.best_probs, np.random.default_rng(0).random((5, 3), dtype=np.float32)
    )
    assert dumps(restored.history) == dumps([record]) and restored.best["step"] == 3
    assert torch.equal(torch.get_rng_state(), rng_before[0])
    assert torch.equal(generator2.get_state(), rng_before[1])
    assert random.getstate() == rng_before[2]
    np.testing.assert_array_equal(np.random.get_state()[1], rng_before[3][1])
    assert np.random.get_state()[2:] == rng_before[3][2:]


class AsProcess:
    """An accelerator as process ``index`` of a ``count``-process job sees itself."""

    def __init__(self, accelerator, index: int, count: int):
        self._accelerator, self.process_index, self.num_processes = accelerator, index, count

    def __getattr__(self, name):
        return getattr(self._accelerator, name)


def test_each_process_restores_its_own_rng_states(tmp_path):
    """Regression: the second process's row of a (processes, state) tensor was handed to torch as
    a view, and torch reads an RNG state from its storage's start: the first process's state
    (found by a 2-process run that failed to resume with 'Invalid mt19937 state')."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from safetensors.torch import save_file

    from multihot.core.config import TrainConfig
    from multihot.training.optim import warmup_decay

    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(mixed_precision="no")
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(net.parameters())
    schedule = warmup_decay(optimizer, TrainConfig(warmup_ratio=0.0), 4)
    state = tmp_path / "last"
    TrainingCheckpoint(state, accelerator, steps_per_epoch=4).save(
        LoopState(net=net, optimizer=optimizer, scheduler=schedule)
    )
    # The job had two processes, and the first one's generator was elsewhere.
    tensors = load_file(state / "state.safetensors")
    mine = tensors["rng/torch"][0]
    other = torch.Generator().manual_seed(123).get_state()
    tensors["rng/torch"] = torch.stack([other, mine])
    save_file(tensors, state / "state.safetensors")
    meta = json.loads((state / "state.json").read_text())
    (state / "state.json").write_text(json.dumps({**meta, "num_processes": 2}))

    second = TrainingCheckpoint(state, AsProcess(accelerator, 1, 2), steps_per_epoch=4)
    restored = LoopState(net=net, optimizer=optimizer, scheduler=schedule)
    second.restore(restored)
    torch.manual_seed(0)
    epoch_batches(restored, accelerator, [])
    assert torch.equal(torch.get_rng_state(), mine)

    with pytest.raises(RunDirError, match="run of 2 processes; resume it with the same number"):
        TrainingCheckpoint(state, accelerator, steps_per_epoch=4).restore(
            LoopState(net=net, optimizer=optimizer, scheduler=schedule)
        )


# ------------------------------------------------------------------ resumed = never interrupted
@pytest.fixture(scope="module")
def uninterrupted(toy_file):
    """One uninterrupted run per setting, shared by the cases that crash it at different steps."""
    runs = {}

    def get(name, settings):
        if name not in runs:
            runs[name] = Classifier.train(toy_file, toy_file, **settings)
        return runs[name]

    return get


SETTINGS = {
    "eval every 3": RUN,
    "epoch ends, EMA, masking, MLM": dict(
        epochs=4, batch_size=2, ema_decay=0.5, mask_prob=0.2, mlm_weight=0.5, **TINY
    ),
    "grad accumulation": dict(epochs=3, batch_size=2, eval_every=1, grad_accum=2, **TINY),
}


@pytest.mark.parametrize(
    ("settings", "crash_step", "resumed_from"),
    [
        # Resumes in the middle of epoch 1 (step 6 = 2 of its 4 batches).
        ("eval every 3", 8, {"step": 6, "epoch": 1, "batch": 2}),
        # The checkpoint at step 12 was taken at epoch 2's last batch: resumes at epoch 3's start.
        ("eval every 3", 14, {"step": 12, "epoch": 3, "batch": 0}),
        # Evaluations at epoch ends only; the model trained is the MLM wrapper.
        ("epoch ends, EMA, masking, MLM", 11, {"step": 8, "epoch": 2, "batch": 0}),
        # 2 batches a step: step 3 is batch 2 of epoch 1's 4.
        ("grad accumulation", 4, {"step": 3, "epoch": 1, "batch": 2}),
    ],
    ids=["mid-epoch", "epoch start", "epoch evaluations", "accumulation"],
)
def test_resumed_run_equals_an_uninterrupted_one(
    toy_file, tmp_path, uninterrupted, settings, crash_step, resumed_from
):
    output = tmp_path / "run"
    crash(toy_file, output, crash_step, **SETTINGS[settings])
    state = saved_state(output)
    assert {k: state[k] for k in resumed_from} == resumed_from
    assert_refuses_to_load(output)

    recorder = Recorder()
    resumed = Classifier.resume(output, callback=recorder)
    assert recorder.steps[0] == resumed_from["step"] + 1  # nothing trained twice
    assert_same_training(resumed, uninterrupted(settings, SETTINGS[settings]))
    # The finished directory is what an uninterrupted run leaves: no checkpoints.
    assert sorted(p.name for p in output.iterdir()) == [
        "calibration.json",
        "config.json",
        "history.jsonl",
        "labels.json",
        "metrics.json",
        "model.safetensors",
        "thresholds.json",
        "tokenizer",
        "training-texts.safetensors",
        "validation.jsonl",
    ]
    assert_same_training(Classifier.load(output), resumed)


def test_a_resumed_ensemble_skips_its_finished_members(toy_file, tmp_path):
    settings = dict(epochs=3, batch_size=4, ensemble=2, ensemble_pooling="mean,cls", **TINY)
    output = tmp_path / "run"
    crash(toy_file, output, step=5, member=1, **settings)
    checkpoints = RunCheckpoints(output)
    assert (checkpoints.directory / "member-0" / "result" / "state.json").exists()
    assert not checkpoints.member_state(0).exists()
    assert saved_state(output, member=1)["step"] == 4
    assert_refuses_to_load(output)

    recorder = Recorder()
    resumed = Classifier.resume(output, callback=recorder)
    assert recorder.starts == 1 and recorder.steps == [5, 6]  # member 1's last two steps only
    assert_same_training(resumed, Classifier.train(toy_file, toy_file, **settings))


def test_a_run_that_early_stopping_ended_stays_ended(toy_file, tmp_path):
    settings = dict(epochs=6, batch_size=4, eval_every=1, patience=2, lr=1e-6, **TINY)
    output = tmp_path / "run"

    class CrashWhenStopped(Recorder):
        def on_evaluate(self, record):  # called after the checkpoint is written
            if saved_state(output)["stopped"]:
                raise Crash

    with pytest.raises(Crash):
        Classifier.train(toy_file, toy_file, output=output, callback=CrashWhenStopped(), **settings)
    recorder = Recorder()
    resumed = Classifier.resume(output, callback=recorder)
    assert recorder.steps == [] and resumed.metrics["stopped_early"]
    assert_same_training(resumed, Classifier.train(toy_file, toy_file, **settings))


def test_data_given_in_memory_resumes_from_python(tmp_path, uninterrupted):
    data = Dataset(TOY_TEXTS, TOY_LABELS, "toy", None)
    output = tmp_path / "run"
    crash(data, output, step=8, **RUN)
    with pytest.raises(RunDirError, match=r"in memory.*resume=True"):
        Classifier.resume(output)
    resumed = Classifier.train(data, data, output=output, resume=True)
    assert_same_training(resumed, uninterrupted("eval every 3", RUN))  # the same texts, from a file


# ---------------------------------------------------------------------------- clear refusals
@pytest.fixture(scope="module")
def unfinished(toy_file, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("unfinished") / "run"
    crash(toy_file, output, step=5, **RUN)
    return output


@pytest.fixture
def unfinished_copy(unfinished, tmp_path) -> Path:
    return copy_run(unfinished, tmp_path / "run")


def test_resume_refuses_other_data_or_settings(unfinished_copy, toy_file, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(toy_file.read_text().replace("so angry", "so very angry"))
    with pytest.raises(RunDirError, match="data differ from the interrupted run's"):
        Classifier.train(other, toy_file, output=unfinished_copy, resume=True)
    with pytest.raises(ConfigError, match=r"epochs=7 \(the run has 6\)"):
        Classifier.train(toy_file, toy_file, output=unfinished_copy, resume=True, epochs=7)
    # Repeating the run's own settings is fine.
    Classifier.train(toy_file, toy_file, output=unfinished_copy, resume=True, **RUN)


def test_a_fresh_run_does_not_overwrite_an_unfinished_one(unfinished_copy, toy_file):
    with pytest.raises(RunDirError, match=r"holds an unfinished training run.*--resume"):
        Classifier.train(toy_file, toy_file, output=unfinished_copy, **RUN)
    assert saved_state(unfinished_copy)["step"] == 3


def test_cli_refusals(unfinished, toy_file, toy_run, tmp_path):
    assert_clean_error(
        invoke("predict", unfinished, "--text", "so happy"), "unfinished training run", "--resume"
    )
    assert_clean_error(
        invoke("train", toy_file, "--resume", unfinished, "--epochs", 3, "--val", toy_file),
        "drop TRAIN_FILE, --val, --epochs",
    )
    assert_clean_error(invoke("train", "--resume", toy_run[1]), "the run is complete")
    (tmp_path / "empty").mkdir()
    assert_clean_error(invoke("train", "--resume", tmp_path / "empty"), "no checkpoint to resume")
    assert_clean_error(invoke("train", "--resume", tmp_path / "nowhere"), "no such run directory")
    assert_clean_error(invoke("train"), "missing TRAIN_FILE")


# ------------------------------------------------------------------------ SIGKILL, for real
# Each wrapper patches one function so that the process kills itself with SIGKILL right there.
KILL_INSIDE = {
    # In the middle of an epoch, between checkpoints: in the second training step after resuming.
    "mid-epoch": """
import multihot.training.loop as training
real, calls = training._training_loss, []
def training_loss(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
training._training_loss = training_loss
""",
    # Writing a checkpoint: its tensors file half written.
    "checkpoint write": """
import safetensors.torch
real = safetensors.torch.save_file
def save_file(tensors, filename, *args, **kwargs):
    real(tensors, filename, *args, **kwargs)
    os.truncate(filename, os.path.getsize(filename) // 2)
    os.kill(os.getpid(), signal.SIGKILL)
safetensors.torch.save_file = save_file
""",
    # Swapping a new checkpoint in, as where the system cannot swap directories in one step:
    # the old one renamed away, the new one not yet in its place.
    "checkpoint swap": """
import multihot.core.files
multihot.core.files._exchange = lambda a, b: False
real = os.replace
def replace(src, dst, *args, **kwargs):
    real(src, dst, *args, **kwargs)
    if ".old-" in os.fspath(dst):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
""",
    # Writing the finished run directory (all members trained).
    "final save": """
import multihot.artifacts.transformer as transformer
transformer.write_outcome = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
""",
}


def cli_flags(toy_file):
    """The command-line spelling of :data:`RUN`."""
    return [
        "--val",
        toy_file,
        "--epochs",
        RUN["epochs"],
        "--batch-size",
        RUN["batch_size"],
        "--eval-every",
        RUN["eval_every"],
        *tiny_flags(),
    ]


def start(args, log: Path, patch: str | None = None) -> subprocess.Popen:
    if patch is None:
        command = [sys.executable, "-m", "multihot", *map(str, args)]
    else:
        code = f"import os, signal\n{patch}\nfrom multihot.cli.app import main\nmain()\n"
        command = [sys.executable, "-c", code, *map(str, args)]
    with open(log, "w") as fh:
        return subprocess.Popen(command, env=subprocess_env(), stdout=fh, stderr=subprocess.STDOUT)


def assert_killed(process: subprocess.Popen, log: Path):
    assert process.wait(timeout=120) == -signal.SIGKILL, log.read_text()[-3000:]


@pytest.mark.slow
def test_sigkilled_cli_runs_resume_to_the_uninterrupted_result(toy_file, tmp_path):
    reference = tmp_path / "reference"
    assert invoke("train", toy_file, "-o", reference, *cli_flags(toy_file)).exit_code == 0
    run, log = tmp_path / "run", tmp_path / "log"
    state = run / "checkpoints" / "member-0" / "last" / "state.json"

    # From outside, as soon as the first checkpoint is there.
    process = start(["train", toy_file, "-o", run, *cli_flags(toy_file)], log)
    while process.poll() is None and not state.exists():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert_killed(process, log)
    assert_refuses_to_load(run)

    # From inside, each resumed run at the next point.
    for point, patch in KILL_INSIDE.items():
        step_before = json.loads(state.read_text())["step"] if state.exists() else None
        process = start(["train", "--resume", run], log, patch)
        assert_killed(process, log)
        assert_refuses_to_load(run)
        if point == "checkpoint swap":
            assert not state.exists() and list(state.parent.parent.glob(".last.old-*"))
        elif point != "final save":
            assert json.loads(state.read_text())["step"] == step_before, point

    result = invoke("train", "--resume", run)
    assert result.exit_code == 0, result.output
    metrics, expected = (json.loads((p / "metrics.json").read_text()) for p in (run, reference))
    for record in (metrics, expected):  # the comparison baseline is timed
        record["linear_baseline"].pop("seconds")
    assert metrics == expected
    history, expected = (read_jsonl(p / "history.jsonl") for p in (run, reference))
    assert without_timings(history) == without_timings(expected)
    weights, expected = (load_file(p / "model.safetensors") for p in (run, reference))
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[name], expected[name]) for name in weights)
    assert not (run / "checkpoints").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "reference", "run"]
