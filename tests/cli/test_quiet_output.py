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
