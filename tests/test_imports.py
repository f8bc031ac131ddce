"""Every import inside a function says why it is there.

A function-level import hides a dependency from the top of the module, so it needs a reason. The
reason is a comment on the import's own line(s) or on the comment line(s) directly above it. A
comment line above covers a group of imports: the imports below it up to the first line that is not
an import, a comment or blank (so the blank lines the formatter puts between stdlib, third-party and
first-party imports do not end a group). A comment at the end of an import's line covers only that
import. The comment must contain one of :data:`REASONS` (case-insensitive):

- ``# heavy: <package>``: a library that is slow to import (torch, transformers, sklearn, ...);
- ``# optional: <package>``: an extra that may not be installed (onnxruntime, fastapi, optuna,
  ray, cleanlab, matplotlib, captum, ...);
- ``# keeps torch off the ONNX path`` (or the baseline path): a multihot module that imports torch;
- ``# cycle: <module>``: an import that would be circular at module level;
- ``# startup: ...``: kept off ``import multihot`` / ``multihot --help`` for start-up time.

``cli/`` is exempt as a whole: it imports lazily so that ``multihot --help`` stays fast. An
``if TYPE_CHECKING:`` block at module level is not function-level. Each offender is reported as
``path:line: import``, the path relative to ``src/multihot``. The check reads the source
(``ast`` for the imports, ``tokenize`` for the comments), so nothing is imported.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "multihot"
EXEMPT = ("cli",)  # top-level directories of the package not checked
REASONS = ("heavy:", "optional:", "torch off", "cycle:", "startup:")

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _function_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements inside a function (at any depth), in source order."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child, in_function or isinstance(child, _FUNCTIONS))

    visit(tree, False)
    return sorted(found, key=lambda node: node.lineno)


def _comments(source: str) -> dict[int, str]:
    """``{line: comment text}`` for every comment in ``source`` (never a ``#`` inside a string)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string for tok in tokens if tok.type == tokenize.COMMENT}


def _has_reason(comment: str) -> bool:
    return any(reason in comment.lower() for reason in REASONS)


def unexplained(path: Path) -> list[tuple[int, str]]:
    """``(line, source line)`` of every function-level import in ``path`` without a reason."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    comments = _comments(source)
    imports = _function_imports(ast.parse(source))
    import_lines = {n for node in imports for n in range(node.lineno, node.end_lineno + 1)}
    found = []
    for node in imports:
        own = range(node.lineno, node.end_lineno + 1)
        if any(_has_reason(comments.get(n, "")) for n in own):
            continue
        # Up from the line above: comment lines, blank lines and the group's other imports.
        n, explained = node.lineno - 1, False
        while n >= 1 and not explained:
            text = lines[n - 1].strip()
            if text.startswith("#"):
                explained = _has_reason(text)
            elif text and n not in import_lines:
                break  # (the comment at the end of another import's line covers only that one)
            n -= 1
        if not explained:
            found.append((node.lineno, lines[node.lineno - 1].strip()))
    return found


def offenders(package: Path = PACKAGE) -> list[str]:
    """``path:line: import`` for every unexplained function-level import under ``package``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in EXEMPT:
            continue
        found += [f"{relative}:{line}: {text}" for line, text in unexplained(path)]
    return found


def test_every_function_level_import_says_why():
    found = offenders()
    assert found == [], "function-level imports without a reason " + (
        f"(a comment with one of {REASONS}):\n" + "\n".join(found)
    )


def test_the_check_catches_an_uncommented_import(tmp_path):
    package = tmp_path / "multihot"
    (package / "core").mkdir(parents=True)
    (package / "cli").mkdir()
    (package / "core" / "errors.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import torch\n"  # 3: not in a function
        "def f():\n"
        "    import json\n"  # 5: no comment
        "    # heavy: torch and transformers\n"
        "    import torch\n"  # 7: explained above
        "    import transformers\n"  # 8: same group
        "    x = 1\n"
        "    import numpy\n"  # 10: code ends the group
        "    x = '# heavy: scipy'\n"
        "    from scipy import optimize\n"  # 12: a string is not a comment
        "    from onnx import (  # optional: onnx\n"  # 13: a comment on its own line
        "        helper,\n"
        "    )\n"
        "    from multihot.inference import (\n"  # 16: a comment on a later line of it
        "        torch_backend,  # keeps torch off the ONNX path\n"
        "    )\n"
        "    # imported here because it is heavy\n"
        "    import yaml\n"  # 20: a comment, but no reason; 17 covers only 16
        "    # cycle: multihot.report.html imports this module\n"
        "    import re  # heavy: re\n"
        "\n"
        "    from multihot.report.html import write_report\n"  # 24: blank lines stay in a group
        "    # optional: onnxruntime\n"
        "    try:\n"
        "        import onnxruntime\n"  # 27: the comment is not directly above
        "    except ImportError:\n"
        "        pass\n"
    )
    (package / "cli" / "app.py").write_text("def f():\n    import torch\n")
    assert offenders(package) == [
        "core/errors.py:5: import json",
        "core/errors.py:10: import numpy",
        "core/errors.py:12: from scipy import optimize",
        "core/errors.py:20: import yaml",
        "core/errors.py:27: import onnxruntime",
    ]


def test_scoring_imports_no_training_settings():
    """scoring/ is functions of arrays: nothing from core.config (metric names: core.metric_names)."""
    found = []
    for path in sorted((PACKAGE / "scoring").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            if "multihot.core.config" in names:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(offenders()) or "every function-level import says why")
    raise SystemExit(pytest.main([__file__, "-q"]))
