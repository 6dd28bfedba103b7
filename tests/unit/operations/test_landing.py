"""The sample delivered a day at a time: each delivery the day before's bars, restating two."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from ijules.operations.landing import deliver, deliver_backlog, shifted_sample
from tests.conftest import SAMPLES

SHIFT = timedelta(weeks=444)


def test_a_delivery_holds_the_day_befores_bars_and_restates_the_two_before(
    tmp_path: Path,
) -> None:
    sample = shifted_sample(SAMPLES / "btcusd_1h.csv.gz", SHIFT)
    assert sample.first_bar == datetime(2026, 1, 3, 11, tzinfo=UTC)  # 2017-07-01, a Saturday
    path = deliver(tmp_path, date(2026, 4, 18), sample)
    assert path.name == "2026-04-18.csv"
    bars = pd.read_csv(path)
    assert list(bars.columns) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    assert (bars["timestamp"].iloc[0], bars["timestamp"].iloc[-1], len(bars)) == (
        "2026-04-16T22:00:00Z",
        "2026-04-17T23:00:00Z",
        26,
    )
    # The prices are the sample's, 444 weeks earlier.
    with gzip.open(SAMPLES / "btcusd_1h.csv.gz", "rt") as handle:
        original = {line.split(",", 1)[0]: line.split(",", 1)[1] for line in handle}
    row = bars.iloc[-1]
    assert original["2017-10-13T23:00:00Z"].startswith(f"BTCUSD,{row['open']}")


def test_the_backlog_is_every_delivery_up_to_the_first_day(tmp_path: Path) -> None:
    sample = shifted_sample(SAMPLES / "btcusd_1h.csv.gz", SHIFT)
    delivered = deliver_backlog(tmp_path, date(2026, 1, 10), sample)
    assert [path.name for path in delivered] == [f"2026-01-{d:02d}.csv" for d in range(4, 11)]
    first = pd.read_csv(delivered[0])
    assert first["timestamp"].iloc[0] == "2026-01-03T11:00:00Z"  # the sample's first bar
    stamps = pd.concat([pd.read_csv(path) for path in delivered])["timestamp"]
    assert stamps.drop_duplicates().is_monotonic_increasing
    assert stamps.drop_duplicates().iloc[-1] == "2026-01-09T23:00:00Z"
