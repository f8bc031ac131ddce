"""The package's layers: every import inside ``src/multihot`` points down (or stays in its layer).

A module may import from its own layer and the layers below it, never from one above; a
function-level import is not a way around that. The check reads the source (``ast``), so it sees
imports inside functions too. ``LAYERS`` is the contract: lowest first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "multihot"

LAYERS = [
    "core",  # errors, config, atomic files, device and processes
    "data",  # readers, writers, labels, splits, texts -> ids, batches
    "scoring",  # metrics, thresholds
    "modeling",  # encoders, pooling, heads, the model, ensembles
    "artifacts",  # the run directory
    "baseline",  # TF-IDF + logistic regression
    "inference",  # backends and Predictor
    "training",  # the loop, checkpoints, losses, the run's training
    "classifier",  # the facade
    "export",  # ONNX and Hugging Face
    "batch",  # batch prediction on Ray Data and Spark: the callable class, the jobs
    "tuning",  # k-fold cross-validation, hyperparameter search
    "quality",  # data checks, label issues (audit)
    "report",  # the HTML report, its plots, explanations rendered
    "serve",  # the HTTP API, its batcher, the page, the client
    "cli",  # the command line
]
# Modules at the package root that are not a layer of their own.
ROOT_MODULES = {"__init__": None, "__main__": "cli"}


def layer_of(module: str) -> str | None:
    """The layer of ``multihot.X.Y`` (``X``), None for the package itself."""
    parts = module.split(".")
    if parts[0] != "multihot":
        return None
    if len(parts) == 1:
        return None
    return ROOT_MODULES.get(parts[1], parts[1])


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of a multihot module in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "multihot":  # from multihot import x: x is a layer or a name
                found += [(node.lineno, f"multihot.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "multihot"]


def violations(package: Path = PACKAGE) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    found = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(("multihot", *path.relative_to(package).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        here = layer_of(module)
        if here is None:
            continue
        for line, imported in imports(path):
            there = layer_of(imported)
            if there is None or there not in rank:
                continue  # the package's own names (__version__), or not a layer
            if rank[there] > rank[here]:
                found.append(
                    f"{path.relative_to(package)}:{line}: {here} imports {imported} ({there})"
                )
    return found


def test_every_module_is_in_a_layer():
    known = set(LAYERS) | set(ROOT_MODULES)
    entries = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    entries = {e for e in entries if not e.startswith(("_", ".")) or e in ROOT_MODULES}
    assert entries - {"py"} <= known, sorted(entries - known)


def test_imports_point_down_the_layers():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    fake = tmp_path / "multihot"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "errors.py").write_text("def f():\n    from multihot.cli import app\n")
    assert violations(fake) == ["core/errors.py:2: core imports multihot.cli (cli)"]


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(violations()) or "no upward imports")
    raise SystemExit(pytest.main([__file__, "-q"]))


def test_the_baseline_kind_is_spelled_once():
    """One place decides transformer or baseline (``core.config.BASELINE_KIND``); every other
    module asks it, so the string itself appears once in the package."""
    spelled = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if '"tfidf-logreg"' in line or "'tfidf-logreg'" in line
    ]
    assert len(spelled) == 1 and spelled[0].startswith("core/config.py:"), spelled
