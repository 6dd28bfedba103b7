"""Validate: run the Great Expectations suite on staged bars; publish them only if it passes.

The suite lives in ``great_expectations/gx/expectations/ijules_bars.json``. It runs once per
symbol, on that symbol's bars, and every failure names the symbol. Some rules compare a bar with
its neighbours, the calendar or the clock, which column expectations cannot express, so this
module first adds helper columns (all derived from the bars themselves, each symbol's from its
own bars):

``_row``               position of the bar in the staged file, quoted in failure examples
``_timestamp_dtype``   dtype of the timestamp column (GX cannot type-check timezone-aware datetimes)
``_oc_max/_oc_min``    max and min of open and close
``_grid_offset_s``     seconds past the bar-frequency grid (0 on the grid)
``_missing_bars``      bars missing since the previous bar that no market closure explains
``_outside_session``   1 where the bar lies outside every session of the symbol's exchange
``_after_as_of_s``     seconds the bar ends after the reference time (``as_of``: now, by default)
``_abs_log_return``    |log(close / previous close)|

An expectation whose ``meta.applies_to`` names a property the data lacks is left out: ``volume``
rules when the source has no volume, ``time_bars`` rules (grid, gaps) for volume and dollar bars,
which close on a size rather than a clock.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.artifacts import RuleOutcome, ValidationReport, ValidationResult
from ijules.config import Config
from ijules.data.calendar import missing_bars, outside_sessions
from ijules.data.ingest import grid_offset
from ijules.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, PRICE_COLUMNS, SYMBOL, TIMESTAMP
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
    as_of: pd.Timestamp | None = None,
) -> ValidationReport:
    """Validate ``staged`` bars; on success publish them to ``output`` atomically.

    ``as_of`` is the reference time no bar may end after (default: now). The result (pass or
    fail) is written to ``result``. On failure ``output`` is left as it was and
    :class:`DataValidationError` names each failed rule with its count and example rows.
    """
    if not staged.is_file():
        raise IngestError(f"staged bars not found: {staged} (run `ijules ingest` first)")
    reference = pd.Timestamp.now(tz="UTC") if as_of is None else as_of
    bars = pd.read_parquet(staged)
    report, gx_result = validate_bars(
        bars, config, staged=staged, suite_path=suite_path, as_of=reference
    )
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
    bars: pd.DataFrame,
    config: Config,
    *,
    staged: Path,
    suite_path: Path = DEFAULT_SUITE,
    as_of: pd.Timestamp | None = None,
) -> tuple[ValidationReport, dict[str, Any]]:
    """Run the suite on each symbol's ``bars``; return our report and GX's own result as a dict.

    ``as_of`` is the reference time no bar may end after (default: now).
    """
    # GX reads this at import; keep its usage statistics off the network.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    import great_expectations as gx

    reference = _as_utc(pd.Timestamp.now(tz="UTC") if as_of is None else as_of)
    frame = with_helper_columns(bars, config, as_of=reference)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for spec in _applicable(_load_suite(suite_path), config):
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
    failures: dict[str, _Tally] = {}
    warnings: dict[str, _Tally] = {}
    described: dict[str, Any] = {}
    evaluated = successful = 0
    for symbol, part in _by_symbol(frame):
        outcome = definition.run(
            batch_parameters={"dataframe": part},
            expectation_parameters={
                "symbols": list(config.data.symbols),
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
        _tally(outcome, frame, symbol, reference, quality.example_rows, failures, warnings)
        statistics = outcome.statistics
        evaluated += int(statistics["evaluated_expectations"])
        successful += int(statistics["successful_expectations"])
        described[str(symbol)] = json.loads(json.dumps(outcome.describe_dict(), default=str))
    report = ValidationReport(
        staged=str(staged),
        rows=len(bars),
        success=not failures,
        failures=_outcomes(failures),
        warnings=_outcomes(warnings),
        evaluated_expectations=evaluated,
        successful_expectations=successful,
    )
    if len(described) == 1:
        [only] = described.values()
        return report, only
    return report, {"success": report.success, "by_symbol": described}


def _by_symbol(frame: pd.DataFrame) -> list[tuple[str | None, pd.DataFrame]]:
    """Each symbol's rows, in order of first appearance (see :func:`_positions_by_symbol`)."""
    return [(symbol, frame.iloc[rows]) for symbol, rows in _positions_by_symbol(frame).items()]


def _tally(
    outcome: Any,
    frame: pd.DataFrame,
    symbol: str | None,
    as_of: pd.Timestamp,
    limit: int,
    failures: dict[str, _Tally],
    warnings: dict[str, _Tally],
) -> None:
    """Add one symbol's failed expectations to the failures and warnings, rule by rule."""
    counts: dict[tuple[str, str], int] = {}
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
        description = str(meta.get("description", "")).replace("{as_of}", as_of.isoformat())
        entry = bucket.setdefault(rule, _Tally(description, severity))
        found = item.result or {}
        # A rule's expectations (one per column) count its worst column; symbols add up.
        key = (severity, rule)
        count = int(found.get("unexpected_count", 0))
        if count > counts.get(key, 0):
            entry.unexpected_count += count - counts.get(key, 0)
            counts[key] = count
        examples = _examples(frame, found, expectation.kwargs, limit)
        if not examples and not found.get("unexpected_count"):
            detail = _table_level_detail(item, frame)
            examples = [detail if symbol is None else f"{symbol}: {detail}"]
        for example in examples:
            if example not in entry.examples and len(entry.examples) < limit:
                entry.examples.append(example)


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


def with_helper_columns(
    bars: pd.DataFrame, config: Config, *, as_of: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Add the derived columns the suite checks, each symbol's from its own bars; tolerate
    missing or broken input columns. ``as_of`` defaults to now."""
    data = config.data
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
    groups = _positions_by_symbol(frame)
    close = prices["close"].where(prices["close"] > 0)
    previous = np.full(len(frame), np.nan)
    for positions in groups.values():
        previous[positions] = close.iloc[positions].shift(1).to_numpy()
    frame["_abs_log_return"] = np.abs(np.log(close / previous))

    timestamps = frame.get(TIMESTAMP)
    for column in ("_grid_offset_s", "_missing_bars", "_outside_session", "_after_as_of_s"):
        frame[column] = np.nan
    if timestamps is None or not isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        return frame
    bar = data.bar_timedelta
    time_bars = data.bar_type == "time"
    span = bar if time_bars else None  # volume and dollar bars are stamped at an instant
    missing = np.zeros(len(frame))
    outside = np.zeros(len(frame))
    for symbol, positions in groups.items():
        calendar = data.calendar_of(symbol) if symbol in data.symbols else "continuous"
        own = timestamps.iloc[positions]
        outside[positions] = outside_sessions(own, calendar, span)
        if time_bars:
            missing[positions] = missing_bars(own.ffill(), bar, calendar)
    frame["_outside_session"] = outside
    if time_bars:
        frame["_grid_offset_s"] = grid_offset(timestamps, bar).dt.total_seconds()
        frame["_missing_bars"] = missing
    reference = _as_utc(pd.Timestamp.now(tz="UTC") if as_of is None else as_of)
    ends = timestamps + bar if time_bars else timestamps
    frame["_after_as_of_s"] = (ends - reference).dt.total_seconds()
    return frame


def _positions_by_symbol(frame: pd.DataFrame) -> dict[str | None, npt.NDArray[np.intp]]:
    """Each symbol's row positions (a missing symbol is a symbol of its own: None)."""
    if SYMBOL not in frame:
        return {None: np.arange(len(frame))}
    keys = frame[SYMBOL].to_numpy(dtype=object)
    missing = pd.isna(keys)
    groups: dict[str | None, npt.NDArray[np.intp]] = {}
    for key in pd.unique(keys[~missing]):
        groups[str(key)] = np.flatnonzero(keys == key)
    if missing.any():
        groups[None] = np.flatnonzero(missing)
    return groups


def _applicable(specs: list[dict[str, Any]], config: Config) -> list[dict[str, Any]]:
    """The expectations that apply to this data (see the module docstring)."""
    present = {"volume": config.data.has_volume, "time_bars": config.data.bar_type == "time"}
    kept = []
    for spec in specs:
        needs = spec.get("meta", {}).get("applies_to")
        if needs is not None and needs not in present:
            raise DataValidationError(
                f"expectation {spec['type']} applies to unknown data property {needs!r} "
                f"(known: {', '.join(present)})"
            )
        if needs is None or present[needs]:
            kept.append(spec)
        else:
            log.info("validation: rule %s does not apply (%s)", spec["meta"]["rule"], needs)
    return kept


def _as_utc(stamp: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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
        symbol = bar.get(SYMBOL)
        who = "no symbol" if symbol is None or pd.isna(symbol) else str(symbol)
        values = ", ".join(f"{c}={_fmt(bar[c])}" for c in dict.fromkeys(shown) if c != TIMESTAMP)
        examples.append(f"row {int(row)} ({who}, {when}): {values}")
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
