"""Validate: run the Great Expectations suite on staged bars; publish them only if it passes.

The suite lives in ``great_expectations/gx/expectations/ijules_bars.json``. Some rules compare a
bar with its neighbours or with the calendar, which column expectations cannot express, so this
module first adds helper columns (all derived from the bars themselves):

``_row``             position of the bar in the staged file, quoted in failure examples
``_timestamp_dtype`` dtype of the timestamp column (GX cannot type-check timezone-aware datetimes)
``_oc_max/_oc_min``  max and min of open and close
``_grid_offset_s``   seconds past the bar-frequency grid (0 on the grid)
``_missing_bars``    bars missing since the previous bar that no market closure explains
``_abs_log_return``  |log(close / previous close)|
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ijules.artifacts import RuleOutcome, ValidationReport, ValidationResult
from ijules.config import Config
from ijules.data.calendar import missing_bars
from ijules.data.ingest import grid_offset
from ijules.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, PRICE_COLUMNS, TIMESTAMP
from ijules.errors import DataValidationError, IngestError
from ijules.io import write_parquet

log = logging.getLogger(__name__)

SUITE_NAME = "ijules_bars"
DEFAULT_SUITE = Path("great_expectations/gx/expectations") / f"{SUITE_NAME}.json"
_NO_LIMIT = 2**62  # stands in for "no gap limit": gaps are then only reported as warnings


@dataclass
class _Tally:
    """A failed rule while its expectations are gathered (frozen into a RuleOutcome after)."""

    description: str
    severity: str
    unexpected_count: int = 0
    examples: list[str] = field(default_factory=list)


def run_validate(
    config: Config,
    *,
    staged: Path,
    output: Path,
    result: Path,
    suite_path: Path = DEFAULT_SUITE,
) -> ValidationReport:
    """Validate ``staged`` bars; on success publish them to ``output`` atomically.

    The result (pass or fail) is written to ``result``. On failure ``output`` is left as it was
    and :class:`DataValidationError` names each failed rule with its count and example rows.
    """
    if not staged.is_file():
        raise IngestError(f"staged bars not found: {staged} (run `ijules ingest` first)")
    bars = pd.read_parquet(staged)
    report, gx_result = validate_bars(bars, config, staged=staged, suite_path=suite_path)
    ValidationResult(summary=report, great_expectations=gx_result).write(result)
    for warning in report.warnings:
        log.warning("validation warning: %s", warning.one_line())
    if not report.success:
        causes = " | ".join(failure.one_line() for failure in report.failures)
        raise DataValidationError(
            f"validation failed for {staged} ({len(report.failures)} rule(s); "
            f"details in {result}): {causes}"
        )
    write_parquet(output, bars[list(BAR_COLUMNS)])
    log.info("validated %d bars; published %s", report.rows, output)
    return report


def validate_bars(
    bars: pd.DataFrame, config: Config, *, staged: Path, suite_path: Path = DEFAULT_SUITE
) -> tuple[ValidationReport, dict[str, Any]]:
    """Run the suite on ``bars``; return our report and GX's own result as a dict."""
    # GX reads this at import; keep its usage statistics off the network.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    import great_expectations as gx

    frame = with_helper_columns(bars, config)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for spec in _load_suite(suite_path):
        suite.add_expectation_configuration(
            ExpectationConfiguration(
                type=spec["type"],
                kwargs=spec["kwargs"],
                meta=spec.get("meta", {}),
                severity=spec.get("severity", "critical"),
            )
        )
    suite = context.suites.add(suite)
    asset = context.data_sources.add_pandas("bars").add_dataframe_asset("staged")
    batch = asset.add_batch_definition_whole_dataframe("all")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="bars", data=batch, suite=suite)
    )
    quality = config.quality
    outcome = definition.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters={
            "symbols": [config.data.symbol],
            "max_abs_log_return": quality.max_abs_log_return,
            "max_missing_bars": _NO_LIMIT
            if quality.max_missing_bars is None
            else quality.max_missing_bars,
        },
        result_format={
            "result_format": "SUMMARY",
            "partial_unexpected_count": quality.example_rows,
            "unexpected_index_column_names": ["_row"],
        },
    )
    failures: dict[str, _Tally] = {}
    warnings: dict[str, _Tally] = {}
    for item in outcome.results:
        if item.success:
            continue
        expectation = item.expectation_config
        if expectation is None:
            continue
        meta = expectation.meta or {}
        rule = str(meta.get("rule", expectation.type))
        severity = str(getattr(expectation.severity, "value", expectation.severity))
        bucket = failures if severity == "critical" else warnings
        entry = bucket.setdefault(rule, _Tally(str(meta.get("description", "")), severity))
        found = item.result or {}
        entry.unexpected_count = max(entry.unexpected_count, int(found.get("unexpected_count", 0)))
        examples = _examples(frame, found, expectation.kwargs, quality.example_rows)
        if not examples and not found.get("unexpected_count"):
            examples = [_table_level_detail(item, frame)]
        for example in examples:
            if example not in entry.examples and len(entry.examples) < quality.example_rows:
                entry.examples.append(example)
    statistics = outcome.statistics
    report = ValidationReport(
        staged=str(staged),
        rows=len(bars),
        success=not failures,
        failures=_outcomes(failures),
        warnings=_outcomes(warnings),
        evaluated_expectations=int(statistics["evaluated_expectations"]),
        successful_expectations=int(statistics["successful_expectations"]),
    )
    return report, json.loads(json.dumps(outcome.describe_dict(), default=str))


def _outcomes(tallies: dict[str, _Tally]) -> list[RuleOutcome]:
    return [
        RuleOutcome(
            rule=rule,
            description=tally.description,
            severity=tally.severity,
            unexpected_count=tally.unexpected_count,
            examples=tally.examples,
        )
        for rule, tally in tallies.items()
    ]


def with_helper_columns(bars: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Add the derived columns the suite checks; tolerate missing or broken input columns."""
    frame = bars.copy()
    frame["_row"] = np.arange(len(frame), dtype=np.int64)
    frame["_timestamp_dtype"] = str(frame[TIMESTAMP].dtype) if TIMESTAMP in frame else "missing"
    prices = {
        column: pd.to_numeric(frame[column], errors="coerce")
        if column in frame
        else pd.Series(np.nan, index=frame.index)
        for column in PRICE_COLUMNS
    }
    frame["_oc_max"] = np.fmax(prices["open"], prices["close"])
    frame["_oc_min"] = np.fmin(prices["open"], prices["close"])
    close = prices["close"].where(prices["close"] > 0)
    frame["_abs_log_return"] = np.abs(np.log(close / close.shift(1)))

    timestamps = frame.get(TIMESTAMP)
    if timestamps is not None and isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        bar = config.data.bar_timedelta
        frame["_grid_offset_s"] = grid_offset(timestamps, bar).dt.total_seconds()
        frame["_missing_bars"] = missing_bars(timestamps.ffill(), bar, config.data.calendar).astype(
            "float64"
        )
    else:
        frame["_grid_offset_s"] = np.nan
        frame["_missing_bars"] = np.nan
    return frame


def _load_suite(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataValidationError(f"expectation suite not found: {path}") from None
    except json.JSONDecodeError as err:
        raise DataValidationError(f"{path}: not valid JSON ({err})") from None
    return list(document["expectations"])


def _examples(
    frame: pd.DataFrame, found: dict[str, Any], kwargs: dict[str, Any], limit: int
) -> list[str]:
    rows = [entry["_row"] for entry in found.get("partial_unexpected_index_list") or []]
    columns = [
        kwargs[key]
        for key in ("column", "column_A", "column_B")
        if isinstance(kwargs.get(key), str)
    ]
    shown = [c for c in (*columns, *NUMERIC_COLUMNS) if c in frame.columns]
    examples = []
    for row in rows[:limit]:
        bar = frame.iloc[int(row)]
        stamp = bar.get(TIMESTAMP)
        when = "no timestamp" if pd.isna(stamp) else pd.Timestamp(stamp).isoformat()
        values = ", ".join(f"{c}={_fmt(bar[c])}" for c in dict.fromkeys(shown) if c != TIMESTAMP)
        examples.append(f"row {int(row)} ({when}): {values}")
    return examples


def _table_level_detail(item: Any, frame: pd.DataFrame) -> str:
    found = item.result or {}
    details = found.get("details") or {}
    mismatched = details.get("mismatched")
    if mismatched:
        return f"columns differ: {mismatched}"
    observed = found.get("observed_value")
    if observed is not None:
        return f"observed {observed}"
    exception = getattr(item, "exception_info", None) or {}
    message = exception.get("exception_message") if isinstance(exception, dict) else None
    return str(message or "the table as a whole")


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):.10g}"
    return str(value)
