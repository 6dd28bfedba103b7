"""Atomic artifact writes and content hashes.

Every artifact is written to a temporary file in its final folder and renamed into place, so a
crash or a failed stage never leaves a half-written file where the last good one was.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp makes it 0600; the artifact gets the mode a plain write would give it, so that the
    # other users of a shared project (a worker, the api-server, a person) can read it.
    os.fchmod(fd, _new_file_mode())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _new_file_mode() -> int:
    """0o666 less the process's umask (read from /proc where it can be, so as not to set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically; NaN and inf are refused."""
    write_text(target, json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def write_parquet(target: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as Parquet, atomically."""
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary file, then move it onto ``target``."""
    with atomic_path(target) as tmp:
        writer(tmp)


def md5_file(path: Path) -> str:
    """Return the MD5 of a file's bytes: the hash DVC records for a file output."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
