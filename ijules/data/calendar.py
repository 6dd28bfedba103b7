"""Market calendars: which gaps between bars a market closure explains.

``continuous`` markets (crypto) never close, so every missing bar is a gap. ``fx_24x5`` closes
for the weekend: the last bar comes on Friday between 20:00 and 22:00 UTC and the first on Sunday
between 21:00 and 23:00 UTC, depending on daylight saving in New York. A missing bar that falls in
that window is a closure, not a gap; holidays on weekdays are still reported.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

Calendar = Literal["continuous", "fx_24x5"]

_FRIDAY, _SATURDAY, _SUNDAY = 4, 5, 6
_FX_WEEKEND_OPENS_HOUR = 20  # Friday, UTC: earliest close seen (summer time)
_FX_WEEKEND_CLOSES_HOUR = 23  # Sunday, UTC: latest reopening seen (winter time)


def in_closure(slots: pd.DatetimeIndex, calendar: Calendar) -> npt.NDArray[np.bool_]:
    """Return whether each UTC timestamp in ``slots`` falls inside a market closure."""
    if calendar == "continuous":
        return np.zeros(len(slots), dtype=bool)
    weekday = slots.weekday.to_numpy()
    hour = slots.hour.to_numpy()
    closed = (
        ((weekday == _FRIDAY) & (hour >= _FX_WEEKEND_OPENS_HOUR))
        | (weekday == _SATURDAY)
        | ((weekday == _SUNDAY) & (hour < _FX_WEEKEND_CLOSES_HOUR))
    )
    return np.asarray(closed, dtype=bool)


def missing_bars(
    timestamps: pd.Series, bar: pd.Timedelta, calendar: Calendar
) -> npt.NDArray[np.int64]:
    """Count, for each bar, the missing bars since the previous one that no closure explains.

    The first bar, and bars that do not follow their predecessor, get 0: order and grid are other
    rules' business.
    """
    stamps = timestamps.to_numpy(dtype="datetime64[ns]")  # UTC wall clock
    counts = np.zeros(len(stamps), dtype=np.int64)
    if len(stamps) < 2:
        return counts
    steps = np.diff(stamps).astype(np.int64)
    bar_ns = bar.value
    gap_rows = np.flatnonzero(steps > bar_ns) + 1
    if calendar == "continuous":
        counts[gap_rows] = np.ceil(steps[gap_rows - 1] / bar_ns).astype(np.int64) - 1
        return counts
    for row in gap_rows:
        # A weekend gap is at most a few days of bars, so listing its slots stays cheap.
        first_missing = pd.Timestamp(stamps[row - 1]) + bar
        slots = pd.date_range(first_missing, pd.Timestamp(stamps[row]) - bar, freq=bar)
        counts[row] = int(np.count_nonzero(~in_closure(slots, calendar)))
    return counts
