"""Where numba keeps the compiled step, keyed by every source file of this package.

numba invalidates its cache only when the decorated function's own file changes, but the step
inlines the phases and compiles in the layouts of the other modules here. Keying the cache
folder by a hash of the whole package (every ``.py`` file, sorted by name) means a change in any
of them, a new helper module included, compiles afresh. Import this before any ``@njit``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba

PACKAGE = Path(__file__).resolve().parent


def source_digest(folder: Path = PACKAGE) -> str:
    """Hash of every Python source under ``folder``, names included, in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


DIGEST = source_digest()
CACHE_DIR = PACKAGE.parent / "__pycache__" / f"numba-sim-{DIGEST}"
numba.config.CACHE_DIR = str(CACHE_DIR)  # type: ignore[attr-defined]
