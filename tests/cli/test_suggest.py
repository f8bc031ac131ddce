"""``multihot suggest`` on the command line: the batch in each format, an -o file never replaced
without --force, and clean errors that leave no file behind."""

from __future__ import annotations

import csv
import io
import json

from helpers import TOY_TEXTS, assert_clean_error, invoke, read_jsonl

NEW_TEXTS = ["what a lovely surprise", "grey skies again", "best concert ever", "a quiet sunday"]


def _pool(tmp_path):
    path = tmp_path / "pool.csv"
    rows = [("id", "text"), *((f"n{i}", t) for i, t in enumerate([*NEW_TEXTS, *TOY_TEXTS[:2]]))]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def test_suggest_writes_the_batch_as_json_lines(tiny_run, tmp_path):
    output = tmp_path / "batch.jsonl"
    # The run's training (and validation) texts are skipped without --labelled.
    result = invoke("suggest", tiny_run, _pool(tmp_path), "-n", 3, "-o", output)
    assert result.exit_code == 0, result.output
    assert f"saved {output} (jsonl)" in result.stdout and "to label next" in result.stdout
    records = read_jsonl(output)
    assert len(records) == 3 and len({r["text"] for r in records}) == 3
    assert {r["text"] for r in records} <= set(NEW_TEXTS)
    for record in records:
        assert {"text", "score", "labels", "near_misses", "probs", "row", "id"} <= set(record)
        assert record["id"] == f"n{record['row']}"


def test_suggest_prints_each_format_to_stdout(tiny_run, tmp_path):
    pool = _pool(tmp_path)
    result = invoke("suggest", tiny_run, pool, "-n", 2, "--format", "label-studio")
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.stdout)
    assert len(tasks) == 2 and all("text" in t["data"] and t["predictions"] for t in tasks)
    assert "picked by threshold" in result.stderr
    result = invoke("suggest", tiny_run, pool, "-n", 2, "--format", "csv", "--strategy", "random")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 2 and rows[0]["text"] in NEW_TEXTS  # the toy texts were validated on


def test_an_existing_output_is_refused_without_force(tiny_run, tmp_path):
    output = tmp_path / "batch.json"
    output.write_text("mine", encoding="utf-8")
    result = invoke("suggest", tiny_run, _pool(tmp_path), "-n", 2, "-o", output)
    assert_clean_error(result, str(output), "--force")
    assert output.read_text(encoding="utf-8") == "mine"
    result = invoke("suggest", tiny_run, _pool(tmp_path), "-n", 2, "-o", output, "--force")
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(output.read_text(encoding="utf-8")), list)  # .json: Label Studio


def test_bad_input_is_a_clean_error_and_writes_nothing(tiny_run, tmp_path):
    pool, output = _pool(tmp_path), tmp_path / "batch.jsonl"
    cases = [
        (("--strategy", "entropy"), "strategy"),
        (("--strategy", "ensemble"), "several members"),
        (("--diversity", "clusters"), "diversity"),
        (("--text-col", "body"), "body"),
        (("--labelled", tmp_path / "missing.jsonl"), "missing.jsonl"),
    ]
    for flags, fragment in cases:
        result = invoke("suggest", tiny_run, pool, "-n", 2, "-o", output, *flags)
        assert_clean_error(result, fragment)
        assert not output.exists()
    assert_clean_error(invoke("suggest", tmp_path / "norun", pool, "-n", 2), "norun")
    assert_clean_error(invoke("suggest", tiny_run, tmp_path / "none.csv", "-n", 2), "none.csv")
    assert invoke("suggest", tiny_run, pool, "-n", 0).exit_code == 2
    assert invoke("suggest", tiny_run, pool, "-n", 2, "--format", "xml").exit_code == 2
    result = invoke("suggest", tiny_run, pool, "-n", 2, "-o", pool, "--force")
    assert_clean_error(result, "input file")
