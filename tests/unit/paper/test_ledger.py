"""The ledger is append-only, and its state commits it: nothing recorded twice, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from ijules.paper.ledger import LedgerEntry, LedgerError, commit, read_ledger


def row(hour: int) -> LedgerEntry:
    return LedgerEntry(
        kind="bar",
        time=f"2017-10-15T{hour:02d}:00:00+00:00",
        slot="champion",
        version="1",
        alias="champion",
        approved=True,
        equity_usd=90_000.0 + hour,
        units_held=(0.5,),
        pnl_usd=1.0,
    )


def test_committed_rows_are_appended_to_and_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "champion.jsonl"
    assert commit(path, 0, [row(0), row(1)]) == 2
    before = path.read_bytes()
    assert commit(path, 2, [row(2)]) == 3
    assert path.read_bytes().startswith(before)
    assert [entry.time[11:13] for entry in read_ledger(path)] == ["00", "01", "02"]


def test_nothing_to_append_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "champion.jsonl"
    commit(path, 0, [row(0)])
    stamp = path.stat().st_mtime_ns
    assert commit(path, 1, []) == 1
    assert path.stat().st_mtime_ns == stamp
    assert commit(tmp_path / "none.jsonl", 0, []) == 0
    assert not (tmp_path / "none.jsonl").exists()


def test_rows_no_state_committed_are_written_once_again_not_twice(tmp_path: Path) -> None:
    path = tmp_path / "champion.jsonl"
    commit(path, 0, [row(0)])
    commit(path, 1, [row(1), row(2)])  # ...and the night stopped before its state said 3
    assert commit(path, 1, [row(1), row(2)]) == 3  # the rerun, from the state's count of 1
    assert [entry.time[11:13] for entry in read_ledger(path)] == ["00", "01", "02"]


def test_a_ledger_shorter_than_its_state_says_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "champion.jsonl"
    commit(path, 0, [row(0), row(1)])
    with pytest.raises(LedgerError, match="holds 2 rows but its book's state counts 3"):
        commit(path, 3, [row(3)])


def test_a_row_that_is_not_a_ledger_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "champion.jsonl"
    commit(path, 0, [row(0)])
    path.write_text(path.read_text() + '{"kind": "bar"}\n')
    with pytest.raises(LedgerError, match=r"champion.jsonl row 2 is not a ledger row \(time"):
        read_ledger(path)
