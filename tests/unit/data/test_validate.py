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
from tests.conftest import REPO, SAMPLES

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
        ("single_symbol", _set(9, "symbol", "ETHUSD"), 1, 9),
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
