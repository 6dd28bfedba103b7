from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ijules.data.calendar import in_closure, missing_bars, open_intervals, outside_sessions


def test_fx_weekend_window_covers_friday_evening_to_sunday_evening() -> None:
    slots = pd.DatetimeIndex(
        [
            "2017-06-02T19:00Z",
            "2017-06-02T21:00Z",
            "2017-06-03T12:00Z",
            "2017-06-04T22:00Z",
            "2017-06-04T23:00Z",
        ]
    )
    assert in_closure(slots, "fx_24x5").tolist() == [False, True, True, True, False]
    assert not in_closure(slots, "continuous").any()


def test_missing_bars_counts_only_slots_outside_closures() -> None:
    hour = pd.Timedelta("1h")
    stamps = pd.Series(
        pd.to_datetime(
            ["2017-06-02T19:00Z", "2017-06-02T20:00Z", "2017-06-04T23:00Z", "2017-06-05T03:00Z"]
        )
    )
    # Friday 20:00 -> Sunday 23:00 spans the weekend; Sunday 23:00 -> Monday 03:00 misses 3 bars.
    assert missing_bars(stamps, hour, "fx_24x5").tolist() == [0, 0, 0, 3]
    assert missing_bars(stamps, hour, "continuous").tolist() == [0, 0, 50, 3]


def test_out_of_order_and_repeated_bars_are_not_gaps() -> None:
    stamps = pd.Series(
        pd.to_datetime(["2024-01-01T02:00Z", "2024-01-01T01:00Z", "2024-01-01T01:00Z"])
    )
    assert missing_bars(stamps, pd.Timedelta("1h"), "continuous").tolist() == [0, 0, 0]


# --- exchange calendars (pandas_market_calendars) -----------------------------------------

CME = "exchange:CME Globex Equity"


def _utc(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps), utc=True))


def test_the_labor_day_early_close_and_the_evening_reopening_are_a_closure() -> None:
    # 2013-09-02: CME equity futures closed at 10:30 CDT (15:30 UTC) and reopened at 17:00 CDT.
    stamps = _utc("2013-09-02T15:15Z", "2013-09-02T22:00Z", "2013-09-02T22:45Z")
    quarter = pd.Timedelta("15min")
    assert missing_bars(stamps, quarter, CME).tolist() == [0, 0, 2]
    assert missing_bars(stamps, quarter, "continuous").tolist() == [0, 26, 2]


def test_the_daily_maintenance_break_and_the_weekend_are_closures() -> None:
    # Tuesday 2013-09-03 closed at 16:00 CDT (21:00 UTC) and reopened at 17:00; Friday's session
    # closed at 21:00 UTC and the next opened on Sunday at 22:00 UTC.
    hour = pd.Timedelta("1h")
    assert missing_bars(_utc("2013-09-03T20:00Z", "2013-09-03T22:00Z"), hour, CME).tolist() == [
        0,
        0,
    ]
    weekend = _utc("2013-09-06T20:00Z", "2013-09-08T22:00Z")
    assert missing_bars(weekend, hour, CME).tolist() == [0, 0]
    assert missing_bars(_utc("2013-09-03T20:00Z", "2013-09-04T01:00Z"), hour, CME).tolist() == [
        0,
        3,
    ]


def test_bars_outside_the_sessions_are_flagged() -> None:
    stamps = _utc(
        "2013-09-02T15:15Z",  # the last quarter before the early close
        "2013-09-02T15:30Z",  # after it
        "2013-09-03T21:15Z",  # in the maintenance break
        "2013-09-07T12:00Z",  # Saturday
        "2013-09-08T22:00Z",  # Sunday's opening
    )
    flagged = outside_sessions(stamps, CME, pd.Timedelta("15min"))
    assert flagged.tolist() == [False, True, True, True, False]
    assert not outside_sessions(stamps, "fx_24x5", pd.Timedelta("15min")).any()


def test_a_bar_is_in_session_when_its_span_meets_open_time() -> None:
    # An hourly bar stamped 20:30 UTC spans the 21:00 close; at an instant only 20:30 counts.
    stamps = _utc("2013-09-03T20:30Z", "2013-09-03T21:00Z")
    assert outside_sessions(stamps, CME, pd.Timedelta("1h")).tolist() == [False, True]
    assert outside_sessions(stamps, CME, None).tolist() == [False, True]


def test_an_intraday_break_is_a_closure() -> None:
    # CME_Equity paused from 15:15 to 15:30 CT until 2021 (21:15-21:30 UTC in winter).
    starts, ends = open_intervals(
        "CME_Equity", pd.Timestamp("2013-01-02"), pd.Timestamp("2013-01-02")
    )
    spans = list(zip(pd.to_datetime(starts), pd.to_datetime(ends), strict=True))
    assert (pd.Timestamp("2013-01-01T23:00"), pd.Timestamp("2013-01-02T21:15")) in spans
    assert (pd.Timestamp("2013-01-02T21:30"), pd.Timestamp("2013-01-02T22:00")) in spans
    quarter = pd.Timedelta("15min")
    assert in_closure(
        pd.DatetimeIndex(["2013-01-02T21:00", "2013-01-02T21:15", "2013-01-02T21:30"]),
        "exchange:CME_Equity",
        quarter,
    ).tolist() == [False, True, False]


def test_a_daily_series_misses_no_bar_on_new_york_holidays() -> None:
    # 2017-07-04 was a holiday: Monday the 3rd to Wednesday the 5th misses nothing; the
    # weekend neither.
    day = pd.Timedelta("1D")
    stamps = _utc("2017-06-30", "2017-07-03", "2017-07-05", "2017-07-07")
    assert missing_bars(stamps, day, "exchange:XNYS").tolist() == [0, 0, 0, 1]


def test_gap_counts_agree_with_listing_every_slot_of_the_gap() -> None:
    rng = np.random.default_rng(0)
    quarter = pd.Timedelta("15min")
    grid = pd.date_range("2013-08-26", "2013-09-10", freq=quarter, tz="UTC")
    kept = pd.Series(grid[np.sort(rng.choice(len(grid), 300, replace=False))])
    listed = [0]
    for previous, current in itertools.pairwise(kept):
        slots = pd.date_range(previous + quarter, current - quarter, freq=quarter)
        listed.append(int((~in_closure(slots, CME, quarter)).sum()))
    assert missing_bars(kept, quarter, CME).tolist() == listed


def test_a_bar_decades_ahead_is_counted_without_listing_its_gap() -> None:
    minute = pd.Timedelta("1min")
    stamps = _utc("2013-09-03T14:00Z", "2097-09-03T14:00Z")
    [_, missing] = missing_bars(stamps, minute, CME).tolist()
    assert 20_000_000 < missing < 30_000_000  # ~23 hours a day, 5 days a week, 84 years
