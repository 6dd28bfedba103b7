"""A replayed day's snapshot: tonight's files only when tonight's task made them, and a book
closed tonight with what its ledger says it cost."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ijules.artifacts import PaperModelNight, PaperReport
from ijules.operations.timeline import ReplayRun, snapshot_day
from ijules.paper.ledger import LedgerEntry, commit

DAY = date(2026, 4, 26)


def nightly(**tasks: str) -> ReplayRun:
    return ReplayRun(
        dag_id="ijules_nightly",
        run_id="manual__1",
        logical_date="2026-04-26T01:00:00+00:00",
        trigger="schedule",
        triggered_by=None,
        reason=None,
        state="success" if set(tasks.values()) == {"success"} else "failed",
        seconds=1.0,
        tasks=tasks,
    )


def night(slot: str, version: str, **changes: Any) -> PaperModelNight:
    fields: dict[str, Any] = {
        "slot": slot, "version": version, "alias": slot, "status": slot, "approved": True,
        "allocation": 0.9, "capital_usd": 90_000.0, "outcome": "traded", "started": False,
        "retired": None, "first_bar": None, "last_bar": None, "standing_at": None, "bars": 24,
        "fills": 3, "pnl_usd": 12.5, "costs_usd": 1.0, "pnl_cumulative_usd": 40.0,
        "equity_usd": 90_040.0, "drawdown": 0.001, "breaker_events": [], "error": None,
        "ledger": "",
    }  # fmt: skip
    return PaperModelNight.model_validate({**fields, **changes})


def ledger_row(kind: str, version: str, equity: float, cost: float | None = None) -> LedgerEntry:
    return LedgerEntry(
        kind=kind,  # type: ignore[arg-type]
        time="2026-04-25T23:00:00+00:00",
        slot="champion",
        version=version,
        alias="champion",
        approved=True,
        equity_usd=equity,
        units_held=(),
        cost_usd=cost,
    )


@pytest.fixture
def project(tmp_path: Path, make_config: Any, mlflow_store: str) -> tuple[Any, Path]:
    config = make_config()
    root = tmp_path / "project"
    PaperReport(
        model_name="ijules-policy",
        data_end="2026-04-25T23:00:00+00:00",
        capital_usd=100_000.0,
        challenger_allocation=0.1,
        models=[night("champion", "1", started=True, retired="2", pnl_cumulative_usd=12.5)],
        note=None,
    ).write(root / config.paths.paper_report)
    commit(
        root / config.paths.paper_ledgers / "champion.jsonl",
        0,
        [
            ledger_row("start", "2", 90_000.0),
            ledger_row("bar", "2", 89_900.0),
            ledger_row("retire", "2", 89_880.0, cost=20.0),
            ledger_row("start", "1", 90_000.0),
        ],
    )
    return config, root


def test_a_book_replaced_tonight_shows_its_exit_cost_and_what_it_made_in_all(
    project: tuple[Any, Path],
) -> None:
    config, root = project
    day = snapshot_day(config, root, DAY, [nightly(paper="success", drift="failed")], [], 0)
    books = {(book.version, book.outcome): book for book in day.books or []}
    assert set(books) == {("1", "traded"), ("2", "retired")}
    retired = books[("2", "retired")]
    assert (retired.exit_cost_usd, retired.pnl_cumulative_usd, retired.bars) == (20.0, -120.0, 0)
    assert books[("1", "traded")].retired == "2"
    assert day.data_end == "2026-04-25T23:00:00+00:00"
    assert (day.champion, day.challenger, day.events, day.audit_head) == (None, None, [], 0)


def test_a_file_an_earlier_night_left_is_not_read_as_tonights(
    project: tuple[Any, Path],
) -> None:
    config, root = project
    # Tonight's paper task failed; the report on disk is an earlier night's. No health task.
    day = snapshot_day(config, root, DAY, [nightly(paper="failed", drift="upstream_failed")], [], 0)
    assert (day.books, day.drift_share, day.health, day.data_end) == (None, None, None, None)
    assert "paper: not measured (paper task failed)" in day.notes
    assert "health: not measured (the nightly DAG has no health task)" in day.notes
    assert any(note.startswith("nightly failed") for note in day.notes)
