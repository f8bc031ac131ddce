"""Line coverage of ``src/multihot`` per layer, from the coverage data of the last test run.

    .venv/bin/python scripts/coverage_layers.py [DATA_FILE]

``scripts/test.sh`` runs pytest with ``--cov`` (settings in pyproject.toml's ``[tool.coverage.*]``,
subprocesses included) and then this script. A row per layer of ``tests/test_layers.py`` (``LAYERS``,
with its ``layer_of``: ``__main__`` counts in ``cli``), then any directory not yet a layer, the
package's ``__init__``, and the total. Lines are the statements coverage counts; a module no test
imported counts with none covered. After a run of a few tests the table says only what they reached;
without coverage data it says so and exits 0.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "multihot"
PACKAGE_ROOT = "__init__"  # the row of src/multihot/__init__.py, which is no layer


def _layers_module():
    """tests/test_layers.py, loaded by path: ``LAYERS`` and ``layer_of`` live there, once."""
    spec = importlib.util.spec_from_file_location("test_layers", ROOT / "tests" / "test_layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def layer_counts(data_file: Path) -> dict[str, tuple[int, int]]:
    """``{layer: (lines, covered)}`` over every module of the package."""
    layers = _layers_module()
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("multihot", *path.relative_to(PACKAGE).with_suffix("").parts))
        layer = layers.layer_of(module.removesuffix(".__init__")) or PACKAGE_ROOT
        _, statements, _, missing, _ = cov.analysis2(str(path))
        counts[layer][0] += len(statements)
        counts[layer][1] += len(statements) - len(missing)
    order = [*layers.LAYERS, *sorted(set(counts) - {*layers.LAYERS, PACKAGE_ROOT}), PACKAGE_ROOT]
    return {layer: (counts[layer][0], counts[layer][1]) for layer in order if layer in counts}


def table(counts: dict[str, tuple[int, int]]) -> str:
    def row(name: str, lines: int, covered: int) -> str:
        percent = f"{100 * covered / lines:.1f}" if lines else "-"
        return f"{name:<12} {lines:>7} {covered:>8} {percent:>7}"

    total_lines = sum(lines for lines, _ in counts.values())
    total_covered = sum(covered for _, covered in counts.values())
    return "\n".join(
        [
            f"{'layer':<12} {'lines':>7} {'covered':>8} {'%':>7}",
            *(row(name, lines, covered) for name, (lines, covered) in counts.items()),
            row("total", total_lines, total_covered),
        ]
    )


def main(argv: list[str]) -> int:
    data_file = Path(argv[0]) if argv else ROOT / ".coverage"
    if not data_file.is_file():
        print(f"coverage per layer: no coverage data ({data_file}); run pytest with --cov")
        return 0
    print("line coverage per layer (src/multihot):")
    print(table(layer_counts(data_file)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
