"""The CLI verbs through Typer's CliRunner, and every bad input: one line, exit 2, no partial output."""

from __future__ import annotations

import json
import re

import pytest

from helpers import (
    TOY_LABELS,
    TOY_TEXTS,
    assert_clean_error,
    copy_run,
    invoke,
    read_jsonl,
    tiny_flags,
    train_cli,
    write_jsonl,
)


# ------------------------------------------------------------------------------------ happy path
def test_train_writes_a_complete_run_directory(tmp_path, toy_file):
    out = tmp_path / "run"
    # The long spelling of -o, here only.
    result = invoke(
        "train",
        toy_file,
        "--val",
        toy_file,
        "--output",
        out,
        "--epochs",
        2,
        "--batch-size",
        4,
        *tiny_flags(),
    )
    assert result.exit_code == 0, result.output
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer",
        "labels.json",
        "thresholds.json",
        "metrics.json",
        "history.jsonl",
    ):
        assert (out / name).exists(), name
    assert json.loads((out / "labels.json").read_text()) == ["anger", "joy", "love", "sadness"]
    assert len((out / "history.jsonl").read_text().splitlines()) == 2
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 2 and config["model"]["encoder"] == "scratch-tiny"
    assert "torch" in config["versions"]
    assert "per label" in result.stdout and "macro" in result.stdout


def test_train_config_file_and_flags_override(tmp_path, toy_file):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("epochs: 3\nbatch-size: 4\npooling: mean\nhead: mlp\nhead_hidden: 16\n")
    out = tmp_path / "run"
    result = train_cli(toy_file, out, "--config", cfg, "--epochs", 1)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 1  # the flag wins
    assert config["model"]["pooling"] == "mean" and config["model"]["head"] == "mlp"


def test_train_ensemble_flags(tmp_path, toy_file):
    out = tmp_path / "run"
    result = train_cli(
        toy_file,
        out,
        "--epochs",
        1,
        "--ensemble",
        2,
        "--ensemble-pooling",
        "mean,cls",
        "--mask-prob",
        0.1,
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["ensemble"] == 2
    assert config["model"]["ensemble_pooling"] == ["mean", "cls"]
    assert config["train"]["mask_prob"] == 0.1
    assert invoke("predict", out, "--text", "so happy").exit_code == 0


def test_evaluate_table_and_json(toy_run, toy_file):
    _, run = toy_run
    table = invoke("evaluate", run, toy_file)
    assert table.exit_code == 0, table.output
    assert "per label" in table.stdout and "sadness" in table.stdout
    as_json = invoke("evaluate", run, toy_file, "--json", "--precision", "fp32")
    metrics = json.loads(as_json.stdout)
    assert metrics["macro_f1"] == 1.0
    assert set(metrics["per_label"]) == {"anger", "joy", "love", "sadness"}


def test_evaluate_save_records_metrics(toy_run, toy_file, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "copy")
    assert invoke("evaluate", run, toy_file, "--save").exit_code == 0
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["evaluations"][str(toy_file)]["num_texts"] == len(TOY_TEXTS)
    assert "validation" in saved


def test_predict_text_stdout(toy_run):
    _, run = toy_run
    result = invoke(
        "predict", run, "--text", TOY_TEXTS[0], "--text", TOY_TEXTS[1], "--precision", "fp32"
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["labels"] for r in lines] == [["joy", "love"], ["sadness"]]
    assert set(lines[0]["probs"]) == {"anger", "joy", "love", "sadness"}


def test_predict_file_to_jsonl_and_csv_in_input_order(toy_run, toy_file, tmp_path):
    _, run = toy_run
    out = tmp_path / "out.jsonl"
    result = invoke(
        "predict",
        run,
        toy_file,
        "-o",
        out,
        "--batch-size",
        3,
        "--chunk-size",
        5,
        "--precision",
        "fp32",
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [r["text"] for r in rows] == TOY_TEXTS
    assert [r["labels"] for r in rows] == [sorted(x) for x in TOY_LABELS]

    import pandas as pd

    csv_out = tmp_path / "out.csv"
    assert invoke("predict", run, toy_file, "-o", csv_out, "--precision", "fp32").exit_code == 0
    frame = pd.read_csv(csv_out, keep_default_na=False)
    assert list(frame.columns) == ["text", "labels", "anger", "joy", "love", "sadness"]
    assert frame["text"].tolist() == TOY_TEXTS
    assert frame["labels"].tolist()[0] == "joy,love"


def test_predict_stdin_lines(toy_run):
    _, run = toy_run
    result = invoke(
        "predict", run, "-", "--precision", "fp32", input="\n".join(TOY_TEXTS[:3]) + "\n"
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["text"] for x in result.stdout.splitlines()] == TOY_TEXTS[:3]


def test_tune_thresholds_saves_into_the_run(toy_run, toy_file, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "copy")
    result = invoke("tune-thresholds", run, toy_file, "--strategy", "global", "--force")
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "thresholds.json").read_text())
    assert saved["strategy"] == "global"
    assert len(set(saved["thresholds"].values())) == 1


def test_zero_one_columns_are_detected(tmp_path):
    path = tmp_path / "wide.csv"
    rows = ["text,joy,anger"] + [
        f"{t},{int('joy' in ls)},{int('anger' in ls)}"
        for t, ls in zip(TOY_TEXTS, TOY_LABELS, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    result = train_cli(path, out, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "0/1 columns as labels" in result.stderr
    assert json.loads((out / "labels.json").read_text()) == ["joy", "anger"]


# ------------------------------------------------------------------------------------ bad input
def test_missing_train_file(tmp_path):
    result = invoke("train", tmp_path / "nope.jsonl", "-o", tmp_path / "run", *tiny_flags())
    assert_clean_error(result, "nope.jsonl", "no such file")
    assert not (tmp_path / "run").exists()


def test_unknown_text_column(tmp_path, toy_file):
    result = invoke("train", toy_file, "--text-col", "body", "-o", tmp_path / "run", *tiny_flags())
    assert_clean_error(result, "body")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ({"text": "   ", "labels": ["joy"]}, ["row 9", "empty"]),
        ({"text": 3.5, "labels": ["joy"]}, ["row 9", "expected a string"]),
    ],
)
def test_bad_text_rows(tmp_path, line, fragments):
    path = write_jsonl(tmp_path / "bad.jsonl", TOY_TEXTS, TOY_LABELS)
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")
    result = invoke("train", path, "-o", tmp_path / "run", *tiny_flags())
    assert_clean_error(result, "bad.jsonl", *fragments)
    assert not (tmp_path / "run").exists()


def test_label_value_not_zero_one(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("text,joy,anger\nhello,1,0\nbye,0,2\n")
    result = invoke(
        "train", path, "--label-cols", "joy,anger", "-o", tmp_path / "run", *tiny_flags()
    )
    assert_clean_error(result, "wide.csv", "row 2", "anger", "expected 0 or 1")


def test_unknown_label_at_evaluation(toy_run, tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", ["wow"], [["surprise"]])
    result = invoke("evaluate", toy_run[1], path)
    assert_clean_error(result, "test.jsonl", "row 1", "unknown label 'surprise'")


def test_file_with_no_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,labels\n")
    result = invoke("train", path, "-o", tmp_path / "run", *tiny_flags())
    assert_clean_error(result, "empty.csv", "no rows")


def test_label_with_no_positive_example_warns_and_goes_on(tmp_path):
    path = tmp_path / "wide.csv"
    rows = ["text,joy,never"] + [
        f"{t},{int('joy' in ls)},0" for t, ls in zip(TOY_TEXTS, TOY_LABELS, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    result = train_cli(path, tmp_path / "run", "--label-cols", "joy,never", "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert re.search(r"label 'never' has no\s+positive example", result.stderr)


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda run: (run / "thresholds.json").unlink(), "missing thresholds.json"),
        (
            lambda run: (run / "thresholds.json").write_text("{not json"),
            "thresholds.json: corrupt JSON",
        ),
        (
            lambda run: (run / "labels.json").write_text('{"a": 1}'),
            "labels.json: expected a JSON list",
        ),
        (
            lambda run: (run / "model.safetensors").write_bytes(b"\x00" * 10),
            "model.safetensors: cannot load weights",
        ),
        (
            lambda run: (run / "config.json").write_text(
                '{"model": {"colour": 1}, "encoder_config": {}}'
            ),
            "unknown key 'colour'",
        ),
    ],
)
def test_broken_run_directory(toy_run, tmp_path, damage, fragment):
    run = copy_run(toy_run[1], tmp_path / "broken")
    damage(run)
    assert_clean_error(invoke("predict", run, "--text", "hello"), fragment)


def test_missing_run_directory(tmp_path):
    assert_clean_error(
        invoke("evaluate", tmp_path / "nothing", tmp_path / "x.jsonl"), "no such run directory"
    )


def test_predict_leaves_no_partial_output(toy_run, tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": t}) for t in TOY_TEXTS * 3] + [json.dumps({"text": ""})]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    # Chunks of 4: the first chunks are written before the bad last row is read.
    result = invoke("predict", toy_run[1], path, "-o", out, "--chunk-size", 4)
    assert_clean_error(result, "in.jsonl", "row 25", "empty")
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("blank", ["", "   "])
def test_predict_refuses_an_empty_text(toy_run, blank):
    result = invoke("predict", toy_run[1], "--text", "so happy", "--text", blank)
    assert_clean_error(result, "text 2: empty text")
    assert result.stdout == ""


def test_predict_missing_input(toy_run, tmp_path):
    assert_clean_error(
        invoke("predict", toy_run[1], tmp_path / "none.csv", "-o", tmp_path / "o.jsonl"),
        "none.csv",
        "no such file",
    )
    assert not (tmp_path / "o.jsonl").exists()


def test_unknown_config_key(tmp_path, toy_file):
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"epochs": 1, "learning_rate": 0.1}')
    assert_clean_error(
        invoke("train", toy_file, "--config", cfg, *tiny_flags()),
        "cfg.json",
        "unknown key 'learning_rate'",
    )


def test_bad_choice_is_a_clean_error(tmp_path, toy_file):
    assert_clean_error(
        invoke("train", toy_file, "--pooling", "median", *tiny_flags()), "pooling", "median"
    )


def test_offline_hub_name_is_a_clean_error(tmp_path, toy_file):
    result = invoke(
        "train", toy_file, "--encoder", "some-org/not-a-local-model", "-o", tmp_path / "run"
    )
    assert_clean_error(result, "some-org/not-a-local-model", "scratch")
    assert not (tmp_path / "run").exists()


def test_prediction_imports_do_not_load_scikit_learn():
    # scikit-learn takes about a second to import; `multihot predict` must not pay for it.
    import subprocess
    import sys

    code = (
        "import sys, multihot, multihot.cli.app, multihot.inference.predictor, multihot.classifier\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'iterstrat'))\n"
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
