"""Atomic artifact writes: the file appears whole, with the mode a plain write would give it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ijules.io import write_json, write_text


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_an_artifact_gets_the_mode_of_a_plain_write_not_mkstemps_0600(
    umask: int, tmp_path: Path
) -> None:
    before = os.umask(umask)
    try:
        write_text(tmp_path / "night.json", "{}\n")
        (tmp_path / "plain.json").write_text("{}\n")
    finally:
        os.umask(before)
    mode = stat.S_IMODE((tmp_path / "night.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_last_good_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"sharpe": 1.0})
    with pytest.raises(ValueError, match="Out of range float values"):
        write_json(target, {"sharpe": float("nan")})
    assert target.read_text() == '{\n  "sharpe": 1.0\n}\n'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"]
