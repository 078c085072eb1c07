"""The layering in DESIGN.md: the core never imports Qt, imaging and the DICOM network never
import TensorFlow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medvis_desktop"
QT = {"PySide6", "pyqtgraph", "shiboken6"}
TENSORFLOW = {"tensorflow", "keras", "tf_keras"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def modules(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py")) if subpackage else sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize(
    "subpackage", ["", "imaging", "models", "explain", "metrics", "export", "demo", "dicomnet"]
)
def test_core_never_imports_qt(subpackage):
    for path in modules(subpackage):
        assert not imported_roots(path) & QT, f"{path.relative_to(PACKAGE)} imports Qt"


@pytest.mark.parametrize("subpackage", ["imaging", "dicomnet"])
def test_imaging_and_networking_never_import_tensorflow(subpackage):
    paths = modules(subpackage)
    assert paths, f"{subpackage} package not found"
    for path in paths:
        assert not imported_roots(path) & TENSORFLOW, f"{path.relative_to(PACKAGE)} imports TensorFlow"


def test_the_rule_sees_an_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy\nfrom PySide6.QtCore import QObject\n")
    assert imported_roots(sample) == {"numpy", "PySide6"}
