"""Configuration of the data stages: the source, its cleaning and quality rules, features, split."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import Field, field_validator, model_validator

from ijules.frozen import Frozen, PositiveFloat, PositiveInt


class ColumnMap(Frozen):
    """Canonical column name -> column name in the source file."""

    timestamp: str = "timestamp"
    symbol: str | None = "symbol"
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str = "volume"


class CleaningPolicy(Frozen):
    """What ingest may repair before validation; each repair is counted in the ingest report.

    Off by default: dirty data should fail loudly unless someone chose to clean it.
    """

    drop_duplicates: Literal["none", "keep_first", "keep_last"] = "none"
    sort: bool = False
    drop_off_grid: bool = False


class DataConfig(Frozen):
    """Where the bars come from and how to read them."""

    source: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    symbol: str
    timezone: str = "UTC"
    columns: ColumnMap = ColumnMap()
    frequency: str = "1h"
    calendar: Literal["continuous", "fx_24x5"] = "continuous"
    start: str | None = None
    end: str | None = None
    cleaning: CleaningPolicy = CleaningPolicy()

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

    @field_validator("start", "end")
    @classmethod
    def _valid_timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pd.Timestamp(value)
            except ValueError as err:
                raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from err
        return value

    @property
    def bar_timedelta(self) -> pd.Timedelta:
        """The bar frequency as a timedelta."""
        return pd.Timedelta(self.frequency)


class QualityConfig(Frozen):
    """Thresholds of the data-quality rules that need one."""

    max_abs_log_return: PositiveFloat = 0.25
    max_missing_bars: Annotated[int, Field(ge=0)] | None = None
    example_rows: PositiveInt = 5


class FeaturesConfig(Frozen):
    """Look-back windows, in bars, of the features."""

    return_windows: tuple[PositiveInt, ...] = (1, 4, 24)
    volatility_window: Annotated[int, Field(ge=2)] = 24
    rsi_window: Annotated[int, Field(ge=2)] = 14
    sma_window: Annotated[int, Field(ge=2)] = 48
    volume_window: Annotated[int, Field(ge=2)] = 48
    clip_zscore: PositiveFloat = 5.0

    @property
    def warmup_bars(self) -> int:
        """Bars needed before every feature is defined."""
        return max(
            *self.return_windows,
            self.volatility_window + 1,
            self.rsi_window + 1,
            self.sma_window,
            self.volume_window,
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
