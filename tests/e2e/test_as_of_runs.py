"""Backfilled nightly runs through `dag.test()`: each logical date publishes the history as of its
data-interval end, from a landing folder of daily deliveries, and a rerun gives the same bytes.

`airflow backfill create` only queues runs for a scheduler to start; `dag.test(logical_date=...)`
runs the same DAG run a backfill would (the run's data interval comes from the DAG's timetable),
with its real tasks: `dvc repro` in a copy of the project, Great Expectations, Evidently, and the
risk team's e-mail through a real SMTP server. A run that is not a backfill gets no tasks before
the DAG's start_date (2026), so the deliveries carry the committed sample's real BTC/USD bars
stamped a whole number of weeks later, into 2026.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ijules.artifacts import IngestReport
from ijules.config import AS_OF_FILE, load_as_of
from tests.conftest import SAMPLES, MailSink, make_project
from tests.e2e.dag_runs import load_dags, migrate_airflow_db, states

pytestmark = pytest.mark.slow

HEADER = "timestamp,symbol,open,high,low,close,volume\n"
# The sample starts 2017-07-01T11:00Z; 444 weeks later is 2026-01-03, the same weekday and hour.
SHIFT = timedelta(weeks=444)
FIRST_DAY, LAST_DAY = datetime(2026, 1, 4, tzinfo=UTC), datetime(2026, 3, 24, tzinfo=UTC)
# Two nightly runs (the DAG's cron: 01:00 UTC), three weeks apart.
EARLIER = datetime(2026, 3, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 3, 22, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def airflow_db() -> None:
    migrate_airflow_db()


def sample_bars() -> list[tuple[pd.Timestamp, str]]:
    """The committed BTC/USD hourly sample, line by line, stamped :data:`SHIFT` later."""
    with gzip.open(SAMPLES / "btcusd_1h.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()[1:]
    bars = []
    for line in lines:
        stamp, rest = line.split(",", 1)
        moved = pd.Timestamp(stamp) + SHIFT
        bars.append((moved, f"{moved.strftime('%Y-%m-%dT%H:%M:%SZ')},{rest}"))
    return bars


def deliver(folder: Path, day: datetime, bars: list[tuple[pd.Timestamp, str]]) -> None:
    """The delivery dated ``day``: the day before's bars, and the two bars before those again
    (vendors restate the end of their previous delivery)."""
    start, end = pd.Timestamp(day) - timedelta(days=1, hours=2), pd.Timestamp(day)
    lines = [line for stamp, line in bars if start <= stamp < end]
    (folder / f"{day:%Y-%m-%d}.csv").write_text(HEADER + "".join(f"{line}\n" for line in lines))


def test_backfilled_dates_publish_their_own_history_and_reruns_the_same_bytes(
    airflow_db, tmp_path, monkeypatch
) -> None:
    landing = tmp_path / "project" / "data" / "landing"
    project = make_project(
        tmp_path / "project",
        {
            "data": {
                "source": "data/landing",
                "layout": "deliveries",
                "end": None,
                "cleaning": {"drop_duplicates": "keep_last"},  # the restated bars
            }
        },
    )
    bars = sample_bars()
    landing.mkdir(parents=True)
    day = FIRST_DAY
    while day <= LAST_DAY:
        deliver(landing, day, bars)
        day += timedelta(days=1)
    # Dated after both runs: were it read, its bar decades ahead would refuse the delivery.
    (landing / "2026-04-30.csv").write_text(HEADER + "2057-08-01T00:00:00Z,BTCUSD,1,1,1,1,1\n")
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}"
    )
    nightly = load_dags(project, monkeypatch)["ijules_nightly"]
    raw = project / "data" / "raw" / "bars.parquet"
    staged = project / "data" / "staging" / "bars.parquet"

    published = {}
    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        for logical_date in (EARLIER, LATER):
            run = nightly.test(logical_date=logical_date)
            assert str(run.state) == "success", states(run)
            assert run.data_interval_end == logical_date
            published[logical_date] = (raw.read_bytes(), staged.read_bytes())
            history = pd.read_parquet(raw)
            # Up to the as-of and no further: the last bar closed at midnight before the run.
            assert (history["timestamp"] + timedelta(hours=1) <= logical_date).all()
            assert history["timestamp"].iloc[-1] == pd.Timestamp(logical_date) - timedelta(hours=2)
            assert history["timestamp"].is_unique  # the restated bars, reconciled
            report = IngestReport.read(project / "reports" / "ingest.json")
            assert report.as_of == logical_date.isoformat()
            assert report.files[-1].endswith(f"{logical_date:%Y-%m-%d}.csv")
            assert load_as_of(project / AS_OF_FILE) == logical_date

        # Two dates, two histories.
        assert published[EARLIER][0] != published[LATER][0]

        # The next delivery lands; the earlier date, run again, publishes what it did before.
        deliver(landing, LAST_DAY + timedelta(days=1), bars)
        rerun = nightly.test(logical_date=EARLIER)
        assert str(rerun.state) == "success", states(rerun)
        assert (raw.read_bytes(), staged.read_bytes()) == published[EARLIER]
        subjects = [message["Subject"] for message in sink.messages()]

    # Each run reported on its own date.
    assert sorted(subject.split(" for ")[1][:10] for subject in subjects) == [
        "2026-03-01",
        "2026-03-01",
        "2026-03-22",
    ]
