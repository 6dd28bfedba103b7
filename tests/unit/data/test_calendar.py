from __future__ import annotations

import pandas as pd

from ijules.data.calendar import in_closure, missing_bars


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
