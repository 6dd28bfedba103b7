"""Where numba keeps the compiled step, keyed by every source the step is compiled from.

numba invalidates its cache only when the decorated function's own file changes, but the step
inlines the phases, compiles in the layouts and the names they take from other modules. Keying
the cache folder by a hash of this package's files and of every ijules module they import
(found by reading their import statements, so a new helper module or a new import is covered
without a list to maintain) means any change there compiles afresh. Import this before any
``@njit``.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numba

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parents[1]  # the folder holding the ijules package


def _module_file(module: str, root: Path) -> Path | None:
    path = root.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_files(source: Path, root: Path) -> set[Path]:
    """The ijules modules ``source`` imports (and their parent packages), as files."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "ijules":
                continue
            for k in range(1, len(parts) + 1):
                file = _module_file(".".join(parts[:k]), root)
                if file is not None:
                    found.add(file)
    return found


def compiled_sources(package: Path = PACKAGE) -> list[Path]:
    """This package's sources and every ijules module they import, directly or not."""
    root = package.parents[1]
    pending = set(package.rglob("*.py"))
    seen: set[Path] = set()
    while pending:
        source = pending.pop()
        seen.add(source)
        pending |= _imported_files(source, root) - seen
    return sorted(seen)


def source_digest(sources: list[Path], root: Path = ROOT) -> str:
    """Hash of the sources, their names included, in a stable order."""
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


DIGEST = source_digest(compiled_sources())
CACHE_DIR = ROOT / "ijules" / "__pycache__" / f"numba-sim-{DIGEST}"
numba.config.CACHE_DIR = str(CACHE_DIR)  # type: ignore[attr-defined]
