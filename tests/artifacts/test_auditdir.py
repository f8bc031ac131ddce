"""The audit directory: every file parses, Label Studio's import shape, refusals, no partial dir."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import pytest

from multihot.artifacts import auditdir
from multihot.artifacts.auditdir import (
    AUDIT_FILES,
    ISSUES,
    ISSUES_CSV,
    LABEL_STUDIO_CONFIG,
    LABEL_STUDIO_TASKS,
    PAGE,
    SUMMARY,
    read_issues,
    read_summary,
    write_audit_dir,
)
from multihot.core.errors import MultihotError, RunDirError

LABELS = ["joy", "anger", "love & <hate>", 'say "hi"']
ROW_LABELS = [["joy"], ["anger"], [], ["joy", "anger"]]
TEXTS = ["so happy", 'a "quoted",\ntwo-line text, with commas', "meh", "grr but glad"]


def issue(row, label, given, score, id=None):
    record = {"row": row, "label": label, "given": given}
    record.update(kind="wrong" if given else "missing", score=score, probability=1 - score)
    record["threshold"] = 0.5
    if id is not None:
        record["id"] = id
    record["text"] = TEXTS[row]
    return record


ISSUES_LIST = [
    issue(1, "love & <hate>", 0, 0.97, id="b"),
    issue(3, "anger", 1, 0.9),
    issue(1, "anger", 1, 0.8, id="b"),
    issue(0, "joy", 1, 0.6, id="a"),
    issue(3, 'say "hi"', 0, 0.5),
]
SUMMARY_DICT = {"rows": 4, "labels": LABELS, "issues": {"total": 5}, "dataset_health": None}


def write(path, **kwargs):
    args = {
        "summary": SUMMARY_DICT,
        "issues": ISSUES_LIST,
        "label_names": LABELS,
        "row_labels": ROW_LABELS,
        "page_html": "<html><body>audit</body></html>",
    }
    return write_audit_dir(path, **{**args, **kwargs})


def test_every_file_parses_and_reads_back(tmp_path):
    out = write(tmp_path / "audit")
    assert {p.name for p in out.iterdir()} == set(AUDIT_FILES)
    assert read_summary(out) == SUMMARY_DICT
    assert read_issues(out) == ISSUES_LIST
    lines = (out / ISSUES).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == ISSUES_LIST
    assert (out / PAGE).read_text(encoding="utf-8") == "<html><body>audit</body></html>"


def test_csv_has_the_jsonl_columns_text_last_and_round_trips(tmp_path):
    out = write(tmp_path / "audit")
    with open(out / ISSUES_CSV, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = ["row", "label", "given", "kind", "score", "probability", "threshold", "id", "text"]
    assert list(rows[0]) == columns
    assert len(rows) == len(ISSUES_LIST)
    for row, expected in zip(rows, ISSUES_LIST, strict=True):
        assert row["text"] == expected["text"]  # quotes, commas and the newline survive
        assert row["label"] == expected["label"]
        assert int(row["row"]) == expected["row"] and int(row["given"]) == expected["given"]
        assert float(row["score"]) == expected["score"]
        assert row["id"] == expected.get("id", "")


def test_label_studio_tasks_match_the_import_shape_and_the_config(tmp_path):
    out = write(tmp_path / "audit")
    tasks = json.loads((out / LABEL_STUDIO_TASKS).read_text(encoding="utf-8"))
    config = ET.fromstring((out / LABEL_STUDIO_CONFIG).read_text(encoding="utf-8"))

    assert config.tag == "View"
    texts = {t.get("name"): t.get("value") for t in config.iter("Text")}
    assert texts["text"] == "$text"
    (control,) = config.iter("Choices")
    assert control.get("choice") == "multiple"
    assert texts[control.get("toName")] == "$text"
    declared = [c.get("value") for c in control.iter("Choice")]
    assert declared == LABELS  # XML-escaped in the file, the names again once parsed
    # every $variable the config reads is in every task's data
    variables = {t.get("value")[1:] for t in config.iter("Text")}

    assert isinstance(tasks, list)
    assert [t["data"]["row"] for t in tasks] == [1, 3, 0]  # one per text, by its first issue
    seen_result_ids = set()
    for task in tasks:
        assert set(task) <= {"data", "predictions", "annotations"}
        assert variables <= set(task["data"])
        assert task["data"]["text"] == TEXTS[task["data"]["row"]]
        for prediction in task["predictions"]:
            assert prediction["model_version"] == "multihot-audit"
            assert 0 <= prediction["score"] <= 1
            for item in prediction["result"]:
                assert item["from_name"] == control.get("name")
                assert item["to_name"] == control.get("toName")
                assert item["type"] == "choices"
                assert set(item["value"]["choices"]) <= set(declared)
                assert item["id"] not in seen_result_ids
                seen_result_ids.add(item["id"])
    by_row = {t["data"]["row"]: t for t in tasks}
    suggestion = {
        row: (t["predictions"][0]["result"] or [{"value": {"choices": []}}])[0]["value"]["choices"]
        for row, t in by_row.items()
    }
    # given labels with the row's issues flipped
    assert suggestion == {1: ["love & <hate>"], 3: ["joy", 'say "hi"'], 0: []}
    assert by_row[1]["data"]["id"] == "b" and "id" not in by_row[3]["data"]
    assert by_row[3]["data"]["given"] == "joy, anger"
    assert by_row[1]["data"]["score"] == 0.97 and by_row[1]["data"]["rank"] == 1


def test_no_page_and_no_issues(tmp_path):
    out = write(tmp_path / "audit", issues=[], page_html=None)
    assert not (out / PAGE).exists()
    assert read_issues(out) == []
    assert json.loads((out / LABEL_STUDIO_TASKS).read_text(encoding="utf-8")) == []
    ET.fromstring((out / LABEL_STUDIO_CONFIG).read_text(encoding="utf-8"))
    with open(out / ISSUES_CSV, encoding="utf-8", newline="") as fh:
        assert len(list(csv.reader(fh))) == 1  # the header


def test_empty_directory_is_used_and_an_earlier_audit_needs_force(tmp_path):
    target = tmp_path / "audit"
    target.mkdir()
    write(target)
    with pytest.raises(RunDirError, match="earlier audit.*--force"):
        write(target, issues=ISSUES_LIST[:1])
    assert len(read_issues(target)) == len(ISSUES_LIST)
    write(target, issues=ISSUES_LIST[:1], page_html=None, force=True)
    assert len(read_issues(target)) == 1
    assert not (target / PAGE).exists()  # replaced whole: nothing of the earlier audit stays


def test_other_files_and_a_file_are_refused_even_with_force(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(RunDirError, match=r"not part of an audit \(notes.txt\)"):
        write(target, force=True)
    assert (target / "notes.txt").read_text(encoding="utf-8") == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(MultihotError, match="not a directory"):
        write(a_file, force=True)


def test_a_failed_write_leaves_nothing_partial(tmp_path, monkeypatch):
    calls = []

    def fail_on_the_third(path, text):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError("disk full")
        path.write_text(text, encoding="utf-8")

    monkeypatch.setattr(auditdir, "write_text", fail_on_the_third)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # neither the directory nor its temporary sibling

    monkeypatch.undo()
    earlier = write(tmp_path / "old")
    calls.clear()
    monkeypatch.setattr(auditdir, "write_text", fail_on_the_third)
    with pytest.raises(OSError, match="disk full"):
        write(earlier, issues=ISSUES_LIST[:1], force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert read_issues(earlier) == ISSUES_LIST  # the earlier audit, whole


def test_a_value_that_is_not_json_fails_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError):
        write(tmp_path / "audit", summary={"bad": object()})
    with pytest.raises(ValueError, match="row 9"):
        write(tmp_path / "audit", issues=[{**ISSUES_LIST[0], "row": 9}])
    assert list(tmp_path.iterdir()) == []


def test_read_issues_names_a_bad_line(tmp_path):
    out = write(tmp_path / "audit")
    (out / ISSUES).write_text('{"row": 0, "label": "joy", "given": 1, "score": 1}\n[1]\n')
    with pytest.raises(RunDirError, match="line 2: not a label issue"):
        read_issues(out)
    (out / ISSUES).write_text("{oops\n")
    with pytest.raises(RunDirError, match="line 1: corrupt JSON"):
        read_issues(out)
    (out / ISSUES).unlink()
    with pytest.raises(RunDirError, match="missing"):
        read_issues(out)
    (out / SUMMARY).unlink()
    with pytest.raises(RunDirError, match="missing"):
        read_summary(out)
