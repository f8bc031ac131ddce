"""``multihot audit`` on the command line: the audit directory, the cleaned copy that never
touches DATA, and clean errors that leave nothing behind."""

from __future__ import annotations

import hashlib
import json

from helpers import SAMPLE, assert_clean_error, invoke, read_jsonl

DATA = SAMPLE / "train.jsonl"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_audit_the_sample_and_write_a_cleaned_copy(tmp_path):
    before = _digest(DATA)
    audit_dir, cleaned = tmp_path / "audit", tmp_path / "cleaned.jsonl"
    result = invoke(
        "audit", DATA, "--val", SAMPLE / "dev.jsonl", "--folds", 3, "-o", audit_dir,
        "--write-cleaned", cleaned, "--fix", "flip", "--fix-top", 10,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "label issues:" in result.stdout and "worst labels" in result.stdout
    assert f"saved {audit_dir}" in result.stdout and f"saved {cleaned}" in result.stdout
    for name in ("issues.jsonl", "summary.json", "audit.html", "issues.csv", "label-studio.json"):
        assert (audit_dir / name).is_file(), name
    assert _digest(DATA) == before
    issues = read_jsonl(audit_dir / "issues.jsonl")
    original, fixed = read_jsonl(DATA), read_jsonl(cleaned)
    assert len(fixed) == len(original)
    changed = {(i, name) for i, (a, b) in enumerate(zip(original, fixed, strict=True))
               for name in set(a["labels"]) ^ set(b["labels"])}  # fmt: skip
    assert changed == {(issue["row"], issue["label"]) for issue in issues[:10]}
    for issue in issues[:10]:
        assert original[issue["row"]]["text"] == issue["text"]
        assert (issue["label"] in original[issue["row"]]["labels"]) == bool(issue["given"])


def test_an_existing_output_is_refused_before_anything_runs(tmp_path):
    audit_dir = tmp_path / "audit"
    assert invoke("audit", DATA, "--checks-only", "-o", audit_dir).exit_code == 0
    summary = (audit_dir / "summary.json").read_bytes()
    result = invoke("audit", DATA, "--checks-only", "-o", audit_dir)
    assert_clean_error(result, str(audit_dir))
    assert (audit_dir / "summary.json").read_bytes() == summary
    assert invoke("audit", DATA, "--checks-only", "-o", audit_dir, "--force").exit_code == 0


def test_the_cleaned_copy_never_replaces_data(tmp_path):
    copy = tmp_path / "train.jsonl"
    copy.write_bytes(DATA.read_bytes())
    result = invoke(
        "audit", copy, "--checks-only", "-o", tmp_path / "audit", "--write-cleaned", copy,
        "--force",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert copy.read_bytes() == DATA.read_bytes()
    assert not (tmp_path / "audit").exists()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "fine", "labels": ["a"]}) + "\n{not json\n")
    result = invoke("audit", bad, "-o", tmp_path / "audit")
    assert_clean_error(result, str(bad), "line 2")
    assert not (tmp_path / "audit").exists()
    result = invoke("audit", DATA, "-o", tmp_path / "audit", "--fix", "burn")
    assert result.exit_code == 2 and not (tmp_path / "audit").exists()
