from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ijules.artifacts import CleaningCounts, IngestReport
from ijules.data.ingest import run_ingest
from ijules.errors import IngestError
from tests.conftest import SAMPLES

CANONICAL = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]


def ingest(config, tmp_path: Path, source: Path | None = None):
    output, report = tmp_path / "out" / "bars.parquet", tmp_path / "out" / "ingest.json"
    result = run_ingest(config, source=source, output=output, report=report)
    return result, pd.read_parquet(output), IngestReport.read(report)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_sample_lands_in_canonical_schema_in_utc(make_config, tmp_path) -> None:
    config = make_config({"data": {"source": str(SAMPLES / "btcusd_1h.csv.gz")}})
    result, bars, report = ingest(config, tmp_path)
    assert list(bars.columns) == CANONICAL
    assert str(bars["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert bars[["open", "high", "low", "close", "volume"]].dtypes.eq("float64").all()
    assert result.rows_written == report.rows_written == 20_111
    assert bars["timestamp"].iloc[0] == pd.Timestamp("2017-07-01T11:00:00Z")


def test_column_mapping_and_missing_symbol_column(make_config, tmp_path) -> None:
    source = write_csv(
        tmp_path / "vendor.csv",
        "Date,O,H,L,C,Vol\n2024-01-02T10:00:00Z,1.0,2.0,0.5,1.5,10\n2024-01-02T11:00:00Z,1.5,2.5,1.0,2.0,11\n",
    )
    columns = {
        "timestamp": "Date",
        "symbol": None,
        "open": "O",
        "high": "H",
        "low": "L",
        "close": "C",
        "volume": "Vol",
    }
    config = make_config({"data": {"source": str(source), "symbol": "XYZ", "columns": columns}})
    _, bars, _ = ingest(config, tmp_path)
    assert bars["symbol"].tolist() == ["XYZ", "XYZ"]
    assert bars["close"].tolist() == [1.5, 2.0]


def test_naive_timestamps_are_read_in_the_configured_zone_across_dst(make_config, tmp_path) -> None:
    source = write_csv(
        tmp_path / "ny.csv",
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-03-08 09:30:00,SPY,1,1,1,1,1\n"  # EST, UTC-5
        "2024-03-11 09:30:00,SPY,1,1,1,1,1\n",  # EDT, UTC-4
    )
    config = make_config(
        {"data": {"source": str(source), "symbol": "SPY", "timezone": "America/New_York"}}
    )
    _, bars, _ = ingest(config, tmp_path)
    assert bars["timestamp"].tolist() == [
        pd.Timestamp("2024-03-08T14:30:00Z"),
        pd.Timestamp("2024-03-11T13:30:00Z"),
    ]


def test_offsets_in_the_source_are_converted_to_utc(make_config, tmp_path) -> None:
    source = write_csv(
        tmp_path / "offsets.csv",
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-02T10:00:00+02:00,X,1,1,1,1,1\n"
        "2024-01-02T09:00:00+00:00,X,1,1,1,1,1\n",
    )
    config = make_config({"data": {"source": str(source), "symbol": "X", "timezone": "Asia/Tokyo"}})
    _, bars, _ = ingest(config, tmp_path)
    assert bars["timestamp"].tolist() == [
        pd.Timestamp("2024-01-02T08:00:00Z"),
        pd.Timestamp("2024-01-02T09:00:00Z"),
    ]


def test_parquet_folder_is_read_in_name_order(make_config, tmp_path, btc_1h) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    btc_1h.iloc[100:200].to_parquet(folder / "b.parquet", index=False)
    btc_1h.iloc[:100].to_parquet(folder / "a.parquet", index=False)
    config = make_config({"data": {"source": str(folder)}})
    result, bars, _ = ingest(config, tmp_path)
    assert result.files == [str(folder / "a.parquet"), str(folder / "b.parquet")]
    pd.testing.assert_series_equal(bars["close"], btc_1h["close"].iloc[:200].reset_index(drop=True))


def test_other_symbols_and_bars_outside_the_window_are_dropped_and_counted(
    make_config, tmp_path, btc_1h
) -> None:
    mixed = pd.concat([btc_1h.iloc[:50], btc_1h.iloc[:50].assign(symbol="ETHUSD")])
    mixed.to_parquet(tmp_path / "mixed.parquet", index=False)
    config = make_config(
        {
            "data": {
                "source": str(tmp_path / "mixed.parquet"),
                "start": "2017-07-01T20:00:00Z",
                "end": "2017-07-02T05:00:00Z",
            }
        }
    )
    result, bars, _ = ingest(config, tmp_path)
    assert result.rows_other_symbols == 50
    assert len(bars) == 10 and result.rows_outside_window == 40
    assert bars["timestamp"].min() == pd.Timestamp("2017-07-01T20:00:00Z")


def test_cleaning_policy_counts_each_repair_on_the_dirty_sample(make_config, tmp_path) -> None:
    policy = {"drop_duplicates": "keep_first", "sort": True, "drop_off_grid": True}
    config = make_config(
        {
            "data": {
                "source": str(SAMPLES / "btcusd_15m.csv.gz"),
                "frequency": "15min",
                "cleaning": policy,
            }
        }
    )
    result, bars, report = ingest(config, tmp_path)
    assert report.cleaning == CleaningCounts(
        rows_out_of_order=1,
        duplicates_dropped=32,
        duplicates_conflicting=11,
        off_grid_dropped=3,
    )
    assert result.rows_written == 8_721 - 32 - 3
    assert bars["timestamp"].is_monotonic_increasing and bars["timestamp"].is_unique


def test_without_a_policy_the_dirty_sample_is_staged_as_delivered(make_config, tmp_path) -> None:
    config = make_config(
        {"data": {"source": str(SAMPLES / "btcusd_15m.csv.gz"), "frequency": "15min"}}
    )
    result, bars, _ = ingest(config, tmp_path)
    assert result.rows_written == 8_721
    assert not bars["timestamp"].is_unique


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"file is empty"),
        ("timestamp,symbol,open,high,low,close,volume\n", r"header but no rows"),
        (
            "timestamp,symbol,open,high,low,volume\n2024-01-01T00:00Z,X,1,1,1,1\n",
            r"missing column 'close' \(for close\)",
        ),
        (
            "timestamp,symbol,open,high,low,close,volume\n2024-01-01T00:00Z,X,1,1,1,1,1\n2024-01-01T01:00Z,X,1,1,1,abc,1\n",
            r"column 'close' has 1 non-numeric value\(s\) \(line 3: 'abc'\)",
        ),
        (
            "timestamp,symbol,open,high,low,close,volume\nyesterday,X,1,1,1,1,1\n",
            r"1 timestamp\(s\) cannot be parsed \(line 2: 'yesterday'\)",
        ),
        (
            "timestamp,symbol,open,high,low,close,volume\n2024-01-01T00:00Z,Y,1,1,1,1,1\n",
            r"no rows for symbol 'X' \(found: Y\)",
        ),
    ],
)
def test_bad_files_get_a_one_line_error_naming_file_and_cause(
    make_config, tmp_path, content, message
) -> None:
    source = write_csv(tmp_path / "bad.csv", content)
    config = make_config({"data": {"source": str(source), "symbol": "X"}})
    with pytest.raises(IngestError, match=message) as caught:
        ingest(config, tmp_path)
    assert str(source) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_wrong_path_is_named(make_config, tmp_path) -> None:
    config = make_config({"data": {"source": str(tmp_path / "nowhere.csv")}})
    with pytest.raises(IngestError, match=r"source not found: .*nowhere\.csv"):
        ingest(config, tmp_path)


def test_a_failed_ingest_leaves_the_previous_output_untouched(make_config, tmp_path) -> None:
    good = make_config({"data": {"source": str(SAMPLES / "btcusd_1h.csv.gz")}})
    ingest(good, tmp_path)
    before = (tmp_path / "out" / "bars.parquet").read_bytes()
    broken = write_csv(tmp_path / "broken.csv", "timestamp,open\n1,2\n")
    bad = make_config({"data": {"source": str(broken)}})
    with pytest.raises(IngestError):
        ingest(bad, tmp_path)
    assert (tmp_path / "out" / "bars.parquet").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bars.parquet", "ingest.json"]
