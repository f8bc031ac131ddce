"""Where commands write (issue 29): HTML outputs never replace the data, a run's files or a file
multihot did not write; paths that cannot hold a file are clean errors; a search directory or
journal that holds a user's files is refused untouched, and so is ``--trials 0`` with no study."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import TOY_LABELS, TOY_TEXTS, assert_clean_error, copy_run, invoke, tree, write_jsonl
from multihot.core.errors import MultihotError

# The three verbs that write an HTML page, each given RUN, DATA and the output path.
HTML_VERBS = {
    "report": lambda run, data, out, *more: ("report", run, data, "-o", out, *more),
    "evaluate": lambda run, data, out, *more: ("evaluate", run, data, "--report", out, *more),
    "explain": lambda run, data, out, *more: ("explain", run, "so happy", "--html", out, *more),
}


@pytest.fixture
def run_and_data(toy_run, tmp_path):
    """A copy of the toy run (a failing check must not spoil the shared one) and labelled data."""
    run = copy_run(toy_run[1], tmp_path / "run")
    data = write_jsonl(tmp_path / "data.jsonl", TOY_TEXTS, TOY_LABELS)
    return run, data


def html_cli(verb: str, run: Path, data: Path, output: Path, *more):
    return invoke(*HTML_VERBS[verb](run, data, output, *more))


# ---------------------------------------------------------------- 1: nothing of the user's replaced
@pytest.mark.parametrize("verb", HTML_VERBS)
@pytest.mark.parametrize(
    "target, fragment",
    [
        ("config.json", "not an HTML file name"),
        ("thresholds.json", "not an HTML file name"),
        ("validation.jsonl", "not an HTML file name"),
        ("report.html", "inside"),  # a new name, but in the run directory the command reads
    ],
)
def test_html_outputs_never_write_into_the_run_directory(run_and_data, verb, target, fragment):
    run, data = run_and_data
    before = tree(run)
    assert_clean_error(html_cli(verb, run, data, run / target, "--force"), str(run / target))
    assert_clean_error(html_cli(verb, run, data, run / target), fragment)
    assert tree(run) == before


@pytest.mark.parametrize("target", ["validation.jsonl", "predictions.jsonl"])
def test_predictions_never_land_in_the_run_directory(run_and_data, target):
    run, data = run_and_data
    before = tree(run)
    assert_clean_error(invoke("predict", run, data, "-o", run / target), "inside")
    assert tree(run) == before


@pytest.mark.parametrize("verb", ["report", "evaluate"])
@pytest.mark.parametrize("spelling", ["jsonl", "html", "symlink"])
def test_a_report_never_replaces_its_data(run_and_data, tmp_path, verb, spelling):
    run, data = run_and_data
    if spelling == "html":  # a data file named like a page is still the input
        data = data.rename(tmp_path / "data.html")
    output = {"jsonl": data, "html": data, "symlink": tmp_path / "link.html"}[spelling]
    if spelling == "symlink":
        os.symlink(data, output)
    before = data.read_bytes()
    assert_clean_error(html_cli(verb, run, data, output, "--force"), str(output))
    assert data.read_bytes() == before


@pytest.mark.parametrize("verb", HTML_VERBS)
def test_an_existing_file_multihot_did_not_write_needs_force(run_and_data, tmp_path, verb):
    run, data = run_and_data
    page = tmp_path / "index.html"
    page.write_text("<html>my own page</html>\n", encoding="utf-8")
    assert_clean_error(html_cli(verb, run, data, page), "--force")
    assert page.read_text(encoding="utf-8") == "<html>my own page</html>\n"
    forced = html_cli(verb, run, data, page, "--force")
    assert forced.exit_code == 0, forced.output
    # Now multihot's page: the same command replaces it without --force.
    again = html_cli(verb, run, data, page)
    assert again.exit_code == 0, again.output
    assert 'name="generator" content="multihot"' in page.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "index.html", "run"]


def test_the_library_writers_refuse_a_file_multihot_did_not_write(tmp_path):
    from multihot.inference.explain import Explanation
    from multihot.report.explanation import write_html

    mine = tmp_path / "mine.html"
    mine.write_text("mine\n", encoding="utf-8")
    explanation = Explanation(text="hi")
    with pytest.raises(MultihotError, match="not a page multihot wrote"):
        write_html(explanation, mine)
    assert mine.read_text(encoding="utf-8") == "mine\n"
    write_html(explanation, mine, force=True)
    write_html(explanation, mine)  # its own page now
    with pytest.raises(MultihotError, match="not an HTML file name"):
        write_html(explanation, tmp_path / "notes.txt")


# ------------------------------------------------------------------------- 6: paths, clean errors
@pytest.mark.parametrize("verb", HTML_VERBS)
@pytest.mark.parametrize(
    "where, fragment",
    [("dir", "is a directory"), ("dir.html", "is a directory"), ("nodir/x.html", "does not exist")],
)
def test_an_output_that_cannot_be_a_file_is_a_clean_error(
    run_and_data, tmp_path, verb, where, fragment
):
    run, data = run_and_data
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir.html").mkdir()
    assert_clean_error(html_cli(verb, run, data, tmp_path / where), fragment)
    assert not (tmp_path / "nodir").exists()
    assert not any((tmp_path / "dir").iterdir()) and not any((tmp_path / "dir.html").iterdir())


# ----------------------------------------------------------------------- 2: the search's own paths
optuna = pytest.importorskip("optuna")
import multihot.cli.search  # noqa: E402, F401  (registers the verb)


def search_cli(data: Path, *flags):
    """A search that would train if it got that far: each case here must stop before."""
    return invoke("search", data, "--val", data, "--encoder", "scratch-tiny", *flags)


def test_search_refuses_a_directory_holding_the_users_files(toy_file, tmp_path):
    mydir = tmp_path / "mydir"
    mydir.mkdir()
    (mydir / "best-config.yaml").write_text("lr: 0.001\n", encoding="utf-8")
    (mydir / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = tree(mydir)
    assert_clean_error(search_cli(toy_file, "--trials", 1, "-o", mydir), "notes.txt")
    (mydir / "notes.txt").unlink()
    assert_clean_error(search_cli(toy_file, "--trials", 1, "-o", mydir), "best-config.yaml")
    assert tree(mydir) == {"best-config.yaml": before["best-config.yaml"]}


@pytest.mark.parametrize(
    "content",
    [b"my notes\nline two\n", b'{"not": "a journal"}\n', b"[1, 2]\n", b"\xff\xfe\x00binary"],
    ids=["text", "json", "list", "binary"],
)
def test_search_refuses_a_storage_file_that_is_not_a_journal(toy_file, tmp_path, content):
    log = tmp_path / "mylog.log"
    log.write_bytes(content)
    result = search_cli(toy_file, "--trials", 1, "-o", tmp_path / "s", "--storage", log)
    assert_clean_error(result, "mylog.log", "not an Optuna journal")
    assert log.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mylog.log"]  # no search directory


def test_an_empty_file_or_a_journal_is_a_journal(tmp_path):
    from multihot.artifacts.searchdir import check_journal

    empty = tmp_path / "empty.log"
    empty.touch()
    record = {"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [2]}
    journal = tmp_path / "journal.log"
    journal.write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert check_journal(empty) == empty and check_journal(journal) == journal
    assert check_journal(tmp_path / "new.log") == tmp_path / "new.log"


def test_search_refuses_a_study_log_that_is_not_a_journal(toy_file, tmp_path):
    mydir = tmp_path / "s"
    mydir.mkdir()
    (mydir / "study.log").write_text("my notes\n", encoding="utf-8")
    assert_clean_error(search_cli(toy_file, "--trials", 1, "-o", mydir), "not an Optuna journal")
    assert tree(mydir) == {"study.log": b"my notes\n"}


def test_trials_zero_without_a_study_creates_nothing(toy_file, tmp_path):
    output = tmp_path / "s0"
    assert_clean_error(search_cli(toy_file, "--trials", 0, "-o", output), "does not exist")
    assert not output.exists()
    elsewhere = tmp_path / "journal.log"
    assert_clean_error(
        search_cli(toy_file, "--trials", 0, "-o", output, "--storage", elsewhere), "at least 1"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_trials_zero_names_a_study_that_is_not_in_the_journal(toy_file, tmp_path):
    journal = tmp_path / "journal.log"
    record = {"op_code": 0, "worker_id": "w", "study_name": "other", "directions": [2]}
    journal.write_text(json.dumps(record) + "\n", encoding="utf-8")
    before = journal.read_bytes()
    result = search_cli(toy_file, "--trials", 0, "-o", tmp_path / "s", "--storage", journal)
    assert_clean_error(result, "'toy'", "not found")
    assert journal.read_bytes() == before
    assert not (tmp_path / "s").exists()
