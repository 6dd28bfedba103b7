from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ijules.artifacts import CleaningCounts, IngestReport
from ijules.data.ingest import run_ingest
from ijules.errors import ConfigError, IngestError
from tests.conftest import ES_TRADES as ES
from tests.conftest import SAMPLES, SP500_CLOSE_ONLY
from tests.conftest import TRADE_COLUMNS as TRADES

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


# --- close-only series, trades, several instruments ---------------------------------------


def test_a_close_only_series_gets_open_high_low_from_the_closes(make_config, tmp_path) -> None:
    _, bars, report = ingest(make_config({"data": SP500_CLOSE_ONLY}), tmp_path)
    assert list(bars.columns) == CANONICAL and len(bars) == 8_313
    assert bars["open"].iloc[0] == bars["close"].iloc[0]
    assert (bars["open"].iloc[1:].to_numpy() == bars["close"].iloc[:-1].to_numpy()).all()
    assert (bars["high"] == bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] == bars[["open", "close"]].min(axis=1)).all()
    assert bars["volume"].isna().all()  # no volume data: NaN, never a made-up 0
    assert report.bars is not None
    assert report.bars.derived_ohlc_bars == 8_313 and report.bars.volume_data is False


def test_open_high_and_low_are_derived_together_or_not_at_all(make_config) -> None:
    columns = {**SP500_CLOSE_ONLY["columns"], "high": "H", "low": "L"}
    with pytest.raises(ConfigError, match=r"'data': .*map all three to null or none"):
        make_config({"data": {"columns": columns}})


def test_trades_become_time_bars_in_utc(make_config, tmp_path) -> None:
    result, bars, report = ingest(make_config({"data": ES}), tmp_path)
    assert list(bars.columns) == CANONICAL
    # 17:00 in Chicago (CDT) is 22:00 UTC; the Labor Day session closed at 10:30 CDT.
    assert bars["timestamp"].iloc[0] == pd.Timestamp("2013-09-01T22:00Z")
    first_session = bars.loc[bars["timestamp"] < pd.Timestamp("2013-09-02T22:00Z")]
    assert first_session["timestamp"].max() == pd.Timestamp("2013-09-02T15:29Z")
    assert result.rows_read == 66_321 and bars["volume"].sum() > 0
    assert report.bars is not None and report.bars.source_rows == "trades"
    assert report.bars.trades_aggregated == 66_321 and report.bars.frequency == "1min"
    assert report.rows_by_symbol == {"ES": len(bars)}


def test_trades_become_volume_bars_and_the_open_bar_waits(make_config, tmp_path) -> None:
    config = make_config({"data": {**ES, "bar_type": "volume", "bar_threshold": 1000.0}})
    _, bars, report = ingest(config, tmp_path)
    assert report.bars is not None and report.bars.bar_type == "volume"
    assert report.bars.threshold == 1000.0
    assert report.bars.trades_aggregated + report.bars.trades_in_open_bar == 66_321
    assert bars["volume"].sum() == pytest.approx(1000.0 * len(bars), rel=0.01)
    assert (bars["timestamp"].dt.floor("1s") != bars["timestamp"]).any()  # off any grid


def _es_lines(
    tmp_path: Path, swap: tuple[int, int] | None = None, blank: int | None = None
) -> Path:
    lines = pd.read_csv(SAMPLES / "es_trades_2013-09-01_02.csv.gz", dtype=str).iloc[:200].copy()
    if swap is not None:
        a, b = swap
        lines.iloc[[a, b]] = lines.iloc[[b, a]].to_numpy()
    if blank is not None:
        lines.loc[blank, "Price"] = None
    path = tmp_path / "es.csv"
    lines.to_csv(path, index=False)
    return path


def test_trades_out_of_order_are_refused_unless_the_policy_sorts_them(
    make_config, tmp_path
) -> None:
    source = _es_lines(tmp_path, swap=(10, 150))
    config = make_config({"data": {**ES, "source": str(source)}})
    with pytest.raises(IngestError) as caught:
        ingest(config, tmp_path)
    message = str(caught.value)
    # Line 13 now follows a later trade (line 12, moved from line 152), and so does line 152.
    assert message.startswith(
        f"{source} (line 13 at 2013-09-01T22:00:00.083000+00:00, and line 152)"
    )
    assert "2 trade(s) of ES go back in time" in message and "data.cleaning.sort: true" in message
    sorting = make_config({"data": {**ES, "source": str(source), "cleaning": {"sort": True}}})
    _, bars, report = ingest(sorting, tmp_path)
    assert report.cleaning.rows_out_of_order == 2 and bars["timestamp"].is_monotonic_increasing


def test_a_trade_without_a_price_is_named_by_its_line(make_config, tmp_path) -> None:
    source = _es_lines(tmp_path, blank=40)
    with pytest.raises(
        IngestError, match=r"es\.csv \(line 42 at 2013-.*\): 1 trade\(s\) have no price"
    ):
        ingest(make_config({"data": {**ES, "source": str(source)}}), tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**ES, "columns": {**TRADES, "close": "Price"}}, r"set columns\.close to null"),
        ({**ES, "columns": {**TRADES, "price": None}}, r"columns\.price is required"),
        ({"bar_type": "volume", "bar_threshold": 10.0}, r"volume bars are built from trades"),
        ({**ES, "bar_type": "dollar"}, r"give it for those"),
        ({**ES, "bar_threshold": 5.0}, r"leave it null for time bars"),
        (
            {**ES, "bar_type": "volume", "bar_threshold": 5.0, "columns": {**TRADES, "size": None}},
            r"volume bars need trade sizes",
        ),
        ({**ES, "cleaning": {"drop_duplicates": "keep_first"}}, r"trades are neither"),
        ({"columns": {"price": "p"}}, r"columns\.price and columns\.size map trades"),
    ],
)
def test_an_incoherent_source_description_is_refused_at_load(make_config, data, message) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        make_config({"data": data})
    assert "\n" not in str(caught.value)


def test_several_symbols_of_one_source_are_kept_grouped_in_order(
    make_config, tmp_path, btc_1h
) -> None:
    eth = btc_1h.iloc[:30].assign(symbol="ETHUSD", close=btc_1h["close"].iloc[:30] / 10)
    mixed = pd.concat([btc_1h.iloc[:50], eth, btc_1h.iloc[50:60].assign(symbol="LTCUSD")])
    mixed.sample(frac=1.0, random_state=1).sort_values("timestamp", kind="stable").to_parquet(
        tmp_path / "mixed.parquet", index=False
    )
    config = make_config(
        {"data": {"source": str(tmp_path / "mixed.parquet"), "symbol": ["ETHUSD", "BTCUSD"]}}
    )
    result, bars, report = ingest(config, tmp_path)
    assert result.rows_other_symbols == 10
    assert report.rows_by_symbol == {"ETHUSD": 30, "BTCUSD": 50}
    assert bars["symbol"].tolist() == ["ETHUSD"] * 30 + ["BTCUSD"] * 50
    for _, own in bars.groupby("symbol"):
        assert own["timestamp"].is_monotonic_increasing


def test_a_folder_of_files_named_by_symbol_needs_no_symbol_column(
    make_config, tmp_path, btc_1h
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    btc_1h.iloc[:40].drop(columns="symbol").to_csv(folder / "BTCUSD.csv.gz", index=False)
    eur = pd.read_csv(SAMPLES / "eurusd_1h.csv.gz").iloc[:20].drop(columns="symbol")
    eur.to_csv(folder / "EURUSD.csv", index=False)
    eur.to_csv(folder / "GBPUSD.csv", index=False)
    config = make_config(
        {
            "data": {
                "source": str(folder),
                "symbol": ["BTCUSD", "EURUSD"],
                "columns": {"symbol": None},
            }
        }
    )
    result, _, report = ingest(config, tmp_path)
    assert report.rows_by_symbol == {"BTCUSD": 40, "EURUSD": 20}
    assert result.rows_other_symbols == 20


def test_a_configured_symbol_without_rows_is_named(make_config, tmp_path) -> None:
    config = make_config({"data": {"symbol": ["BTCUSD", "EURUSD", "ETHUSD"]}})
    with pytest.raises(
        IngestError, match=r"no rows for symbol 'EURUSD', 'ETHUSD' \(found: BTCUSD\)"
    ):
        ingest(config, tmp_path)


def test_a_symbol_listed_twice_is_refused(make_config) -> None:
    with pytest.raises(ConfigError, match=r"data\.symbol.*listed more than once: BTCUSD"):
        make_config({"data": {"symbol": ["BTCUSD", "EURUSD", "BTCUSD"]}})


def test_a_threshold_larger_than_the_trades_hold_is_named(make_config, tmp_path) -> None:
    config = make_config({"data": {**ES, "bar_type": "volume", "bar_threshold": 1e9}})
    with pytest.raises(IngestError, match=r"no bar formed from the trades \(they hold less than"):
        ingest(config, tmp_path)


def test_a_symbol_with_no_bar_in_the_window_is_named(make_config, tmp_path, btc_1h) -> None:
    early = btc_1h.iloc[:10].assign(symbol="ETHUSD")
    pd.concat([btc_1h.iloc[:100], early]).to_parquet(tmp_path / "two.parquet", index=False)
    data = {
        "source": str(tmp_path / "two.parquet"),
        "symbol": ["BTCUSD", "ETHUSD"],
        "start": "2017-07-03T00:00:00Z",
    }
    with pytest.raises(IngestError, match=r"no rows left after selecting .* for 'ETHUSD'$"):
        ingest(make_config({"data": data}), tmp_path)
