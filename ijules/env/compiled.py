"""Where numba keeps the compiled kernel, keyed by the sources it was compiled from.

numba's own cache is invalidated only when the decorated function's file changes, but the kernel
also compiles in constants from :mod:`ijules.env.layout` and inlines :mod:`ijules.risk.gate`. A
change there would silently reuse stale machine code; keying the cache folder by a hash of every
source the kernel depends on makes that impossible. Import this before defining compiled code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba

_PACKAGE = Path(__file__).resolve().parents[1]
SOURCES = (
    _PACKAGE / "env" / "kernel.py",
    _PACKAGE / "env" / "layout.py",
    _PACKAGE / "risk" / "gate.py",
    _PACKAGE / "risk" / "codes.py",
)
DIGEST = hashlib.sha256(b"".join(path.read_bytes() for path in SOURCES)).hexdigest()[:16]
CACHE_DIR = _PACKAGE / "__pycache__" / f"numba-{DIGEST}"
numba.config.CACHE_DIR = str(CACHE_DIR)  # type: ignore[attr-defined]
