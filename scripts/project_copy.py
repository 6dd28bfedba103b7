"""A copy of the project in a folder of its own, with a parameter overlay: what the approval drill
and the replay run their DAGs in, so that the project's own registry and results stay untouched.

Standard library and PyYAML only: the scripts import it from their own folder.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` laid over it, section by section."""
    merged = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        merged[key] = (
            merge(current, value)
            if isinstance(current, dict) and isinstance(value, dict)
            else value
        )
    return merged


def copy_project(target: Path, overlay: dict[str, Any], message: str) -> None:
    """Copy the working tree's files that git knows (tracked, or new and not ignored) into
    ``target``, lay ``overlay`` over its params.yaml, and commit it as a repository of its own."""
    if target.exists():
        shutil.rmtree(target)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    params = yaml.safe_load((target / "params.yaml").read_text())
    (target / "params.yaml").write_text(yaml.safe_dump(merge(params, overlay), sort_keys=False))
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", message]):
        subprocess.run(
            ["git", "-c", "user.name=ijules", "-c", "user.email=ijules@localhost", *args],
            cwd=target, check=True, capture_output=True,
        )  # fmt: skip
