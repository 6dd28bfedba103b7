"""Ingest: read bars from a CSV or Parquet file or folder into the canonical schema, in UTC.

The result lands in a staging file; ``validate`` publishes it as the last good data only once every
data-quality rule holds, so a bad delivery never replaces good bars.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from ijules.artifacts import CleaningCounts, IngestReport
from ijules.config import Config
from ijules.data.config import CleaningPolicy, DataConfig
from ijules.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, SYMBOL, TIMESTAMP
from ijules.errors import IngestError
from ijules.io import write_parquet

log = logging.getLogger(__name__)

_CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_EXAMPLES = 3


def run_ingest(config: Config, *, source: Path | None, output: Path, report: Path) -> IngestReport:
    """Read the configured source, clean it per the policy and stage it as Parquet.

    Parameters
    ----------
    config
        Run parameters; ``config.data`` describes the source.
    source
        Overrides ``config.data.source`` when given.
    output
        Staging Parquet file, written atomically.
    report
        JSON summary of rows read, dropped and written.
    """
    data = config.data
    path = Path(data.source) if source is None else source
    files = source_files(path, data.format)
    frames = [_read_file(file, data) for file in files]
    bars = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    rows_read = len(bars)

    bars, other_symbols = _select_symbol(bars, data, path)
    bars, outside = _select_window(bars, data)
    bars, counts = apply_cleaning(bars, data.cleaning, data.bar_timedelta)
    if bars.empty:
        raise IngestError(f"{path}: no bars left after selecting symbol and window")

    write_parquet(output, bars[list(BAR_COLUMNS)])
    result = IngestReport(
        source=str(path),
        files=[str(file) for file in files],
        rows_read=rows_read,
        rows_other_symbols=other_symbols,
        rows_outside_window=outside,
        rows_written=len(bars),
        first_bar=_iso(bars[TIMESTAMP].min()),
        last_bar=_iso(bars[TIMESTAMP].max()),
        cleaning=counts,
    )
    result.write(report)
    log.info("ingested %d of %d rows from %s into %s", len(bars), rows_read, path, output)
    return result


def source_files(path: Path, fmt: str) -> list[Path]:
    """List the files a source path stands for: the file itself or a folder's bar files."""
    if not path.exists():
        raise IngestError(f"source not found: {path}")
    if path.is_file():
        _format_of(path, fmt)
        return [path]
    suffixes = _CSV_SUFFIXES + _PARQUET_SUFFIXES
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if not files:
        raise IngestError(f"{path}: folder holds no CSV or Parquet files")
    return files


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if path.name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise IngestError(f"{path}: cannot tell the format from the name; set data.format")


def _read_file(path: Path, data: DataConfig) -> pd.DataFrame:
    fmt = _format_of(path, data.format)
    try:
        raw = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, dtype=str)
    except pd.errors.EmptyDataError:
        raise IngestError(f"{path}: file is empty") from None
    except (OSError, ValueError, pd.errors.ParserError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise IngestError(f"{path}: cannot read as {fmt}: {first_line}") from None
    if raw.empty:
        raise IngestError(f"{path}: file has a header but no rows")
    return _to_canonical(raw, path, data, first_line=2 if fmt == "csv" else 0)


def _to_canonical(raw: pd.DataFrame, path: Path, data: DataConfig, first_line: int) -> pd.DataFrame:
    columns = data.columns
    mapping = {canonical: getattr(columns, canonical) for canonical in type(columns).model_fields}
    wanted = {canonical: source for canonical, source in mapping.items() if source is not None}
    missing = [f"'{src}' (for {canon})" for canon, src in wanted.items() if src not in raw.columns]
    if missing:
        present = ", ".join(map(str, raw.columns))
        raise IngestError(f"{path}: missing column {', '.join(missing)}; found: {present}")
    bars = pd.DataFrame({canon: raw[src] for canon, src in wanted.items()})
    where = "line" if first_line else "row"

    for column in NUMERIC_COLUMNS:
        values = pd.to_numeric(bars[column], errors="coerce")
        bad = values.isna() & bars[column].notna()
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())
            examples = ", ".join(
                f"{where} {row + first_line}: {bars[column].iloc[row]!r}"
                for row in rows[:_EXAMPLES]
            )
            raise IngestError(
                f"{path}: column '{wanted[column]}' has {len(rows)} non-numeric value(s) "
                f"({examples})"
            )
        bars[column] = values.astype("float64")

    bars[TIMESTAMP] = _to_utc(bars[TIMESTAMP], path, data.timezone, where, first_line)
    if SYMBOL not in bars.columns:
        bars[SYMBOL] = data.symbol
    bars[SYMBOL] = bars[SYMBOL].astype("string").astype(object)
    return bars


def _to_utc(values: pd.Series, path: Path, timezone: str, where: str, first_line: int) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("string")
        try:
            with warnings.catch_warnings():
                # pandas 2 warns (and will raise) on mixed offsets; both lead to the UTC parse.
                warnings.filterwarnings("ignore", ".*mixed time zones", FutureWarning)
                parsed = pd.to_datetime(text, format="ISO8601")
            mixed_offsets = not pd.api.types.is_datetime64_any_dtype(parsed)
        except (ValueError, TypeError):
            mixed_offsets = True
        if mixed_offsets:
            # Several UTC offsets, or strings that are not timestamps: find the culprits.
            parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
            bad = parsed.isna() & text.notna()
            if bad.any():
                rows = np.flatnonzero(bad.to_numpy())
                examples = ", ".join(
                    f"{where} {row + first_line}: {text.iloc[row]!r}" for row in rows[:_EXAMPLES]
                )
                raise IngestError(
                    f"{path}: {len(rows)} timestamp(s) cannot be parsed ({examples})"
                ) from None
    if parsed.dt.tz is None:
        try:
            parsed = parsed.dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError) as err:
            raise IngestError(
                f"{path}: naive timestamps are ambiguous or missing in {timezone}: {err}"
            ) from None
    return cast(pd.Series, parsed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"))


def _select_symbol(bars: pd.DataFrame, data: DataConfig, path: Path) -> tuple[pd.DataFrame, int]:
    keep = bars[SYMBOL] == data.symbol
    if not keep.any():
        found = ", ".join(sorted(map(str, bars[SYMBOL].dropna().unique()))[:10])
        raise IngestError(f"{path}: no rows for symbol {data.symbol!r} (found: {found})")
    dropped = int((~keep).sum())
    return bars.loc[keep].reset_index(drop=True), dropped


def _select_window(bars: pd.DataFrame, data: DataConfig) -> tuple[pd.DataFrame, int]:
    ts = bars[TIMESTAMP]
    keep = pd.Series(True, index=bars.index)
    if data.start is not None:
        keep &= ts >= _utc(data.start)
    if data.end is not None:
        keep &= ts <= _utc(data.end)
    keep |= ts.isna()  # a missing timestamp goes on to validation, which names it
    return bars.loc[keep].reset_index(drop=True), int((~keep).sum())


def apply_cleaning(
    bars: pd.DataFrame, policy: CleaningPolicy, bar: pd.Timedelta
) -> tuple[pd.DataFrame, CleaningCounts]:
    """Sort, de-duplicate and drop off-grid bars as the policy allows, counting each repair."""
    ts = bars[TIMESTAMP]
    out_of_order = int((ts.diff() < pd.Timedelta(0)).sum())
    dropped = conflicting = off_grid_dropped = 0
    if policy.sort:
        bars = bars.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
        log.info("cleaning: sorted %d out-of-order bar(s)", out_of_order)
    if policy.drop_duplicates != "none":
        keep: Literal["first", "last"] = (
            "first" if policy.drop_duplicates == "keep_first" else "last"
        )
        duplicated = bars.duplicated(TIMESTAMP, keep=keep)
        identical = bars.duplicated(list(bars.columns), keep=keep)
        dropped = int(duplicated.sum())
        conflicting = int((duplicated & ~identical).sum())
        bars = bars.loc[~duplicated].reset_index(drop=True)
        log.info(
            "cleaning: dropped %d duplicated timestamp(s), %d of them with conflicting values "
            "(kept the %s)",
            dropped,
            conflicting,
            keep,
        )
    if policy.drop_off_grid:
        off_grid = grid_offset(bars[TIMESTAMP], bar) != pd.Timedelta(0)
        off_grid_dropped = int(off_grid.sum())
        bars = bars.loc[~off_grid].reset_index(drop=True)
        log.info("cleaning: dropped %d bar(s) off the %s grid", off_grid_dropped, bar)
    counts = CleaningCounts(
        rows_out_of_order=out_of_order,
        duplicates_dropped=dropped,
        duplicates_conflicting=conflicting,
        off_grid_dropped=off_grid_dropped,
    )
    return bars, counts


def grid_offset(timestamps: pd.Series, bar: pd.Timedelta) -> pd.Series:
    """Return how far each timestamp lies past the bar grid (zero on the grid)."""
    return cast(pd.Series, timestamps - timestamps.dt.floor(bar))


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _iso(stamp: Any) -> str | None:
    return None if pd.isna(stamp) else pd.Timestamp(stamp).isoformat()
