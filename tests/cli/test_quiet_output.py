"""What a newcomer reads: each evaluation shown once, no transformers progress bar in piped output,
no value type beside a flag in ``--help`` (issue 32, "What a newcomer reads")."""

from __future__ import annotations

import logging

from family_models import tiny_family
from helpers import TINY, invoke
from multihot import Classifier
from multihot.modeling.encoders import load_pretrained


def test_a_flag_shows_no_value_type_in_help():
    evaluate = invoke("evaluate", "--help")
    assert evaluate.exit_code == 0
    assert "<bool>" not in evaluate.output  # was: --json <bool>, --save <bool>, --help <bool>
    assert "--json" in evaluate.output
    train = invoke("train", "--help").output
    assert "<bool>" not in train and "<int>" in train  # options with a value keep their type


class Quiet:
    def on_train_start(self, total_steps, steps_per_epoch):
        pass

    def on_step(self, step, loss, samples_per_second):
        pass

    def on_evaluate(self, record):
        pass

    def on_train_end(self):
        pass


def _evaluation_lines(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "multihot.training.session"
        and r.levelno >= logging.INFO
        and r.getMessage().startswith("step ")
    ]


def test_each_evaluation_is_logged_only_where_no_callback_shows_it(toy_file, caplog):
    settings = dict(epochs=2, batch_size=4, compare_baseline=False, **TINY)
    with caplog.at_level(logging.INFO, logger="multihot"):
        Classifier.train(toy_file, toy_file, callback=Quiet(), **settings)
    assert _evaluation_lines(caplog) == []  # the callback (the CLI's progress) shows each one
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="multihot"):
        Classifier.train(toy_file, toy_file, **settings)
    assert len(_evaluation_lines(caplog)) == 2


def test_loading_an_encoder_draws_no_progress_bar_into_piped_output(tmp_path, capfd):
    directory = tiny_family("bert", tmp_path)
    capfd.readouterr()
    load_pretrained(str(directory))  # stderr is captured here: not a terminal
    assert "Loading weights" not in capfd.readouterr().err


def test_training_says_how_long_it_will_take_before_it_is_far_along():
    import io

    from rich.console import Console

    from multihot.cli.progress import ESTIMATE_AFTER, RichProgress

    out = io.StringIO()
    now = [0.0]
    progress = RichProgress(Console(file=out, width=200), clock=lambda: now[0])
    progress.on_train_start(total_steps=1000, steps_per_epoch=100)
    for step in range(1, ESTIMATE_AFTER + 2):
        now[0] += 2.0  # two seconds a step
        progress.on_step(step, 0.5, 10.0)
    record = {"step": 100, "epoch": 1.0, "train_loss": 0.1, "val_loss": 0.2, "seconds": 260}
    now[0] = 2.0 + 99 * 2.0 + 60.0  # 99 steps after the first, and an evaluation of a minute
    progress.on_evaluate({**record, "macro_f1": 0.3})
    progress.on_train_end()
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "1000 optimiser steps (10 epochs of 100); the time it takes is estimated after 10"
    )
    # 2 s a step, 989 steps left after step 11.
    assert "about 33 min left for 989 steps (at the pace of 10 steps" in lines[1]
    # (99 * 2 + 60) / 99 s a step over the 900 steps left.
    assert "about 39 min left for 900 steps (at the pace so far, evaluations counted)" in lines[-1]


def test_the_encoder_is_named_with_its_size_before_training(toy_file, caplog):
    with caplog.at_level(logging.INFO, logger="multihot"):
        Classifier.train(toy_file, toy_file, epochs=1, batch_size=4, compare_baseline=False, **TINY)
    assert any(
        "built scratch-tiny from scratch (bert, " in r.getMessage()
        and "M parameters" in r.getMessage()
        for r in caplog.records
    )
