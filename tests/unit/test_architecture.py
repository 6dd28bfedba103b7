"""The package's shape: configuration sections are leaves, and the core's layout stays inside it.

The layers themselves are import-linter's contract (.importlinter, run by `make lint`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

from tests.conftest import REPO

PACKAGE = REPO / "ijules"
# Positions inside the core's records; outside ijules.sim code goes by name.
CORE_INDEXES = {
    "FIXED", "PROPORTIONAL", "TICK", "TEMPORARY", "PERMANENT", "CAPACITY",
    "HEAT", "CONCENTRATION", "VELOCITY", "BREACH", "CORRELATION",
    "RELEASE_TIME", "RELEASE_CONDITION", "RELEASE_OPERATOR",
}  # fmt: skip


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("ijules", cache_dir=None)


def test_configuration_sections_import_only_other_sections(graph) -> None:
    """ijules.config assembles the sections (the one exception in .importlinter), which is
    only sound while a section module holds nothing but models: no behaviour to depend on."""
    allowed_leaves = {"ijules.frozen", "ijules.sim.layout", "ijules.sim"}
    sections = sorted(m for m in graph.modules if m.endswith(".config") and m != "ijules.config")
    assert len(sections) >= 9
    for section in sections:
        imported = {
            m for m in graph.find_modules_directly_imported_by(section) if m.startswith("ijules")
        }
        strays = {m for m in imported if not m.endswith(".config") and m not in allowed_leaves}
        assert not strays, f"{section} imports behaviour: {sorted(strays)}"


def _python_files(outside: Path) -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if outside not in p.parents]


def test_no_code_outside_the_core_uses_its_record_positions() -> None:
    """Outside ijules.sim, cost components, risk features and release modes go by name."""
    offenders = []
    for path in _python_files(PACKAGE / "sim"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else None
            )
            if name in CORE_INDEXES:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
            if isinstance(node, ast.ImportFrom) and node.module == "ijules.sim.layout":
                offenders += [
                    f"{path.relative_to(REPO)}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name in CORE_INDEXES
                ]
    assert offenders == []


def test_package_init_modules_hold_no_code() -> None:
    """Importing a package runs its __init__: keep them inert (a docstring, constants) so that
    a package is what its modules hold."""
    for init in PACKAGE.rglob("__init__.py"):
        for node in ast.parse(init.read_text(encoding="utf-8")).body:
            inert = isinstance(node, ast.Expr | ast.Assign) and isinstance(node.value, ast.Constant)
            assert inert, f"{init.relative_to(REPO)}:{node.lineno} holds code"
