"""Market calendars: which missing bars a market closure explains, and which bars no session holds.

``continuous`` markets (crypto) never close, so every missing bar is a gap. ``fx_24x5`` closes
for the weekend: the last bar comes on Friday between 20:00 and 22:00 UTC and the first on Sunday
between 21:00 and 23:00 UTC, depending on daylight saving in New York. A missing bar that falls in
that window is a closure, not a gap; holidays on weekdays are still reported. The window is wide
enough for both seasons, so it cannot tell a bar that lies outside the sessions.

``exchange:NAME`` takes an exchange's regular sessions from pandas_market_calendars (which builds
on exchange_calendars): each session's open and close and its intraday break, with the holidays
and early closes of its history. Whatever lies outside them (weekends, holidays, the time after an
early close, the daily maintenance break between CME Globex sessions) is a closure. A time bar is
in session when its span [start, start + bar) meets open time; a bar stamped at an instant (volume
and dollar bars, at their last trade) when that instant is open time.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.data.config import EXCHANGE_PREFIX

Calendar = str  # continuous | fx_24x5 | exchange:NAME (checked when the configuration is read)
Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_FRIDAY, _SATURDAY, _SUNDAY = 4, 5, 6
_FX_WEEKEND_OPENS_HOUR = 20  # Friday, UTC: earliest close seen (summer time)
_FX_WEEKEND_CLOSES_HOUR = 23  # Sunday, UTC: latest reopening seen (winter time)
_NAT = np.iinfo(np.int64).min
_MARGIN = pd.Timedelta(days=3)  # schedule fetched around the bars: sessions open the day before


def is_exchange(calendar: Calendar) -> bool:
    """Whether ``calendar`` names an exchange's sessions (rather than a built-in rule)."""
    return calendar.startswith(EXCHANGE_PREFIX)


def in_closure(
    slots: pd.DatetimeIndex, calendar: Calendar, bar: pd.Timedelta | None = None
) -> BoolArray:
    """Return whether each UTC bar start in ``slots`` falls inside a market closure.

    For an exchange, a slot of length ``bar`` is closed when it meets no open time (``None``:
    the instant itself).
    """
    if calendar == "continuous":
        return np.zeros(len(slots), dtype=bool)
    if is_exchange(calendar):
        stamps = _nanoseconds(slots)
        return ~_meets_open_time(stamps, calendar, _span_ns(bar))
    weekday = slots.weekday.to_numpy()
    hour = slots.hour.to_numpy()
    closed = (
        ((weekday == _FRIDAY) & (hour >= _FX_WEEKEND_OPENS_HOUR))
        | (weekday == _SATURDAY)
        | ((weekday == _SUNDAY) & (hour < _FX_WEEKEND_CLOSES_HOUR))
    )
    return np.asarray(closed, dtype=bool)


def outside_sessions(
    timestamps: pd.Series, calendar: Calendar, span: pd.Timedelta | None
) -> BoolArray:
    """Return, for each bar, whether it lies outside every session of an exchange calendar.

    ``span`` is the bar's length (``None`` for bars stamped at an instant). The built-in
    calendars have no sessions to leave: nothing lies outside them. A missing timestamp is not
    judged here (another rule names it).
    """
    stamps = _nanoseconds(timestamps)
    if not is_exchange(calendar) or len(stamps) == 0:
        return np.zeros(len(stamps), dtype=bool)
    known = stamps != _NAT
    outside = np.zeros(len(stamps), dtype=bool)
    outside[known] = ~_meets_open_time(stamps[known], calendar, _span_ns(span))
    return outside


def missing_bars(timestamps: pd.Series, bar: pd.Timedelta, calendar: Calendar) -> Int64Array:
    """Count, for each bar, the missing bars since the previous one that no closure explains.

    The first bar, bars that do not follow their predecessor and bars next to a missing
    timestamp get 0: order, grid and nulls are other rules' business.
    """
    stamps = _nanoseconds(timestamps)  # UTC wall clock
    counts = np.zeros(len(stamps), dtype=np.int64)
    if len(stamps) < 2:
        return counts
    known = stamps != _NAT
    bar_ns = bar.value
    steps = np.diff(stamps)
    gap_rows = np.flatnonzero((steps > bar_ns) & known[:-1] & known[1:]) + 1
    if len(gap_rows) == 0:
        return counts
    if calendar == "continuous":
        counts[gap_rows] = np.ceil(steps[gap_rows - 1] / bar_ns).astype(np.int64) - 1
    elif is_exchange(calendar):
        counts[gap_rows] = _open_slots_between(
            stamps[gap_rows - 1], stamps[gap_rows], bar_ns, calendar
        )
    else:
        for row in gap_rows:
            # A weekend gap is at most a few days of bars, so listing its slots stays cheap.
            first_missing = pd.Timestamp(stamps[row - 1]) + bar
            slots = pd.date_range(first_missing, pd.Timestamp(stamps[row]) - bar, freq=bar)
            counts[row] = int(np.count_nonzero(~in_closure(slots, calendar)))
    return counts


def _open_slots_between(
    before: Int64Array, after: Int64Array, bar_ns: int, calendar: Calendar
) -> Int64Array:
    """For each pair, the bar slots (on the epoch grid) strictly between them that meet open
    time. Counted from the open spans, not by listing slots: a gap may last decades."""
    exchange = calendar.removeprefix(EXCHANGE_PREFIX)
    starts, ends = open_intervals(
        exchange, pd.Timestamp(int(before.min())), pd.Timestamp(int(after.max()))
    )
    counts = np.zeros(len(before), dtype=np.int64)
    if len(starts) == 0:
        return counts
    # A slot s meets [start, end) when start - bar < s < end: merge those open ranges.
    low, high = starts - bar_ns, ends
    reach = np.maximum.accumulate(high)
    new_range = np.concatenate([[True], low[1:] >= reach[:-1]])
    low = low[new_range]
    high = np.maximum.reduceat(high, np.flatnonzero(new_range))
    for row, (previous, current) in enumerate(zip(before, after, strict=True)):
        first = int(np.searchsorted(high, previous, side="right"))
        last = int(np.searchsorted(low, current, side="left"))
        if first < last:
            lo = np.maximum(low[first:last], previous)
            hi = np.minimum(high[first:last], current)
            # Grid points k * bar strictly inside (lo, hi).
            inside = -(-hi // bar_ns) - lo // bar_ns - 1
            counts[row] = int(np.maximum(inside, 0).sum())
    return counts


def open_intervals(
    exchange: str, first: pd.Timestamp, last: pd.Timestamp
) -> tuple[Int64Array, Int64Array]:
    """Return the exchange's open time around [first, last]: sorted, disjoint [start, end) spans
    in UTC nanoseconds (sessions, split at their intraday break)."""
    return _open_intervals(exchange, (first - _MARGIN).date(), (last + _MARGIN).date())


@lru_cache(maxsize=32)
def _open_intervals(exchange: str, start: object, end: object) -> tuple[Int64Array, Int64Array]:
    import pandas_market_calendars as mcal  # type: ignore[import-untyped]  # slow: only here

    schedule = mcal.get_calendar(exchange).schedule(start_date=start, end_date=end)

    def column(name: str) -> Int64Array:
        if name not in schedule:
            return np.full(len(schedule), _NAT, dtype=np.int64)
        return _nanoseconds(schedule[name])

    opens, closes = column("market_open"), column("market_close")
    break_starts, break_ends = column("break_start"), column("break_end")
    has_break = (
        (break_starts != _NAT)
        & (break_ends != _NAT)
        & (opens < break_starts)
        & (break_starts < break_ends)
        & (break_ends < closes)
    )
    starts = np.concatenate([opens, break_ends[has_break]])
    ends = np.concatenate([np.where(has_break, break_starts, closes), closes[has_break]])
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    keep = ends > starts
    return starts[keep], ends[keep]


def _meets_open_time(stamps: Int64Array, calendar: Calendar, span_ns: int) -> BoolArray:
    """Whether each [stamp, stamp + span) (the instant when span is 0) meets open time."""
    if len(stamps) == 0:
        return np.zeros(0, dtype=bool)
    exchange = calendar.removeprefix(EXCHANGE_PREFIX)
    starts, ends = open_intervals(
        exchange, pd.Timestamp(int(stamps.min())), pd.Timestamp(int(stamps.max()))
    )
    if len(starts) == 0:
        return np.zeros(len(stamps), dtype=bool)
    following = np.searchsorted(ends, stamps, side="right")  # first span ending after the stamp
    candidate = starts[np.minimum(following, len(starts) - 1)]
    return (following < len(starts)) & (candidate < stamps + max(span_ns, 1))


def _span_ns(span: pd.Timedelta | None) -> int:
    return 0 if span is None else int(span.value)


def _nanoseconds(values: pd.Series | pd.DatetimeIndex) -> Int64Array:
    """UTC wall-clock nanoseconds (NaT as the int64 minimum)."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
