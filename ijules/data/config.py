"""Configuration of the data stages: the source, its cleaning and quality rules, features, split."""

from __future__ import annotations

import difflib
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import Field, ValidationInfo, field_validator, model_validator

from ijules.frozen import Frozen, PositiveFloat, PositiveInt

BUILTIN_CALENDARS = ("continuous", "fx_24x5")
EXCHANGE_PREFIX = "exchange:"  # then a pandas_market_calendars name: exchange:XNYS, ...
_BAR_COLUMNS = ("open", "high", "low", "close", "volume")
_DERIVED = ("open", "high", "low")


class ColumnMap(Frozen):
    """Canonical column name -> column name in the source file (null: the source has none).

    Bars map timestamp, symbol and open to volume. A close-only series maps open, high and low to
    null: ingest derives them from close. ``volume: null`` means the source has no volume. Trades
    (``data.kind: trades``) map timestamp, symbol, price and size (null: no sizes) and no bar
    column.
    """

    timestamp: str = "timestamp"
    symbol: str | None = "symbol"
    open: str | None = "open"
    high: str | None = "high"
    low: str | None = "low"
    close: str | None = "close"
    volume: str | None = "volume"
    price: str | None = None
    size: str | None = None


class CleaningPolicy(Frozen):
    """What ingest may repair before validation; each repair is counted in the ingest report.

    Off by default: dirty data should fail loudly unless someone chose to clean it.
    """

    drop_duplicates: Literal["none", "keep_first", "keep_last"] = "none"
    sort: bool = False
    drop_off_grid: bool = False


class DataConfig(Frozen):
    """Where the bars come from and how to read them.

    ``layout`` says what the source is, so that ingest never has to guess it from the files:
    ``history``, a file or a folder of files (one per symbol) that together hold the whole
    history, or ``deliveries``, a landing folder that receives one delivery a day, each file
    named after its date (``2026-03-01.csv.gz``, ``2026-03-01_BTCUSD.parquet``). Either way the
    run's as-of decides what ingest publishes (:mod:`ijules.data.ingest`).
    """

    source: str
    layout: Literal["history", "deliveries"] = "history"
    format: Literal["auto", "csv", "parquet"] = "auto"
    symbol: str | tuple[str, ...]
    timezone: str = "UTC"
    kind: Literal["bars", "trades"] = "bars"
    columns: ColumnMap = ColumnMap()
    bar_type: Literal["time", "volume", "dollar"] = "time"
    bar_threshold: PositiveFloat | None = None
    frequency: str = "1h"
    calendar: str | dict[str, str] = "continuous"
    start: str | None = None
    end: str | None = None
    cleaning: CleaningPolicy = CleaningPolicy()

    @field_validator("columns", mode="before")
    @classmethod
    def _trades_have_no_bar_columns(cls, value: Any, info: ValidationInfo) -> Any:
        # A trade source's bar columns default to none, so that its mapping names what it has.
        if info.data.get("kind") == "trades" and isinstance(value, dict):
            return {**dict.fromkeys(_BAR_COLUMNS), **value}
        return value

    @field_validator("symbol")
    @classmethod
    def _symbols_named_once(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        names = (value,) if isinstance(value, str) else value
        if not names or any(not name for name in names):
            raise ValueError("name at least one symbol, none of them empty")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"symbols listed more than once: {', '.join(repeated)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown timezone {value!r}") from err
        return value

    @field_validator("frequency")
    @classmethod
    def _valid_frequency(cls, value: str) -> str:
        try:
            delta = pd.Timedelta(value)
        except ValueError as err:
            raise ValueError(f"not a bar frequency: {value!r} (try '15min' or '1h')") from err
        if delta <= timedelta(0):
            raise ValueError(f"bar frequency must be positive, got {value!r}")
        return value

    @field_validator("calendar")
    @classmethod
    def _known_calendars(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        for name in [value] if isinstance(value, str) else value.values():
            _check_calendar(name)
        return value

    @field_validator("start", "end")
    @classmethod
    def _valid_timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pd.Timestamp(value)
            except ValueError as err:
                raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from err
        return value

    @model_validator(mode="after")
    def _coherent_source(self) -> DataConfig:
        columns = self.columns
        if self.kind == "bars":
            if columns.close is None:
                raise ValueError("columns.close is required: bars need a close")
            if columns.price is not None or columns.size is not None:
                raise ValueError(
                    "columns.price and columns.size map trades: set data.kind: trades, or map "
                    "them to null"
                )
            derived = [name for name in _DERIVED if getattr(columns, name) is None]
            if derived and len(derived) != len(_DERIVED):
                raise ValueError(
                    "open, high and low are derived from close together: map all three to null "
                    f"or none (null now: {', '.join(derived)})"
                )
            if self.bar_type != "time":
                raise ValueError(
                    f"{self.bar_type} bars are built from trades: set data.kind: trades"
                )
        else:
            mapped = [name for name in _BAR_COLUMNS if getattr(columns, name) is not None]
            if mapped:
                raise ValueError(
                    "a trade source has no bar columns: map columns.price (and columns.size) and "
                    f"set {', '.join(f'columns.{name}' for name in mapped)} to null"
                )
            if columns.price is None:
                raise ValueError("columns.price is required: trades need a price")
            if self.cleaning.drop_duplicates != "none" or self.cleaning.drop_off_grid:
                raise ValueError(
                    "trades are neither de-duplicated (identical trades in one instant are "
                    "real) nor put on a grid: set cleaning.drop_duplicates: none and "
                    "cleaning.drop_off_grid: false (cleaning.sort orders them)"
                )
            if self.bar_type == "volume" and columns.size is None:
                raise ValueError("volume bars need trade sizes: map columns.size")
            if self.bar_type == "dollar" and columns.size is None:
                raise ValueError("dollar bars need trade sizes: map columns.size")
        if (self.bar_type == "time") != (self.bar_threshold is None):
            raise ValueError(
                "bar_threshold sets the size of volume and dollar bars: give it for those, "
                "and leave it null for time bars"
            )
        if self.layout == "deliveries" and len(self.symbols) > 1 and columns.symbol is None:
            raise ValueError(
                "deliveries are named after their date, not a symbol: several symbols in a "
                "landing folder need a symbol column (map columns.symbol)"
            )
        if isinstance(self.calendar, dict) and set(self.calendar) != set(self.symbols):
            raise ValueError(
                "a calendar per symbol must name each symbol once: symbols "
                f"{sorted(self.symbols)}, calendars for {sorted(self.calendar)}"
            )
        return self

    @property
    def symbols(self) -> tuple[str, ...]:
        """The configured symbols, one or several."""
        return (self.symbol,) if isinstance(self.symbol, str) else self.symbol

    @property
    def has_volume(self) -> bool:
        """Whether the source has volume data (bar volumes or trade sizes)."""
        column = self.columns.volume if self.kind == "bars" else self.columns.size
        return column is not None

    @property
    def derives_ohlc(self) -> bool:
        """Whether ingest derives open, high and low from close (a close-only series)."""
        return self.kind == "bars" and self.columns.open is None

    def calendar_of(self, symbol: str) -> str:
        """The calendar of ``symbol``'s market."""
        if isinstance(self.calendar, str):
            return self.calendar
        return self.calendar[symbol]

    @property
    def bar_timedelta(self) -> pd.Timedelta:
        """The bar frequency as a timedelta."""
        return pd.Timedelta(self.frequency)


def _check_calendar(name: str) -> None:
    if name in BUILTIN_CALENDARS:
        return
    if not name.startswith(EXCHANGE_PREFIX):
        raise ValueError(
            f"unknown calendar {name!r}: use {', '.join(BUILTIN_CALENDARS)} or "
            f"'{EXCHANGE_PREFIX}NAME' (an exchange in pandas_market_calendars, e.g. "
            f"{EXCHANGE_PREFIX}XNYS)"
        )
    import pandas_market_calendars as mcal  # type: ignore[import-untyped]  # slow: only here

    exchange = name.removeprefix(EXCHANGE_PREFIX)
    known = list(mcal.get_calendar_names())
    if exchange not in known:
        near = difflib.get_close_matches(exchange, known, n=4, cutoff=0.5)
        hint = f" (close: {', '.join(near)})" if near else ""
        raise ValueError(f"unknown exchange calendar {exchange!r}{hint}")


class QualityConfig(Frozen):
    """Thresholds of the data-quality rules that need one."""

    max_abs_log_return: PositiveFloat = 0.25
    max_missing_bars: Annotated[int, Field(ge=0)] | None = None
    example_rows: PositiveInt = 5


RegimeSignal = Literal["efficiency_ratio", "p_high_volatility", "volatility_ratio"]


class FeaturesConfig(Frozen):
    """Look-back windows, in bars, of the features.

    Besides the technical set: returns over several horizons normalised by the ex-ante
    volatility and MACD indicators at several time scales (Lim, Zohren & Roberts 2019), and
    regime signals the regime models compute (:mod:`ijules.market.regimes`) as features.
    """

    return_windows: tuple[PositiveInt, ...] = (1, 4, 24)
    volatility_window: Annotated[int, Field(ge=2)] = 24
    rsi_window: Annotated[int, Field(ge=2)] = 14
    sma_window: Annotated[int, Field(ge=2)] = 48
    volume_window: Annotated[int, Field(ge=2)] = 48
    normalised_return_windows: tuple[PositiveInt, ...] = ()
    ex_ante_volatility_span: Annotated[int, Field(ge=2)] = 60
    macd_pairs: tuple[tuple[PositiveInt, PositiveInt], ...] = ()
    macd_price_window: Annotated[int, Field(ge=2)] = 63
    macd_signal_window: Annotated[int, Field(ge=2)] = 252
    regime_signals: tuple[RegimeSignal, ...] = ()
    clip_zscore: PositiveFloat = 5.0

    @model_validator(mode="after")
    def _pairs_are_short_then_long(self) -> FeaturesConfig:
        for short, long in self.macd_pairs:
            if short >= long:
                raise ValueError(f"macd_pairs: ({short}, {long}) must be (short, long) spans")
        if len(set(self.regime_signals)) < len(self.regime_signals):
            raise ValueError("regime_signals: a signal is listed more than once")
        return self

    @property
    def warmup_bars(self) -> int:
        """Bars needed before every feature but the regime signals is defined (those wait
        for their models' own history: :func:`ijules.data.features.split_on_clock`)."""
        return max(
            *self.return_windows,
            self.volatility_window + 1,
            self.rsi_window + 1,
            self.sma_window,
            self.volume_window,
            *(
                max(window, self.ex_ante_volatility_span) + 1
                for window in self.normalised_return_windows
            ),
            *([self.macd_price_window + self.macd_signal_window - 1] if self.macd_pairs else []),
        )


class SplitConfig(Frozen):
    """Chronological train / validation / test windows with an embargo between them."""

    train_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.70
    validation_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.15
    embargo_bars: Annotated[int, Field(ge=0)] = 48

    @model_validator(mode="after")
    def _leaves_a_test_window(self) -> SplitConfig:
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError(
                "train_fraction + validation_fraction must be below 1 to leave a test window"
            )
        return self
