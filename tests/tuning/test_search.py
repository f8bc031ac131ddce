"""``multihot search``: Optuna studies that persist, continue and are shared by workers, pruning,
the space file, and a best configuration that ``multihot train --config`` takes.

Trials train the tiny scratch encoder on the toy texts for 1-2 epochs (under a second each)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import (
    TINY,
    TOY_LABELS,
    TOY_TEXTS,
    assert_clean_error,
    invoke,
    subprocess_env,
    tiny_flags,
    train_cli,
    write_jsonl,
)

optuna = pytest.importorskip("optuna")

import multihot.cli.search  # noqa: E402, F401  (registers the verb, whatever cli/__init__ imports)
from multihot.core.config import RunConfig  # noqa: E402
from multihot.core.errors import ConfigError, MultihotError  # noqa: E402
from multihot.tuning.search import direction_of, import_optuna, search  # noqa: E402
from multihot.tuning.space import (  # noqa: E402
    CONDITIONS,
    Choice,
    FloatRange,
    SearchSpace,
    default_space,
)

SPACE = {"lr": {"low": 1e-4, "high": 3e-3, "log": True}, "dropout": {"low": 0.0, "high": 0.3}}
TRIAL_FLAGS = ["--epochs", 2, "--batch-size", 4]
# The verb whether or not multihot.cli registers it: a fresh interpreter imports it first.
MULTIHOT = [
    sys.executable,
    "-c",
    "import multihot.cli.search; from multihot.cli.app import main; main()",
]


@pytest.fixture
def space_file(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(json.dumps(SPACE), encoding="utf-8")  # JSON is YAML too
    return path


def search_cli(data: Path, output: Path, space: Path, *flags):
    return invoke(
        "search",
        data,
        "--val",
        data,
        "-o",
        output,
        "--space",
        space,
        *tiny_flags(),
        *TRIAL_FLAGS,
        *flags,
    )


def load(output: Path, name: str = "toy"):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(output / "study.log"))
    )
    return optuna.load_study(study_name=name, storage=storage)


FINISHED = {"COMPLETE", "PRUNED"}


def states(study) -> list[str]:
    return [t.state.name for t in study.trials]


# ------------------------------------------------------------------------- a study that persists
def test_a_study_is_written_continued_and_its_best_config_trains(toy_file, space_file, tmp_path):
    output = tmp_path / "search"
    first = search_cli(toy_file, output, space_file, "--trials", 3)
    assert first.exit_code == 0, first.output
    study = load(output)
    assert states(study) == ["COMPLETE"] * 3
    assert set(study.best_params) == {"lr", "dropout"}
    assert "best" in first.stdout and "best-config.yaml" in first.stdout

    # The same command with a larger budget continues the study up to it: trials 3 and 4.
    second = search_cli(toy_file, output, space_file, "--trials", 5)
    assert second.exit_code == 0, second.output
    study = load(output)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert set(states(study)[3:]) <= FINISHED  # the median pruner may stop one
    # A budget already met runs nothing, and reports the study.
    again = search_cli(toy_file, output, space_file, "--trials", 5)
    assert again.exit_code == 0, again.output
    assert len(load(output).trials) == 5

    # The best configuration is a config file that training takes, with the best trial's values.
    best = output / "best-config.yaml"
    assert RunConfig.from_dict(yaml.safe_load(best.read_text())).train.epochs == 2
    run = tmp_path / "run"
    trained = train_cli(toy_file, run, "--config", best)
    assert trained.exit_code == 0, trained.output
    config = json.loads((run / "config.json").read_text())
    best_trial = load(output).best_trial
    assert config["train"]["lr"] == pytest.approx(best_trial.params["lr"])
    assert config["model"]["dropout"] == pytest.approx(best_trial.params["dropout"])
    assert config["train"]["epochs"] == 2 and config["train"]["batch_size"] == 4


def test_a_study_continued_with_other_data_or_settings_is_refused(toy_file, space_file, tmp_path):
    output = tmp_path / "search"
    assert search_cli(toy_file, output, space_file, "--trials", 1).exit_code == 0
    other = write_jsonl(tmp_path / "toy.jsonl", TOY_TEXTS[::-1], TOY_LABELS[::-1])
    shared = ["--storage", output / "study.log", "--study-name", "toy"]
    assert_clean_error(
        search_cli(other, tmp_path / "other", space_file, "--trials", 2, *shared),
        "started by another search",
        "the data",
    )
    assert_clean_error(
        search_cli(toy_file, output, space_file, "--trials", 2, "--weight-decay", 0.1),
        "started by another search",
        "weight_decay=0.1",
    )
    assert len(load(output).trials) == 1


def test_two_workers_share_one_study(toy_file, space_file, tmp_path):
    output = tmp_path / "search"
    output.mkdir()
    budget = 6
    command = [
        *MULTIHOT,
        "search",
        str(toy_file),
        "--val",
        str(toy_file),
        "-o",
        str(output),
        "--space",
        str(space_file),
        "--trials",
        str(budget),
        *map(str, tiny_flags()),
        *map(str, TRIAL_FLAGS),
    ]
    workers = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env()
        )
        for _ in range(2)
    ]
    ended = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, ended, strict=True):
        assert worker.returncode == 0, stderr
        assert "Traceback" not in stderr and "error:" not in stderr, stderr
    study = load(output)
    # Each worker stops once the study has the budget; two asking at once may add one more.
    assert set(states(study)) <= FINISHED
    assert budget <= len(study.trials) <= budget + 1
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    pids = {t.user_attrs["worker"] for t in study.trials}
    assert pids == {f"{socket.gethostname()}:{w.pid}" for w in workers}


# ---------------------------------------------------------------------------------------- pruning
class Recorder:
    """A TrainCallback that counts the starts and ends of training."""

    def __init__(self):
        self.started = self.ended = 0

    def on_train_start(self, total_steps, steps_per_epoch):
        self.started += 1

    def on_step(self, step, loss, samples_per_second):
        pass

    def on_evaluate(self, record):
        pass

    def on_train_end(self):
        self.ended += 1


def test_a_bad_trial_is_pruned_and_the_next_trains(toy_file, monkeypatch):
    # The pruner's verdict, forced: trial 1 is bad at its first evaluation.
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda trial: trial.number == 1)
    progress = Recorder()
    result = search(
        toy_file,
        val=toy_file,
        trials=3,
        space=SPACE,
        callback=progress,
        epochs=2,
        batch_size=4,
        **TINY,
    )
    assert [t.state for t in result.trials] == ["complete", "pruned", "complete"]
    assert result.n_trials == {"complete": 2, "pruned": 1, "failed": 0, "running": 0}
    assert result.trials[1].value is None and result.best_trial in (0, 2)
    # The pruned trial's progress was ended too: no bar left running.
    assert progress.started == progress.ended == 3
    assert result.storage == "memory" and result.config_file is None


def test_pruned_trials_count_toward_the_budget_and_failed_ones_do_not(
    toy_file, tmp_path, monkeypatch
):
    # mlm_weight needs mask_prob > 0: trial 0 draws mask_prob 0, the config refuses it, the
    # trial fails and another is run in its place; trial 1 is pruned, trial 2 completes.
    space = {"mask_prob": {"choices": [0.0, 0.15]}, "mlm_weight": 0.5, **SPACE}
    first_then_second = lambda trial, name, choices: choices[trial.number > 0]  # noqa: E731
    monkeypatch.setattr(optuna.trial.Trial, "suggest_categorical", first_then_second)
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda trial: trial.number == 1)
    result = search(
        toy_file,
        val=toy_file,
        trials=2,
        space=space,
        output=tmp_path,
        epochs=1,
        batch_size=4,
        **TINY,
    )
    assert [t.state for t in result.trials] == ["failed", "pruned", "complete"]
    assert "mlm_weight" in result.trials[0].error
    assert result.best_trial == 2 and result.config_file == tmp_path / "best-config.yaml"
    assert result.best_config.train.mask_prob == 0.15


def test_a_trial_left_running_by_a_killed_worker_is_marked_failed(toy_file, tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))
    )
    search(
        toy_file,
        val=toy_file,
        trials=1,
        space=SPACE,
        output=tmp_path,
        epochs=1,
        batch_size=4,
        **TINY,
    )
    study = optuna.load_study(study_name="toy", storage=storage)
    stale = study.ask()
    stale.set_user_attr("worker", f"{socket.gethostname()}:{gone.pid}")
    result = search(
        toy_file,
        val=toy_file,
        trials=2,
        space=SPACE,
        output=tmp_path,
        epochs=1,
        batch_size=4,
        **TINY,
    )
    assert [t.state for t in result.trials] == ["complete", "failed", "complete"]


# ------------------------------------------------------------------------------------------ folds
def test_folds_score_each_trial_by_cross_validation(toy_file, space_file, tmp_path):
    output = tmp_path / "search"
    result = invoke(
        "search",
        toy_file,
        "--folds",
        2,
        "--trials",
        2,
        "-o",
        output,
        "--space",
        space_file,
        *tiny_flags(),
        "--epochs",
        1,
        "--batch-size",
        4,
    )
    assert result.exit_code == 0, result.output
    study = load(output)
    assert states(study) == ["COMPLETE"] * 2
    # Reported once per fold: the running mean of the folds' scores.
    assert all(sorted(t.intermediate_values) == [0, 1] for t in study.trials)
    assert study.user_attrs["multihot"]["folds"] == 2
    assert_clean_error(
        invoke(
            "search",
            toy_file,
            "--folds",
            2,
            "--val",
            toy_file,
            "--trials",
            1,
            "-o",
            tmp_path / "x",
            *tiny_flags(),
        ),
        "folds",
    )


# ------------------------------------------------------------------------------------- the space
@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("lr: {low: 1.0e-4, high: 1.0e-2}\nnot_a_field: 3\n", ["space.yaml", "not_a_field"]),
        ("epochs: {low: 1.5, high: 3}\n", ["space.yaml", "epochs", "int"]),
        ("dropout: {low: 0.0, high: 1.5}\n", ["space.yaml", "dropout", "1.5"]),
        ("loss: {choices: [bce, hinge]}\n", ["space.yaml", "loss", "hinge"]),
        ("lr: {low: 1.0e-4, hi: 1.0e-2}\n", ["space.yaml", "lr", "hi"]),
        ("text-col: {choices: [a, b]}\n", ["space.yaml", "text-col", "cannot be searched"]),
        ("pooling: [mean, max]\n", ["space.yaml", "pooling", "choices"]),
        ("lr: {low: 0.0, high: 1.0e-2, log: true}\n", ["space.yaml", "lr", "low > 0"]),
        ("- lr\n", ["space.yaml", "mapping"]),
    ],
)
def test_a_bad_space_file_is_a_clean_error(toy_file, tmp_path, text, fragments):
    space = tmp_path / "space.yaml"
    space.write_text(text, encoding="utf-8")
    result = invoke("search", toy_file, "--trials", 1, "-o", tmp_path / "s", "--space", space)
    assert_clean_error(result, *fragments)
    assert not (tmp_path / "s" / "best-config.yaml").exists()


def test_a_field_both_fixed_and_searched_is_refused(toy_file, space_file, tmp_path):
    result = search_cli(toy_file, tmp_path / "s", space_file, "--trials", 1, "--lr", 1e-3)
    assert_clean_error(result, "lr", "fixed")


def test_a_space_file_takes_dashes_sections_and_fixed_values():
    space = SearchSpace.from_dict(
        {
            "model": {"dropout": {"low": 0, "high": 0.2}},
            "train": {"batch-size": {"choices": [8, 16]}},
            "epochs": {"low": 1, "high": 4},
            "head": "mlp",
            "ensemble-pooling": ["mean", "cls"],
        }
    )
    assert space.to_dict() == {
        "dropout": {"low": 0.0, "high": 0.2},
        "batch_size": {"choices": [8, 16]},
        "epochs": {"low": 1, "high": 4},
        "head": "mlp",
        "ensemble_pooling": "mean,cls",
    }
    study = optuna.create_study()
    values = space.sample(study.ask(), RunConfig())
    assert RunConfig().override(**values).model.ensemble_pooling == ["mean", "cls"]
    assert isinstance(values["epochs"], int) and values["head"] == "mlp"
    with pytest.raises(ConfigError, match="space: batch_size: expected an int"):
        SearchSpace.from_dict({"batch_size": {"choices": [8, "16"]}})


def test_the_loss_parameters_are_sampled_only_with_their_loss():
    base = RunConfig().override(encoder="scratch-mini")  # search resolves the default encoder
    space = default_space(base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        values = space.sample(study.ask(), base)
        seen.add(values["loss"])
        for name, (parent, wanted) in CONDITIONS.items():
            if name in space.params:
                assert (name in values) == (values[parent] in wanted), values
        assert values["encoder"] == "scratch-mini"
    assert seen == {"bce", "focal", "asl"}
    # With the loss fixed (not in the space), its parameters follow the fixed value.
    fixed = default_space(base).without({"loss"})
    values = fixed.sample(study.ask(), base.override(loss="focal"))
    assert "focal_gamma" in values and "asl_gamma_neg" not in values


def test_the_default_space_is_for_the_encoder():
    scratch = default_space(RunConfig().override(encoder="scratch-mini")).params["lr"]
    pretrained = default_space(RunConfig().override(encoder="bert-base-uncased")).params["lr"]
    assert isinstance(scratch, FloatRange) and scratch.log and pretrained.low < scratch.low
    assert default_space(RunConfig().override(encoder="x/y")).params["encoder"] == Choice(("x/y",))


def test_direction_and_optuna_missing(monkeypatch):
    assert direction_of("macro_f1") == "maximize" and direction_of("hamming_loss") == "minimize"
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MultihotError, match=r"pip install 'multihot\[tune\]'"):
        import_optuna()
    assert_clean_error(invoke("search", "x.jsonl", "--trials", 1), "multihot[tune]")
