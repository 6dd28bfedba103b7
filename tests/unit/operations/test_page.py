"""The timeline's page: a line per paper book, the days marked, and what was not measured."""

from __future__ import annotations

from typing import Any

from ijules.operations.page import book_series, render
from ijules.operations.timeline import BookDay, RegistryEvent, Timeline, TimelineDay


def book(version: str, outcome: str = "traded", started: bool = False, pnl: float = 0.0) -> BookDay:
    return BookDay.model_validate(
        {
            "slot": "champion",
            "version": version,
            "alias": "champion",
            "approved": True,
            "outcome": outcome,
            "started": started,
            "retired": None,
            "bars": 24,
            "fills": 1,
            "pnl_usd": 1.0,
            "costs_usd": 0.1,
            "pnl_cumulative_usd": pnl,
            "equity_usd": 90_000.0,
            "drawdown": 0.0,
            "breaker_events": [],
            "exit_cost_usd": 0.0,
            "error": None,
        }
    )


def day(name: str, books: list[BookDay] | None, **changes: Any) -> TimelineDay:
    fields: dict[str, Any] = {
        "day": name, "as_of": f"{name}T01:00:00+00:00", "data_end": None, "runs": [],
        "desk": [], "champion": "1", "challenger": None, "books": books, "drift_share": 0.25,
        "drifted_features": 4, "features": 16, "health": None, "events": [], "audit_head": 0,
        "notes": [],
    }  # fmt: skip
    return TimelineDay.model_validate({**fields, **changes})


ROLLBACK = RegistryEvent(
    seq=7,
    time="2026-12-03T08:00:00+00:00",
    actor="airflow:ijules_rollback:manual__1",
    action="rollback",
    version="1",
    alias="champion",
    reason="<b>desk</b>: too many losses",
)
DAYS = [
    day("2026-04-25", [book("1", started=True, pnl=5.0)]),
    day("2026-04-26", [book("1", pnl=8.0)]),
    day("2026-04-27", [book("2", started=True, pnl=-1.0), book("1", "retired", pnl=7.0)]),
    day("2026-04-28", [book("2", pnl=-3.0)], events=[ROLLBACK]),
    day("2026-04-29", [book("1", started=True, pnl=2.0), book("2", "retired", pnl=-3.5)]),
]


def test_a_version_that_comes_back_to_its_slot_is_a_new_book() -> None:
    series = [(s.label, s.days, s.pnl_usd) for s in book_series(DAYS)]
    assert series == [
        ("champion v1 (from 2026-04-25)", [0, 1, 2], [5.0, 8.0, 7.0]),
        ("champion v2 (from 2026-04-27)", [2, 3, 4], [-1.0, -3.0, -3.5]),
        ("champion v1 (from 2026-04-29)", [4], [2.0]),
    ]


def test_the_page_marks_the_rollback_escapes_what_people_typed_and_says_what_was_not_measured() -> (
    None
):
    timeline = Timeline(
        model_name="ijules-policy",
        sample="data/samples/btcusd_1h.csv.gz",
        shift_weeks=444,
        first_day="2026-04-25",
        last_day="2026-04-30",
        approver="replay_risk_officer",
        days=[*DAYS, day("2026-04-30", None, drift_share=None)],
        seconds=60.0,
        complete=False,
    )
    page = render(timeline)
    assert "<img src='data:image/png;base64," in page
    assert "6 day(s) replayed (in progress)" in page and "1 rollback(s)" in page
    assert "<span class='rollback'>#7 rollback v1 &rarr; champion</span>" in page
    assert "&lt;b&gt;desk&lt;/b&gt;: too many losses" in page and "<b>desk</b>" not in page
    # No health report any day; no books and no drift on the last.
    assert page.count("<span class='note'>not measured</span>") == 6 + 2
