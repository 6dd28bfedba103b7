"""Ingest as of an instant: no bar known only after it, no delivery dated after it, and no row
stamped after the wall clock."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ijules.artifacts import IngestReport
from ijules.config import load_as_of, parse_as_of
from ijules.data.ingest import run_ingest
from ijules.errors import ConfigError, IngestError
from tests.conftest import ES_TRADES, SAMPLES

HOUR = pd.Timedelta("1h")
HEADER = "timestamp,symbol,open,high,low,close,volume\n"


def stage(config, tmp_path: Path, as_of: datetime | None, name: str = "out"):
    output, report = tmp_path / name / "bars.parquet", tmp_path / name / "ingest.json"
    run_ingest(config, source=None, output=output, report=report, as_of=as_of)
    return pd.read_parquet(output), IngestReport.read(report)


def instant(text: str) -> datetime:
    return pd.Timestamp(text).to_pydatetime()


def sample_lines() -> list[str]:
    """The hourly BTC/USD sample's data lines (no header), as committed."""
    with gzip.open(SAMPLES / "btcusd_1h.csv.gz", "rt") as handle:
        return handle.read().splitlines()[1:]


def landing(folder: Path, days: dict[str, list[str]]) -> Path:
    """A landing folder with one delivery per date, each a CSV of the given data lines."""
    folder.mkdir(parents=True, exist_ok=True)
    for day, lines in days.items():
        (folder / f"{day}.csv").write_text(HEADER + "".join(f"{line}\n" for line in lines))
    return folder


@pytest.mark.parametrize(
    "as_of", ["2017-07-02T00:00:00Z", "2017-07-02T00:30:00Z", "2017-08-01T12:59:59Z"]
)
def test_no_bar_that_closes_after_the_as_of_is_staged(make_config, tmp_path, as_of) -> None:
    config = make_config({"data": {"end": "2017-09-01T00:00:00Z"}})
    whole, _ = stage(config, tmp_path, None, "whole")
    bars, report = stage(config, tmp_path, instant(as_of))
    cut = pd.Timestamp(as_of)
    # A bar stamped at its open is known once it has closed: stamp + 1h at or before the as-of.
    assert (bars["timestamp"] + HOUR <= cut).all()
    # ...and every bar that had closed by then is there: the history as of then, unchanged.
    known = whole.loc[whole["timestamp"] + HOUR <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(bars, known)
    assert report.as_of == cut.isoformat()
    assert report.rows_after_as_of == len(whole) - len(known) > 0


def test_a_bar_still_forming_at_the_as_of_is_left_for_a_later_run(make_config, tmp_path) -> None:
    config = make_config({"data": {"end": "2017-09-01T00:00:00Z"}})
    on_the_hour, _ = stage(config, tmp_path, instant("2017-07-01T14:00:00Z"), "closed")
    a_second_before, _ = stage(config, tmp_path, instant("2017-07-01T13:59:59Z"), "forming")
    assert on_the_hour["timestamp"].iloc[-1] == pd.Timestamp("2017-07-01T13:00:00Z")
    assert a_second_before["timestamp"].iloc[-1] == pd.Timestamp("2017-07-01T12:00:00Z")


def test_without_an_as_of_the_whole_history_is_staged(make_config, tmp_path) -> None:
    config = make_config({"data": {"end": None}})
    bars, report = stage(config, tmp_path, None)
    assert len(bars) == report.rows_read == 20_111
    assert report.as_of is None and report.rows_after_as_of is None
    assert "as_of" not in (tmp_path / "out" / "ingest.json").read_text()


def test_time_bars_from_trades_take_only_the_trades_of_closed_bars(make_config, tmp_path) -> None:
    config = make_config({"data": ES_TRADES})
    whole, _ = stage(config, tmp_path, None, "whole")
    as_of = pd.Timestamp("2013-09-02T03:30:30Z")  # half-way through a minute that has trades
    bars, report = stage(config, tmp_path, as_of.to_pydatetime())
    # The 03:30 minute is still forming: it is not staged half-made, from its first trades.
    assert bars["timestamp"].iloc[-1] == pd.Timestamp("2013-09-02T03:29:00Z")
    assert (whole["timestamp"] == pd.Timestamp("2013-09-02T03:30:00Z")).any()
    closed = whole.loc[whole["timestamp"] + pd.Timedelta("1min") <= as_of].reset_index(drop=True)
    pd.testing.assert_frame_equal(bars, closed)
    assert report.bars is not None and report.rows_after_as_of > 0


def test_volume_bars_take_only_the_trades_at_or_before_the_as_of(make_config, tmp_path) -> None:
    config = make_config(
        {"data": {**ES_TRADES, "bar_type": "volume", "bar_threshold": 500.0, "frequency": "1min"}}
    )
    whole, _ = stage(config, tmp_path, None, "whole")
    as_of = pd.Timestamp("2013-09-02T03:30:30Z")
    bars, _ = stage(config, tmp_path, as_of.to_pydatetime())
    # A volume bar closes on a trade: those closed by the as-of are the same bars, no fewer.
    pd.testing.assert_frame_equal(
        bars, whole.loc[whole["timestamp"] <= as_of].reset_index(drop=True)
    )


def test_a_row_stamped_after_the_wall_clock_refuses_the_delivery(make_config, tmp_path) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:00:00Z")
    ahead = [f"{tomorrow},BTCUSD,1,1,1,1,1", "2057-08-01T00:00:00Z,BTCUSD,1,1,1,1,1"]
    lines = [*sample_lines()[:4], *ahead]
    source = tmp_path / "delivery.csv"
    source.write_text(HEADER + "".join(f"{line}\n" for line in lines))
    config = make_config({"data": {"source": str(source), "end": None}})
    output = tmp_path / "out" / "bars.parquet"
    # An as-of that would leave those rows out does not excuse them: the delivery is wrong.
    with pytest.raises(IngestError) as caught:
        run_ingest(
            config,
            source=None,
            output=output,
            report=tmp_path / "out" / "ingest.json",
            as_of=instant("2017-07-01T13:00:00Z"),
        )
    message = str(caught.value)
    assert message.startswith(f"{source}: 2 row(s) stamped after the time of ingest")
    assert "line 6: " in message and "line 7: 2057-08-01T00:00:00+00:00" in message
    assert "rule not_after_now" in message and "\n" not in message
    assert not output.exists()


def test_an_as_of_after_the_wall_clock_is_refused(make_config, tmp_path) -> None:
    config = make_config()
    with pytest.raises(IngestError, match=r"as-of .* is after the time of ingest .*_not_after"):
        stage(config, tmp_path, datetime.now(UTC) + timedelta(hours=1))


def test_a_landing_folder_reads_the_deliveries_dated_up_to_the_as_of(make_config, tmp_path) -> None:
    lines = sample_lines()
    days = {
        "2017-07-02": [line for line in lines if line.startswith("2017-07-01")],
        "2017-07-03": [line for line in lines if line.startswith("2017-07-02")],
        # Never read by a run before its date: were it read, its 2057 bar would refuse the run.
        "2017-07-04": [
            *(line for line in lines if line.startswith("2017-07-03")),
            "2057-08-01T00:00:00Z,BTCUSD,1,1,1,1,1",
        ],
    }
    folder = landing(tmp_path / "landing", days)
    config = make_config({"data": {"source": str(folder), "layout": "deliveries", "end": None}})

    bars, report = stage(config, tmp_path, instant("2017-07-03T01:00:00Z"))
    assert report.files == [str(folder / "2017-07-02.csv"), str(folder / "2017-07-03.csv")]
    assert report.deliveries_after_as_of == 1
    # Up to the as-of, bar by bar, and nothing of the delivery dated after it.
    assert bars["timestamp"].iloc[-1] == pd.Timestamp("2017-07-02T23:00:00Z")
    assert len(bars) == len(days["2017-07-02"]) + len(days["2017-07-03"])

    # A delivery dated D counts from D 00:00 UTC; its bars still wait until they have closed.
    early, report = stage(config, tmp_path, instant("2017-07-03T00:30:00Z"), "early")
    assert report.deliveries_after_as_of == 1
    assert early["timestamp"].iloc[-1] == pd.Timestamp("2017-07-02T23:00:00Z")
    before, report = stage(config, tmp_path, instant("2017-07-02T23:59:59Z"), "before")
    assert report.deliveries_after_as_of == 2
    assert before["timestamp"].iloc[-1] == pd.Timestamp("2017-07-01T23:00:00Z")


@pytest.mark.parametrize(("policy", "kept"), [("keep_first", 1.0), ("keep_last", 2.0)])
def test_bars_that_deliveries_restate_are_reconciled_by_the_cleaning_policy(
    make_config, tmp_path, policy: str, kept: float
) -> None:
    lines = sample_lines()[:30]  # 2017-07-01T11:00 to 2017-07-02T16:00
    first, second = lines[:20], lines[18:]
    # The second delivery restates the first's last two bars, one of them with a new volume.
    first[-1] = ",".join([*first[-1].split(",")[:-1], "1.0"])
    second[1] = ",".join([*second[1].split(",")[:-1], "2.0"])
    folder = landing(tmp_path / "landing", {"2017-07-02": first, "2017-07-03": second})
    config = make_config(
        {
            "data": {
                "source": str(folder),
                "layout": "deliveries",
                "end": None,
                "cleaning": {"drop_duplicates": policy},
            }
        }
    )
    bars, report = stage(config, tmp_path, None)
    assert bars["timestamp"].is_unique and bars["timestamp"].is_monotonic_increasing
    assert len(bars) == 30
    restated = bars.loc[bars["timestamp"] == pd.Timestamp(lines[19].split(",")[0]), "volume"]
    assert restated.tolist() == [kept]
    assert (report.cleaning.duplicates_dropped, report.cleaning.duplicates_conflicting) == (2, 1)


def test_a_landing_folder_file_not_named_after_its_date_is_refused(make_config, tmp_path) -> None:
    folder = landing(tmp_path / "landing", {"2017-07-02": sample_lines()[:3]})
    (folder / "latest.csv").write_text(HEADER)
    (folder / "README.md").write_text("not a delivery\n")  # not a bar file: ignored
    config = make_config({"data": {"source": str(folder), "layout": "deliveries", "end": None}})
    with pytest.raises(IngestError, match=r"1 file\(s\) .* not named after their .*latest\.csv"):
        stage(config, tmp_path, None)


def test_a_landing_folder_is_told_apart_by_its_layout_not_by_its_files(
    make_config, tmp_path
) -> None:
    """Dated files read as a history are read whole: only data.layout makes them deliveries."""
    lines = sample_lines()
    days = {"2017-07-02": lines[:13], "2017-07-03": lines[13:37]}
    folder = landing(tmp_path / "landing", days)
    as_of = instant("2017-07-02T12:00:00Z")  # before the second delivery's date
    history = make_config({"data": {"source": str(folder), "end": None}})
    _, report = stage(history, tmp_path, as_of, "history")
    assert len(report.files) == 2 and report.deliveries_after_as_of is None
    deliveries = make_config({"data": {"source": str(folder), "layout": "deliveries", "end": None}})
    _, report = stage(deliveries, tmp_path, as_of, "deliveries")
    assert len(report.files) == 1 and report.deliveries_after_as_of == 1


def test_several_symbols_in_a_landing_folder_need_a_symbol_column(make_config) -> None:
    columns = {"symbol": None}
    data = {"layout": "deliveries", "symbol": ["BTCUSD", "EURUSD"], "columns": columns}
    with pytest.raises(ConfigError, match="landing folder need a symbol column"):
        make_config({"data": data})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-03-01T01:00:00Z", "2026-03-01T01:00:00+00:00"),
        ("2026-03-01T01:00:00", "2026-03-01T01:00:00+00:00"),  # naive: UTC
        ("2026-03-01T03:00:00+02:00", "2026-03-01T01:00:00+00:00"),
        (datetime(2026, 3, 1, 1, tzinfo=UTC), "2026-03-01T01:00:00+00:00"),  # a YAML timestamp
    ],
)
def test_an_as_of_is_an_instant_in_utc(given: object, expected: str) -> None:
    parsed = parse_as_of(given, "test")
    assert parsed is not None and parsed.isoformat() == expected


@pytest.mark.parametrize("given", ["2026-03-01", "yesterday", "", 20260301])
def test_an_as_of_that_is_no_instant_is_refused(given: object) -> None:
    with pytest.raises(ConfigError, match=r"test: as-of .* is not an ISO 8601 instant"):
        parse_as_of(given, "test")


def test_the_as_of_file_holds_one_key_and_null_means_the_whole_history(tmp_path) -> None:
    path = tmp_path / "as_of.yaml"
    path.write_text("# comment\nas_of: null\n")
    assert load_as_of(path) is None
    path.write_text("as_of: '2026-03-01T01:00:00+00:00'\n")
    assert load_as_of(path) == datetime(2026, 3, 1, 1, tzinfo=UTC)
    path.write_text("as_of: null\nsource: x\n")
    with pytest.raises(ConfigError, match=r"as_of.yaml: expected one key, 'as_of'.*as_of, source"):
        load_as_of(path)
    with pytest.raises(ConfigError, match="parameter file not found"):
        load_as_of(tmp_path / "missing.yaml")
