"""numba's cache for the step is keyed by every source it is compiled from."""

from __future__ import annotations

import shutil
from pathlib import Path

from ijules.sim.cache import compiled_sources, source_digest
from tests.conftest import REPO


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "ijules", tmp_path / "ijules", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path / "ijules" / "sim"


def digest(package: Path) -> str:
    return source_digest(compiled_sources(package), package.parents[1])


def test_the_key_covers_the_modules_the_core_imports_from_outside_it() -> None:
    names = {p.relative_to(REPO).as_posix() for p in compiled_sources(REPO / "ijules" / "sim")}
    assert "ijules/sim/gate.py" in names and "ijules/artifacts.py" in names
    assert "ijules/env/engine.py" not in names  # only what the core imports


def test_a_new_helper_module_or_a_change_in_an_imported_module_changes_the_key(tmp_path) -> None:
    package = _copy(tmp_path)
    before = digest(package)
    (package / "helper.py").write_text("FACTOR = 2.0\n")
    with_helper = digest(package)
    assert with_helper != before
    artifacts = package.parent / "artifacts.py"
    artifacts.write_text(artifacts.read_text() + "\n# changed\n")
    assert digest(package) != with_helper
