from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ijules.artifacts import ValidationResult
from ijules.data.ingest import run_ingest
from ijules.data.validate import run_validate, validate_bars
from ijules.errors import DataValidationError
from tests.conftest import ES_TRADES, REPO, SAMPLES, SP500_CLOSE_ONLY

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _set(row: int, column: str, value: object) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame

    return mutate


def _swap_rows(a: int, b: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.iloc[[a, b]] = frame.iloc[[b, a]].to_numpy()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype(
            "datetime64[ns, UTC]"
        )
        return frame

    return mutate


def _duplicate_row(row: int) -> Mutation:
    return lambda frame: pd.concat(
        [frame.iloc[: row + 1], frame.iloc[[row]], frame.iloc[row + 1 :]], ignore_index=True
    )


def _shift_time(row: int, seconds: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, "timestamp"] += pd.Timedelta(seconds=seconds)
        return frame

    return mutate


def _drop_rows(start: int, stop: int) -> Mutation:
    return lambda frame: frame.drop(index=range(start, stop)).reset_index(drop=True)


def _drop_column(column: str) -> Mutation:
    return lambda frame: frame.drop(columns=[column])


def _as_text(column: str) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(str)
        return frame

    return mutate


@pytest.fixture
def bars(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[:300].reset_index(drop=True).copy()


def test_clean_sample_passes_every_rule(make_config, bars) -> None:
    report, gx = validate_bars(bars, make_config(), staged=Path("bars.parquet"))
    assert report.success and not report.failures and not report.warnings
    assert report.evaluated_expectations == report.successful_expectations > 20
    assert gx["success"] is True


@pytest.mark.parametrize(
    ("rule", "mutation", "count", "row"),
    [
        ("schema", _drop_column("volume"), 0, None),
        ("schema", _as_text("close"), 0, None),
        ("no_nulls", _set(7, "close", np.nan), 1, 7),
        ("configured_symbols", _set(9, "symbol", "ETHUSD"), 1, 9),
        ("positive_prices", _set(11, "low", 0.0), 1, 11),
        ("high_is_highest", _set(13, "high", 1.0), 1, 13),
        ("low_is_lowest", _set(15, "low", 10_000_000.0), 1, 15),
        ("volume_non_negative", _set(17, "volume", -1.0), 1, 17),
        ("unique_timestamps", _duplicate_row(20), 2, 20),
        ("increasing_timestamps", _swap_rows(30, 31), 1, 31),
        ("on_grid", _shift_time(40, 62), 1, 40),
        ("no_absurd_jumps", _set(50, "close", 1.0e6), 2, 50),
    ],
)
def test_each_rule_names_its_failing_rows(make_config, bars, rule, mutation, count, row) -> None:
    report, _ = validate_bars(mutation(bars), make_config(), staged=Path("bars.parquet"))
    failed = {failure.rule: failure for failure in report.failures}
    assert not report.success
    assert rule in failed, f"{rule} not among {list(failed)}"
    failure = failed[rule]
    if count:
        assert failure.unexpected_count == count
    if row is not None:
        assert failure.examples[0].startswith(f"row {row} (")
    assert rule in failure.one_line()


def test_a_long_gap_fails_only_when_a_limit_is_set(make_config, bars) -> None:
    gapped = _drop_rows(100, 105)(bars)
    lenient, _ = validate_bars(gapped, make_config(), staged=Path("b"))
    assert lenient.success
    assert [(w.rule, w.unexpected_count) for w in lenient.warnings] == [("gaps", 1)]
    assert "_missing_bars=5" in lenient.warnings[0].examples[0]
    strict, _ = validate_bars(
        gapped, make_config({"quality": {"max_missing_bars": 2}}), staged=Path("b")
    )
    assert [f.rule for f in strict.failures] == ["no_long_gaps"]


def test_fx_weekend_closures_are_not_gaps(make_config, tmp_path) -> None:
    fx = {"source": str(SAMPLES / "eurusd_1h.csv.gz"), "symbol": "EURUSD", "calendar": "fx_24x5"}
    config = make_config({"data": fx, "quality": {"max_missing_bars": 0}})
    run_ingest(config, source=None, output=tmp_path / "s.parquet", report=tmp_path / "i.json")
    report, _ = validate_bars(pd.read_parquet(tmp_path / "s.parquet"), config, staged=tmp_path)
    # 48 weekends are closures; only Christmas Day (a weekday holiday) is a gap.
    assert [(f.rule, f.unexpected_count) for f in report.failures] == [("no_long_gaps", 1)]
    assert "2017-12-25T22:00" in report.failures[0].examples[0]
    continuous = make_config({"data": {**fx, "calendar": "continuous"}})
    report, _ = validate_bars(pd.read_parquet(tmp_path / "s.parquet"), continuous, staged=tmp_path)
    assert report.warnings[0].unexpected_count == 52


def _staged(config, tmp_path: Path) -> Path:
    staged = tmp_path / "staging" / "bars.parquet"
    run_ingest(config, source=None, output=staged, report=tmp_path / "ingest.json")
    return staged


def test_dirty_sample_fails_as_delivered_and_passes_once_cleaned(make_config, tmp_path) -> None:
    data = {"source": str(SAMPLES / "btcusd_15m.csv.gz"), "frequency": "15min"}
    dirty = make_config({"data": data})
    with pytest.raises(DataValidationError) as caught:
        run_validate(
            dirty,
            staged=_staged(dirty, tmp_path),
            output=tmp_path / "raw.parquet",
            result=tmp_path / "r.json",
        )
    message = str(caught.value)
    for rule, count in (("unique_timestamps", 64), ("increasing_timestamps", 1), ("on_grid", 3)):
        assert f"{rule} [" in message and f"]: {count} row(s)" in message.split(f"{rule} [")[1]
    assert "2021-10-27T13:46:02" in message
    assert not (tmp_path / "raw.parquet").exists()

    policy = {"drop_duplicates": "keep_first", "sort": True, "drop_off_grid": True}
    clean = make_config({"data": {**data, "cleaning": policy}})
    report = run_validate(
        clean,
        staged=_staged(clean, tmp_path),
        output=tmp_path / "raw.parquet",
        result=tmp_path / "r.json",
    )
    assert report.success and report.rows == 8_686
    assert (tmp_path / "raw.parquet").exists()
    assert [w.rule for w in report.warnings] == ["gaps"]  # vendor outages stay visible


def test_failed_validation_keeps_last_good_bars_and_writes_the_result(
    make_config, tmp_path, bars
) -> None:
    config = make_config()
    staged, raw, result = (
        tmp_path / "staged.parquet",
        tmp_path / "raw.parquet",
        tmp_path / "result.json",
    )
    bars.to_parquet(staged, index=False)
    run_validate(config, staged=staged, output=raw, result=result)
    good = raw.read_bytes()
    _set(5, "high", -3.0)(bars).to_parquet(staged, index=False)
    with pytest.raises(DataValidationError, match=r"positive_prices .*row 5 \("):
        run_validate(config, staged=staged, output=raw, result=result)
    assert raw.read_bytes() == good
    kept = ValidationResult.read(result)
    assert kept.summary.success is False
    assert {f.rule for f in kept.summary.failures} >= {
        "positive_prices",
        "high_is_highest",
    }
    assert kept.great_expectations["success"] is False


def test_every_expectation_in_the_suite_is_evaluated(make_config, bars) -> None:
    """GX merges expectations it deems equivalent; the suite must not lose a rule that way."""
    suite = json.loads((REPO / "great_expectations/gx/expectations/ijules_bars.json").read_text())
    report, _ = validate_bars(bars, make_config(), staged=Path("b"))
    assert report.evaluated_expectations == len(suite["expectations"])


# --- the clock, exchange sessions, shapes of data, several symbols -------------------------


def test_a_bar_later_than_now_is_refused_naming_its_row(make_config, bars) -> None:
    ahead = _shift_time(299, 80 * 365 * 24 * 3600)(bars)  # the last bar, decades ahead
    report, _ = validate_bars(ahead, make_config(), staged=Path("b"))
    [failure] = [f for f in report.failures if f.rule == "not_in_future"]
    assert failure.unexpected_count == 1
    assert failure.examples[0].startswith("row 299 (BTCUSD, 2097-")
    assert "no bar ends after the reference time 20" in failure.one_line()


def test_the_reference_time_is_a_parameter_and_a_bar_must_have_ended_by_it(
    make_config, bars
) -> None:
    last_end = bars["timestamp"].iloc[-1] + pd.Timedelta("1h")
    report, _ = validate_bars(bars, make_config(), staged=Path("b"), as_of=last_end)
    assert report.success
    early, _ = validate_bars(
        bars, make_config(), staged=Path("b"), as_of=last_end - pd.Timedelta("1min")
    )
    [failure] = early.failures
    assert failure.rule == "not_in_future" and failure.unexpected_count == 1
    assert (last_end - pd.Timedelta("1min")).isoformat() in failure.description


def _es_quarters(make_config, tmp_path: Path, quality: dict | None = None):
    data = {**ES_TRADES, "frequency": "15min", "calendar": "exchange:CME Globex Equity"}
    config = make_config({"data": data, "quality": quality or {}})
    return config, pd.read_parquet(_staged(config, tmp_path))


def test_e_mini_quarter_hours_from_trades_pass_with_no_gap_in_session(
    make_config, tmp_path
) -> None:
    config, quarters = _es_quarters(make_config, tmp_path, {"max_missing_bars": 0})
    report, _ = validate_bars(quarters, config, staged=tmp_path)
    assert report.success and not report.warnings  # the early close and the break are closures


def test_a_bar_outside_the_exchange_sessions_is_named(make_config, tmp_path) -> None:
    config, quarters = _es_quarters(make_config, tmp_path)
    row = int(np.flatnonzero(quarters["timestamp"] == pd.Timestamp("2013-09-02T15:15Z"))[0])
    moved = _shift_time(row, 1800)(quarters)  # 15:45 UTC: after the Labor Day early close
    report, _ = validate_bars(moved, config, staged=tmp_path)
    [failure] = [f for f in report.failures if f.rule == "in_session"]
    assert failure.unexpected_count == 1
    assert failure.examples[0].startswith(f"row {row} (ES, 2013-09-02T15:45:00+00:00)")


def test_volume_and_dollar_bars_skip_the_grid_and_gap_rules(make_config, tmp_path) -> None:
    config, _ = _es_quarters(make_config, tmp_path)
    data = config.data.model_copy(update={"bar_type": "volume", "bar_threshold": 500.0})
    volume_bars = config.model_copy(update={"data": data})
    staged = _staged(volume_bars, tmp_path)
    report, _ = validate_bars(pd.read_parquet(staged), volume_bars, staged=staged)
    suite = json.loads((REPO / "great_expectations/gx/expectations/ijules_bars.json").read_text())
    time_only = [e for e in suite["expectations"] if e["meta"].get("applies_to") == "time_bars"]
    assert len(time_only) == 3
    assert report.success
    assert report.evaluated_expectations == len(suite["expectations"]) - len(time_only)


def test_a_close_only_series_without_volume_passes_the_rules_that_apply(
    make_config, tmp_path
) -> None:
    data = {**SP500_CLOSE_ONLY, "calendar": "exchange:XNYS"}
    config = make_config({"data": data, "quality": {"max_missing_bars": 0}})
    closes = pd.read_parquet(_staged(config, tmp_path))
    report, _ = validate_bars(closes, config, staged=tmp_path)
    suite = json.loads((REPO / "great_expectations/gx/expectations/ijules_bars.json").read_text())
    volume_rules = [e for e in suite["expectations"] if e["meta"].get("applies_to") == "volume"]
    assert len(volume_rules) == 2
    # 33 years of New York sessions, every one with its bar: no gap, no bar on a closed day.
    assert report.success and not report.warnings
    assert report.evaluated_expectations == len(suite["expectations"]) - len(volume_rules)
    # With volume expected, the NaN volume of a close-only series fails.
    strict = make_config({"data": {**data, "columns": {**data["columns"], "volume": "SP500"}}})
    failed, _ = validate_bars(closes, strict, staged=tmp_path)
    assert [f.rule for f in failed.failures] == ["no_nulls"]


def test_each_symbol_is_validated_on_its_own_bars_and_named(make_config, btc_1h) -> None:
    btc = btc_1h.iloc[:200]
    eth = btc_1h.iloc[:200].assign(symbol="ETHUSD")  # the same times: unique per symbol
    both = pd.concat([btc, eth], ignore_index=True)
    config = make_config({"data": {"symbol": ["BTCUSD", "ETHUSD"]}})
    report, gx = validate_bars(both, config, staged=Path("b"))
    assert report.success, [f.one_line() for f in report.failures]
    assert set(gx["by_symbol"]) == {"BTCUSD", "ETHUSD"} and gx["success"] is True
    broken = _set(250, "close", np.nan)(_duplicate_row(20)(both))
    report, _ = validate_bars(broken, config, staged=Path("b"))
    failed = {f.rule: f for f in report.failures}
    assert failed["unique_timestamps"].examples[0].startswith("row 20 (BTCUSD, ")
    assert failed["no_nulls"].examples[0].startswith("row 250 (ETHUSD, ")


def test_a_table_level_failure_names_the_symbol(make_config, btc_1h) -> None:
    both = pd.concat([btc_1h.iloc[:50], btc_1h.iloc[:50].assign(symbol="ETHUSD")])
    config = make_config({"data": {"symbol": ["BTCUSD", "ETHUSD"]}})
    report, _ = validate_bars(both.drop(columns="volume"), config, staged=Path("b"))
    [schema] = [f for f in report.failures if f.rule == "schema"]
    assert any(example.startswith("BTCUSD: ") for example in schema.examples)
    assert any(example.startswith("ETHUSD: ") for example in schema.examples)
