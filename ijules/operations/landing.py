"""A sample's history delivered one day at a time into a landing folder, as a vendor would.

The replay lands each day's delivery before that day's runs, so every run, whatever its as-of
(a scheduled run's data-interval end, a triggered run's own date, none at all), reads only what
had been delivered by then: a day never sees a later day's bars. The folder is read by ingest
with ``data.layout: deliveries``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ijules.errors import IngestError
from ijules.io import write_text

# A delivery dated D holds the bars of the day before (stamped D-1 00:00 to 23:00) and restates
# the last bars of the delivery before it, as vendors do (ingest keeps the latest version).
RESTATED = timedelta(hours=2)
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class ShiftedSample:
    """A CSV sample's rows with their timestamps moved by a fixed shift."""

    header: str
    rows: list[tuple[datetime, str]]  # (new timestamp, the row as written)

    @property
    def first_bar(self) -> datetime:
        """The first row's (shifted) timestamp."""
        return self.rows[0][0]


def shifted_sample(sample: Path, shift: timedelta) -> ShiftedSample:
    """Read ``sample`` (CSV, optionally gzip, timestamp in the first column, UTC) with every
    timestamp moved ``shift`` later."""
    opener = gzip.open if sample.suffix == ".gz" else open
    with opener(sample, "rt", encoding="utf-8") as handle:
        header, *lines = handle.read().splitlines()
    if not header.startswith("timestamp,"):
        raise IngestError(f"{sample}: the first column must be the timestamp, got {header!r}")
    rows = []
    for line in lines:
        stamp, rest = line.split(",", 1)
        moved = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC) + shift
        rows.append((moved, f"{moved.strftime(_STAMP_FORMAT)},{rest}"))
    if not rows:
        raise IngestError(f"{sample} holds no rows")
    return ShiftedSample(header=header, rows=rows)


def deliver(landing: Path, day: date, sample: ShiftedSample) -> Path:
    """Write the delivery dated ``day`` into ``landing`` (``YYYY-MM-DD.csv``) and return it."""
    end = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    start = end - timedelta(days=1) - RESTATED
    lines = [line for stamp, line in sample.rows if start <= stamp < end]
    path = landing / f"{day.isoformat()}.csv"
    write_text(path, sample.header + "\n" + "".join(f"{line}\n" for line in lines))
    return path


def deliver_backlog(landing: Path, before: date, sample: ShiftedSample) -> list[Path]:
    """Every delivery from the sample's first day up to and including ``before``: the landing
    folder as it stood on the morning of the replay's first day."""
    day = sample.first_bar.date() + timedelta(days=1)
    delivered = []
    while day <= before:
        delivered.append(deliver(landing, day, sample))
        day += timedelta(days=1)
    return delivered
