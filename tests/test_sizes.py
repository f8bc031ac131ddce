"""Function sizes in ``src/multihot``: a function long enough to do several things is split where its
steps have names (``docs/architecture.md``).

Lines of code: a function's lines but for blank lines, comment lines and its docstring; a nested
function counts toward its own size, not its parent's. Run as a script, it prints the longest.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "multihot"
LIMIT = 80
"""Lines of code a function in ``src/`` may have at most."""
TRAINING_LIMIT = 60
"""At most in ``training/``, the core every training feature goes through."""


def _code_lines(source: str) -> set[int]:
    """Lines that hold a token other than a comment, a newline or an indent."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def _docstring_lines(node: ast.AST) -> set[int]:
    body = getattr(node, "body", [])
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return set(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return set()


def function_sizes(path: Path) -> list[tuple[str, int]]:
    """``(qualified name, lines of code)`` for every function in ``path``."""
    source = path.read_text(encoding="utf-8")
    code = _code_lines(source)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    sizes = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = getattr(child, "name", "")
            if isinstance(child, functions):
                own = set(range(child.lineno, (child.end_lineno or child.lineno) + 1))
                own -= _docstring_lines(child)
                for inner in ast.walk(child):
                    if inner is not child and isinstance(inner, functions):
                        own -= set(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
                sizes.append((f"{prefix}{name}", len(own & code)))
                visit(child, f"{prefix}{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return sizes


def all_sizes() -> list[tuple[str, int]]:
    return sorted(
        (
            (f"{path.relative_to(PACKAGE)}:{name}", size)
            for path in PACKAGE.rglob("*.py")
            for name, size in function_sizes(path)
        ),
        key=lambda item: -item[1],
    )


def test_no_function_is_over_the_limit():
    over = [
        f"{name} ({size} lines of code)"
        for name, size in all_sizes()
        if size > (TRAINING_LIMIT if name.startswith("training/") else LIMIT)
    ]
    assert not over, "split these where their steps have names:\n" + "\n".join(over)


def test_sizes_count_code_not_docstrings_or_comments(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        'def f(x):\n    """Doc.\n\n    More.\n    """\n    # a comment\n\n    y = (\n'
        "        x + 1\n    )\n\n    def g():\n        return 1\n\n    return y\n",
        encoding="utf-8",
    )
    assert dict(function_sizes(path)) == {"f": 5, "f.g": 2}


if __name__ == "__main__":
    for name, size in all_sizes()[:25]:
        print(f"{size:4}  {name}")
