"""Ingest: read bars from a CSV or Parquet file or folder into the canonical schema, in UTC.

A source holds bars (OHLCV, or only a close: open, high and low are then derived from it) or trades
(``data.kind: trades``), which become time, volume or dollar bars here (:mod:`ijules.data.bars`).
It may hold several instruments: a symbol column, or a folder with one file per symbol named after
it; the bars of each configured symbol are kept, grouped by symbol in the configured order.

The result lands in a staging file; ``validate`` publishes it as the last good data only once every
data-quality rule holds, so a bad delivery never replaces good bars.

As of an instant
----------------
A run sees the market as it was known at its as-of (``ijules ingest --as-of``; ``dvc repro`` reads
it from ``as_of.yaml``, where each DAG run writes its data-interval end), and ingest never stages a
bar known only after it. So a run for a past date, a backfill or a rerun stages what a run on that
date would have staged, byte for byte, however the source has grown since. Timestamps are UTC.

- A time bar is stamped at its open and known once it has closed: it is kept when its stamp plus
  the bar length is at or before the as-of (a bar still forming at the as-of is not). A trade is
  known at its timestamp; time bars formed from trades take only the trades of the bars closed by
  the as-of (no half-formed last bar), volume and dollar bars the trades at or before it (they
  close on a trade, so each one formed is complete).
- ``data.layout: history``: the source (a file, or a folder of files, one per symbol) holds the
  whole history; it is read whole and cut at the as-of.
- ``data.layout: deliveries``: the source is a landing folder of daily deliveries, each named after
  its date (``YYYY-MM-DD`` first). The history is every delivery dated on or before the as-of (a
  delivery dated D counts from D 00:00 UTC), read in date order; later ones are not read at all.
  A bar that several deliveries hold is reconciled by the cleaning policy, like any duplicate
  (``drop_duplicates: keep_last`` keeps the latest delivery's version, ``keep_first`` the first;
  ``none`` lets validation refuse it).
- No as-of (None; ``as_of: null`` in as_of.yaml, as committed) means the source's whole history:
  explicit, and never the wall clock.

The wall clock serves one purpose only: a row stamped after the time of ingest is a data error (a
clock set wrong, a date typed decades ahead), so the delivery is refused with an error naming the
file, the lines and the rule. An as-of after the wall clock is refused too: the history up to it
is not known yet, so a rerun would see more.
"""

from __future__ import annotations

import logging
import re
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.artifacts import BarFormation, CleaningCounts, IngestReport
from ijules.config import Config
from ijules.data.bars import PRICE, SIZE, derive_ohlc, threshold_bars, time_bars
from ijules.data.config import CleaningPolicy, DataConfig
from ijules.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, SYMBOL, TIMESTAMP
from ijules.errors import IngestError
from ijules.io import write_parquet

log = logging.getLogger(__name__)

_CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_EXAMPLES = 3
_FILE, _LINE = "_file", "_line"  # where each trade came from
# A delivery's name starts with its date: 2026-03-01.csv.gz, 2026-03-01_BTCUSD.parquet.
_DELIVERY_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?![\d])")


def run_ingest(
    config: Config,
    *,
    source: Path | None,
    output: Path,
    report: Path,
    as_of: datetime | None = None,
) -> IngestReport:
    """Read the source as of ``as_of``, form bars, clean them per the policy and stage them.

    Parameters
    ----------
    config
        Run parameters; ``config.data`` describes the source.
    source
        Overrides ``config.data.source`` when given.
    output
        Staging Parquet file, written atomically.
    report
        JSON summary of rows read, dropped and written, and of how the bars were formed.
    as_of
        The instant the run sees the market as of: no bar closed after it is staged, and no
        delivery dated after it is read. None: the source's whole history.

    Raises
    ------
    IngestError
        Among the source's other faults: a row stamped after the wall clock, or an as-of after it.
    """
    data = config.data
    # The only reading of the wall clock: what lies after it cannot have happened yet.
    now = pd.Timestamp.now(tz="UTC")
    cutoff = _as_of_instant(as_of, now)
    path = Path(data.source) if source is None else source
    if data.layout == "deliveries":
        files, later = deliveries(path, cutoff)
    else:
        files, later = source_files(path, data.format), []
    frames = [_read_file(file, data, now) for file in files]
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    rows_read = len(rows)

    rows, other_symbols = _select_symbols(rows, data, path)
    rows, outside = _select_window(rows, data)
    rows, after_as_of = _select_as_of(rows, data, cutoff)
    where = "symbol and window" if cutoff is None else f"symbol, window and as-of {_iso(cutoff)}"
    _require_each_symbol(rows, data, f"{path}: no rows left after selecting {where}")
    if data.kind == "trades":
        bars, counts, formation = _bars_from_trades(rows, data)
        short = f" (they hold less than bar_threshold {data.bar_threshold})"
        _require_each_symbol(
            bars,
            data,
            f"{path}: no bar formed from the trades{short if data.bar_threshold else ''}",
        )
    else:
        bars, counts = _clean_each_symbol(rows, data)
        formation = _complete_bars(bars, data)
        _require_each_symbol(bars, data, f"{path}: no bars left after cleaning")

    write_parquet(output, bars[list(BAR_COLUMNS)])
    result = IngestReport(
        source=str(path),
        files=[str(file) for file in files],
        rows_read=rows_read,
        rows_other_symbols=other_symbols,
        rows_outside_window=outside,
        rows_written=len(bars),
        as_of=None if cutoff is None else _iso(cutoff),
        rows_after_as_of=None if cutoff is None else after_as_of,
        deliveries_after_as_of=None
        if cutoff is None or data.layout != "deliveries"
        else len(later),
        first_bar=_iso(bars[TIMESTAMP].min()),
        last_bar=_iso(bars[TIMESTAMP].max()),
        cleaning=counts,
        bars=formation,
        rows_by_symbol={symbol: int((bars[SYMBOL] == symbol).sum()) for symbol in data.symbols},
    )
    result.write(report)
    log.info(
        "ingested %d of %d rows from %s into %s (as of %s)",
        len(bars), rows_read, path, output, "the whole history" if cutoff is None else cutoff,
    )  # fmt: skip
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


def deliveries(path: Path, as_of: pd.Timestamp | None) -> tuple[list[Path], list[Path]]:
    """Split a landing folder's deliveries into those dated on or before ``as_of`` (all of them
    when None), in date order, and the later ones.

    A delivery dated D counts from D 00:00 UTC; what it holds is still cut at the as-of bar by
    bar. Every bar file must be named after its date: a file that is not cannot be placed in
    time, so it is refused rather than read or skipped.
    """
    if not path.exists():
        raise IngestError(f"source not found: {path}")
    if not path.is_dir():
        raise IngestError(
            f"{path}: data.layout 'deliveries' reads a landing folder, and this is a file "
            "(set data.layout: history to read it)"
        )
    suffixes = _CSV_SUFFIXES + _PARQUET_SUFFIXES
    dated: list[tuple[pd.Timestamp, Path]] = []
    undated: list[str] = []
    for file in sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes)):
        match = _DELIVERY_DATE.match(file.name)
        day = pd.Timestamp(match.group(1), tz="UTC") if match and _is_date(match.group(1)) else None
        if day is None:
            undated.append(file.name)
        else:
            dated.append((day, file))
    if undated:
        raise IngestError(
            f"{path}: {len(undated)} file(s) in the landing folder are not named after their "
            f"delivery date, YYYY-MM-DD first ({', '.join(undated[:_EXAMPLES])})"
        )
    if not dated:
        raise IngestError(f"{path}: landing folder holds no CSV or Parquet deliveries")
    dated.sort(key=lambda item: (item[0], item[1].name))
    taken = [file for day, file in dated if as_of is None or day <= as_of]
    later = [file for day, file in dated if as_of is not None and day > as_of]
    if not taken:
        raise IngestError(
            f"{path}: no delivery dated on or before the as-of {_iso(as_of)} (the first is "
            f"{dated[0][1].name})"
        )
    if later:
        log.info("left %d delivery(ies) dated after the as-of %s unread", len(later), as_of)
    return taken, later


def _is_date(text: str) -> bool:
    try:
        pd.Timestamp(text)
    except ValueError:
        return False
    return True


def known_at(rows: pd.DataFrame, data: DataConfig) -> pd.Series:
    """When each row became known: a bar row once its bar closed (its stamp plus the bar
    length), a trade at its timestamp, or, when trades form time bars, once its bar closed."""
    stamps = rows[TIMESTAMP]
    if data.bar_type != "time":
        return stamps  # volume and dollar bars close on a trade, stamped at it
    bar = data.bar_timedelta
    if data.kind == "trades":
        # The bar a trade falls in, on the same epoch grid that time_bars resamples on.
        return cast(pd.Series, stamps.dt.floor(bar) + bar)
    return cast(pd.Series, stamps + bar)


def _as_of_instant(as_of: datetime | None, now: pd.Timestamp) -> pd.Timestamp | None:
    if as_of is None:
        return None
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if stamp > now:
        raise IngestError(
            f"as-of {_iso(stamp)} is after the time of ingest ({_iso(now)}): the history up to "
            "it is not known yet, and a rerun would see more (rule: as_of_not_after_now)"
        )
    return stamp


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if path.name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise IngestError(f"{path}: cannot tell the format from the name; set data.format")


def _read_file(path: Path, data: DataConfig, now: pd.Timestamp) -> pd.DataFrame:
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
    start = 2 if fmt == "csv" else 0  # the line of the first row (0: rows are counted instead)
    rows = _to_canonical(raw, path, data, first_line=start)
    _refuse_future_rows(rows, path, now, "line" if start else "row", start)
    return rows


def _refuse_future_rows(
    rows: pd.DataFrame, path: Path, now: pd.Timestamp, where: str, first_line: int
) -> None:
    """Refuse the file when a row is stamped after the wall clock ``now``: nothing can have
    happened yet that late, so the delivery is wrong (a clock, a typed date), whatever the
    as-of would have kept."""
    future = (rows[TIMESTAMP] > now).to_numpy()
    if not future.any():
        return
    found = np.flatnonzero(future)
    examples = ", ".join(
        f"{where} {row + first_line}: {rows[TIMESTAMP].iloc[row].isoformat()}"
        for row in found[:_EXAMPLES]
    )
    raise IngestError(
        f"{path}: {len(found)} row(s) stamped after the time of ingest {_iso(now)} ({examples}); "
        "rule not_after_now: nothing can be stamped later than now, so the source's clock or "
        "dates are wrong"
    )


def _to_canonical(raw: pd.DataFrame, path: Path, data: DataConfig, first_line: int) -> pd.DataFrame:
    columns = data.columns
    mapping = {canonical: getattr(columns, canonical) for canonical in type(columns).model_fields}
    wanted = {canonical: source for canonical, source in mapping.items() if source is not None}
    missing = [f"'{src}' (for {canon})" for canon, src in wanted.items() if src not in raw.columns]
    if missing:
        present = ", ".join(map(str, raw.columns))
        raise IngestError(f"{path}: missing column {', '.join(missing)}; found: {present}")
    rows = pd.DataFrame({canon: raw[src] for canon, src in wanted.items()})
    where = "line" if first_line else "row"

    numeric = NUMERIC_COLUMNS if data.kind == "bars" else (PRICE, SIZE)
    for column in numeric:
        if column not in rows:
            # Mapped to null: derived from close (open, high, low) or absent (volume, size).
            rows[column] = np.nan
            continue
        values = pd.to_numeric(rows[column], errors="coerce")
        bad = values.isna() & rows[column].notna()
        if bad.any():
            found = np.flatnonzero(bad.to_numpy())
            examples = ", ".join(
                f"{where} {row + first_line}: {rows[column].iloc[row]!r}"
                for row in found[:_EXAMPLES]
            )
            raise IngestError(
                f"{path}: column '{wanted[column]}' has {len(found)} non-numeric value(s) "
                f"({examples})"
            )
        rows[column] = values.astype("float64")

    rows[TIMESTAMP] = _to_utc(rows[TIMESTAMP], path, data.timezone, where, first_line)
    if SYMBOL not in rows.columns:
        rows[SYMBOL] = _symbol_of_file(path, data)
    rows[SYMBOL] = rows[SYMBOL].astype("string").astype(object)
    if data.kind == "trades":
        # Where each trade came from, for errors that name the line (dropped once bars exist).
        rows[_FILE] = str(path)
        rows[_LINE] = np.arange(len(rows), dtype=np.int64) + first_line
    return rows


def _symbol_of_file(path: Path, data: DataConfig) -> str:
    """The symbol of a source without a symbol column: the one configured, or with several,
    the file's name up to its first dot (``EURUSD.csv.gz`` holds EURUSD)."""
    if isinstance(data.symbol, str):
        return data.symbol
    return path.name.split(".", 1)[0]


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


def _select_symbols(rows: pd.DataFrame, data: DataConfig, path: Path) -> tuple[pd.DataFrame, int]:
    """Keep the configured symbols' rows, grouped by symbol in the configured order."""
    symbols = data.symbols
    absent = [symbol for symbol in symbols if not (rows[SYMBOL] == symbol).any()]
    if absent:
        found = ", ".join(sorted(map(str, rows[SYMBOL].dropna().unique()))[:10])
        named = ", ".join(repr(symbol) for symbol in absent)
        raise IngestError(f"{path}: no rows for symbol {named} (found: {found})")
    keep = rows[SYMBOL].isin(symbols)
    dropped = int((~keep).sum())
    if len(symbols) == 1:
        return rows.loc[keep].reset_index(drop=True), dropped
    grouped = [rows.loc[rows[SYMBOL] == symbol] for symbol in symbols]
    return pd.concat(grouped, ignore_index=True), dropped


def _require_each_symbol(rows: pd.DataFrame, data: DataConfig, problem: str) -> None:
    """Stop with ``problem`` when a configured symbol has no rows (naming it among several)."""
    empty = [symbol for symbol in data.symbols if not (rows[SYMBOL] == symbol).any()]
    if empty:
        named = "" if len(data.symbols) == 1 else f" for {', '.join(map(repr, empty))}"
        raise IngestError(problem + named)


def _select_window(bars: pd.DataFrame, data: DataConfig) -> tuple[pd.DataFrame, int]:
    ts = bars[TIMESTAMP]
    keep = pd.Series(True, index=bars.index)
    if data.start is not None:
        keep &= ts >= _utc(data.start)
    if data.end is not None:
        keep &= ts <= _utc(data.end)
    keep |= ts.isna()  # a missing timestamp goes on to validation, which names it
    return bars.loc[keep].reset_index(drop=True), int((~keep).sum())


def _select_as_of(
    rows: pd.DataFrame, data: DataConfig, as_of: pd.Timestamp | None
) -> tuple[pd.DataFrame, int]:
    """Keep the rows known at ``as_of`` (:func:`known_at`); all of them when it is None."""
    if as_of is None:
        return rows, 0
    keep = known_at(rows, data) <= as_of
    keep |= rows[TIMESTAMP].isna()  # a missing timestamp goes on to validation, which names it
    return rows.loc[keep].reset_index(drop=True), int((~keep).sum())


def _clean_each_symbol(bars: pd.DataFrame, data: DataConfig) -> tuple[pd.DataFrame, CleaningCounts]:
    """Apply the cleaning policy to each symbol's bars on their own; add up the repairs."""
    if len(data.symbols) == 1:
        return apply_cleaning(bars, data.cleaning, data.bar_timedelta)
    cleaned, totals = [], CleaningCounts()
    for symbol in data.symbols:
        part, counts = apply_cleaning(
            bars.loc[bars[SYMBOL] == symbol].reset_index(drop=True),
            data.cleaning,
            data.bar_timedelta,
        )
        cleaned.append(part)
        totals = CleaningCounts(
            **{
                name: getattr(totals, name) + getattr(counts, name)
                for name in type(totals).model_fields
            }
        )
    return pd.concat(cleaned, ignore_index=True), totals


def _complete_bars(bars: pd.DataFrame, data: DataConfig) -> BarFormation:
    """Derive open, high and low of a close-only series, each symbol from its own closes."""
    derived = 0
    if data.derives_ohlc:
        bars[["open", "high", "low"]] = derive_ohlc(bars["close"], bars[SYMBOL])
        derived = len(bars)
        log.info("derived open, high and low of %d close-only bar(s)", derived)
    return BarFormation(
        source_rows="bars",
        bar_type=data.bar_type,
        frequency=data.frequency,
        threshold=data.bar_threshold,
        derived_ohlc_bars=derived,
        volume_data=data.has_volume,
    )


def _bars_from_trades(
    trades: pd.DataFrame, data: DataConfig
) -> tuple[pd.DataFrame, CleaningCounts, BarFormation]:
    """Form each symbol's bars from its trades (time-ordered, or sorted if the policy allows)."""
    _refuse_unusable_trades(trades, data)
    pieces, out_of_order, in_open_bar = [], 0, 0
    for symbol in data.symbols:
        own = trades.loc[trades[SYMBOL] == symbol]
        backwards = (own[TIMESTAMP].diff() < pd.Timedelta(0)).to_numpy()
        if backwards.any():
            if not data.cleaning.sort:
                raise IngestError(
                    f"{_where(own, backwards)}: {int(backwards.sum())} trade(s) of {symbol} go "
                    "back in time; bars need time-ordered trades (set data.cleaning.sort: true "
                    "to sort them)"
                )
            out_of_order += int(backwards.sum())
            own = own.sort_values(TIMESTAMP, kind="stable")
        if data.bar_type == "time":
            bars = time_bars(own, data.bar_timedelta)
        else:
            assert data.bar_threshold is not None  # the configuration requires it
            bars, left = threshold_bars(own, data.bar_type, data.bar_threshold)
            in_open_bar += left
        bars.insert(1, SYMBOL, symbol)
        pieces.append(bars)
    if out_of_order:
        log.info("cleaning: sorted %d out-of-order trade(s)", out_of_order)
    bars = pd.concat(pieces, ignore_index=True)
    formation = BarFormation(
        source_rows="trades",
        bar_type=data.bar_type,
        frequency=data.frequency if data.bar_type == "time" else None,
        threshold=data.bar_threshold,
        trades_aggregated=len(trades) - in_open_bar,
        trades_in_open_bar=in_open_bar if data.bar_type != "time" else None,
        volume_data=data.has_volume,
    )
    log.info("formed %d %s bar(s) from %d trade(s)", len(bars), data.bar_type, len(trades))
    return bars, CleaningCounts(rows_out_of_order=out_of_order), formation


def _refuse_unusable_trades(trades: pd.DataFrame, data: DataConfig) -> None:
    """A trade without a time or a price, or with a missing or negative size, fits no bar."""
    checks = [
        (trades[TIMESTAMP].isna(), "have no timestamp"),
        (trades[PRICE].isna(), "have no price"),
    ]
    if data.has_volume:
        checks += [
            (trades[SIZE].isna(), "have no size"),
            (trades[SIZE] < 0, "have a negative size"),
        ]
    for bad, problem in checks:
        flags = bad.to_numpy(dtype=bool)
        if flags.any():
            raise IngestError(
                f"{_where(trades, flags)}: {int(flags.sum())} trade(s) {problem}; bars cannot "
                "be formed from them"
            )


def _where(trades: pd.DataFrame, flags: npt.NDArray[np.bool_]) -> str:
    """The file and line of the first flagged trade (with its time), and the next few lines."""
    rows = np.flatnonzero(flags)
    file = trades[_FILE].iloc[rows[0]]
    lines = [
        str(trades[_LINE].iloc[row]) for row in rows[:_EXAMPLES] if trades[_FILE].iloc[row] == file
    ]
    stamp = trades[TIMESTAMP].iloc[rows[0]]
    first = f"line {lines[0]}" + (
        "" if pd.isna(stamp) else f" at {pd.Timestamp(stamp).isoformat()}"
    )
    more = f", and line{'s' if len(lines) > 2 else ''} {', '.join(lines[1:])}" if lines[1:] else ""
    return f"{file} ({first}{more})"


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
