"""Directories written all or nothing (``write_dir_atomic``): a run directory, a checkpoint.

Split from tests/training/test_resume.py, where the checkpoints that are swapped in this way made
these regressions show.
"""

from __future__ import annotations

import os

import pytest

from multihot.core.files import replaced, write_dir_atomic


def test_an_error_between_the_renames_of_a_directory_swap_keeps_the_old_directory(
    tmp_path, monkeypatch
):
    """Regression: where directories cannot be swapped in one step, an exception (Ctrl-C) after the
    old directory was renamed away left nothing at the path."""
    import multihot.core.files

    path = tmp_path / "dir"
    write_dir_atomic(path, lambda tmp: (tmp / "old").write_text("old"))
    monkeypatch.setattr(multihot.core.files, "_exchange", lambda a, b: False)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        write_dir_atomic(path, lambda tmp: (tmp / "new").write_text("new"))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["dir"]
    assert (path / "old").read_text() == "old"


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
def test_replacing_a_directory_leaves_nothing_beside_it(tmp_path, monkeypatch, swap):
    import multihot.core.files

    if swap == "two renames":
        monkeypatch.setattr(multihot.core.files, "_exchange", lambda a, b: False)
    for content in ("first", "second", "third"):
        write_dir_atomic(tmp_path / "dir", lambda tmp, c=content: (tmp / "f").write_text(c))
    assert [p.name for p in tmp_path.iterdir()] == ["dir"]
    assert (tmp_path / "dir" / "f").read_text() == "third"


def test_replaced_renames_on_success_and_leaves_nothing_on_error(tmp_path):
    """The file a library writes to a name (an ONNX graph, a Parquet file) replaces ``path`` only
    when the block ends well; either way no temporary file is left beside it."""
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="check failed"), replaced(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("check failed")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with replaced(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
