"""The bars an environment trades over, on one clock, with the market state the costs need.

Instruments on different calendars share a common clock, the union of their bar times. When an
instrument's market is closed at a bar (FX at the weekend, while crypto trades on), its last close
is carried forward as its mark, it cannot trade, and nothing about it changes: a closed market
neither earns nor costs anything, and the portfolio is still marked every bar.

Everything derived here (volatility, liquidity, the correlation-breakdown signal, the capacity of
the volatility regime) uses trailing windows over bars up to and including t, computed on the
full, contiguous history before a window is cut out, so a window's first bars already have
their history and no window's gap is ever taken for one bar. Nothing is filled backwards: a bar
without enough history has no volatility (NaN), and an environment refuses to trade it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.artifacts import FeatureSet, Window
from ijules.config import Config
from ijules.data.features import REGIME_PREFIX, SPLIT
from ijules.data.schema import SYMBOL, TIMESTAMP
from ijules.errors import IngestError
from ijules.execution.costs import CostModel, fallback_depth_usd, infer_tick_size
from ijules.market.correlation import correlation_breakdown, correlation_gap
from ijules.market.regimes import HIGH, REGIME_COLUMNS, RegimeSettings, detect_regimes_with_fits

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Z_99 = 2.3263478740408408  # one-sided 99% normal quantile


@dataclass(frozen=True)
class MarketData:
    """Aligned arrays: T bars x N instruments, and T x F features."""

    instruments: tuple[str, ...]
    timestamps: npt.NDArray[np.datetime64]
    open: FloatArray
    close: FloatArray
    tradable: BoolArray
    stale: BoolArray
    sigma: FloatArray
    liquidity: FloatArray
    daily_var: FloatArray
    capacity: FloatArray
    correlation: FloatArray
    volatility_ratio: FloatArray
    crisis: BoolArray
    recovery: BoolArray
    high_volatility: BoolArray
    correlation_break: BoolArray
    day: FloatArray
    month: FloatArray
    tick: FloatArray
    features: FloatArray
    feature_names: tuple[str, ...]
    bars_per_year: float

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def n_instruments(self) -> int:
        """How many instruments trade."""
        return len(self.instruments)

    def rows(self, selected: slice | npt.NDArray[np.bool_]) -> MarketData:
        """A window of bars (the derived arrays keep the history they were computed with)."""
        return replace(
            self,
            timestamps=self.timestamps[selected],
            open=self.open[selected],
            close=self.close[selected],
            tradable=self.tradable[selected],
            stale=self.stale[selected],
            sigma=self.sigma[selected],
            liquidity=self.liquidity[selected],
            daily_var=self.daily_var[selected],
            capacity=self.capacity[selected],
            correlation=self.correlation[selected],
            volatility_ratio=self.volatility_ratio[selected],
            crisis=self.crisis[selected],
            recovery=self.recovery[selected],
            high_volatility=self.high_volatility[selected],
            correlation_break=self.correlation_break[selected],
            day=self.day[selected],
            month=self.month[selected],
            features=self.features[selected],
        )


def build_market(
    close: pd.DataFrame,
    volume: pd.DataFrame,
    features: pd.DataFrame,
    *,
    config: Config,
    bars_per_year: float,
    regimes: Mapping[str, pd.DataFrame] | None = None,
    open_: pd.DataFrame | None = None,
) -> MarketData:
    """Assemble market data from aligned frames indexed by timestamp (columns: instruments).

    ``close`` may hold NaN where an instrument has no bar; those bars are marked untradable and
    the last close is carried forward. ``volume`` may be all NaN (no volume data): liquidity then
    comes from ``microstructure.liquidity_model`` (see :func:`fallback_depth_usd`). ``regimes`` (per
    instrument, from :func:`ijules.market.regimes.detect_regimes`, on the same index) are
    computed here when not given. ``open_`` holds each bar's opening price (where a trade
    decided at the previous close can fill); without it (a close-only series) a bar opens at
    the previous close.
    """
    if close.empty:
        raise IngestError("no bars to trade")
    tradable = close.notna().to_numpy()
    marks = close.ffill()
    if marks.iloc[0].isna().any():
        missing = list(marks.columns[marks.iloc[0].isna()])
        raise IngestError(f"instruments {missing} have no price at the first bar of the clock")
    costs = CostModel.from_config(config.microstructure)
    window = config.features.volatility_window
    log_returns = marks.apply(np.log).diff()
    sigma = log_returns.rolling(window, min_periods=window).std()
    # Volume in the price's units: a contract of a future is its multiplier's worth of units.
    multipliers = config.microstructure.liquidity_model.contract_multiplier
    raw_volume = volume.reindex_like(marks) * pd.Series(
        [multipliers.get(str(name), 1.0) for name in marks.columns], index=marks.columns
    )
    average = raw_volume.where(tradable).rolling(costs.liquidity_window_bars, min_periods=1).mean()
    per_day = bars_per_day(marks.index.to_numpy(dtype="datetime64[ns]"))
    depth = config.microstructure.liquidity_model
    book_units = pd.DataFrame(
        {
            name: fallback_depth_usd(depth, str(name), per_day, costs.liquidity_factor)
            / marks[name]
            for name in marks.columns
        },
        index=marks.index,
    )
    liquidity = (average * costs.liquidity_factor).where(average > 0, book_units).ffill()
    liquidity = liquidity.fillna(book_units)
    stale = (raw_volume.fillna(1.0) <= 0.0).to_numpy() & tradable
    if regimes is None:
        quick = config.regimes.model_copy(update={"markov_probabilities": False})
        settings = RegimeSettings(config.microstructure.regime_detection, quick, bars_per_year)
        regimes = {}
        for name in marks.columns:
            regimes[str(name)], fits = detect_regimes_with_fits(marks[name], settings)
            if fits.garch.failed:
                log.warning(
                    "%s: %d of %d GARCH refits failed; their previous parameters were kept",
                    name,
                    fits.garch.failed,
                    fits.garch.refits,
                )
    frames = [regimes[str(name)].reindex(marks.index).ffill() for name in marks.columns]
    garch = np.column_stack([f["garch_sigma"].to_numpy(dtype=np.float64) for f in frames])
    monitoring = config.risk_management.monitoring
    short, long = monitoring.correlation_short_bars, monitoring.correlation_long_bars
    correlation = correlation_gap(log_returns, short, long)
    breakdown = correlation_breakdown(
        log_returns, short, long, monitoring.correlation_breakdown_threshold
    )
    ticks = [
        costs.tick_size or infer_tick_size(close[column].dropna().to_numpy())
        for column in close.columns
    ]
    stamps = pd.DatetimeIndex(marks.index)
    days = (stamps.tz_localize(None) if stamps.tz else stamps).to_numpy(dtype="datetime64[D]")
    opens = marks.shift(1).fillna(marks) if open_ is None else open_.reindex_like(marks)
    opens = opens.where(opens.notna(), marks.shift(1)).fillna(marks)
    return MarketData(
        instruments=tuple(str(c) for c in close.columns),
        timestamps=stamps.to_numpy(dtype="datetime64[ns]"),
        open=opens.to_numpy(dtype=np.float64),
        close=marks.to_numpy(dtype=np.float64),
        tradable=tradable,
        stale=stale,
        sigma=sigma.to_numpy(dtype=np.float64),
        liquidity=liquidity.to_numpy(dtype=np.float64),
        daily_var=Z_99 * garch * np.sqrt(per_day),
        capacity=costs.capacity_fraction(garch.mean(axis=1), bars_per_year),
        correlation=correlation,
        volatility_ratio=np.max([f["volatility_ratio"].to_numpy() for f in frames], axis=0),
        crisis=np.any([f["crisis"].to_numpy(dtype=bool) for f in frames], axis=0),
        recovery=np.any([f["recovery"].to_numpy(dtype=bool) for f in frames], axis=0),
        high_volatility=np.any([f["volatility_regime"].to_numpy() == HIGH for f in frames], axis=0),
        correlation_break=breakdown,
        day=days.astype(np.int64).astype(np.float64),
        month=(stamps.year * 12 + stamps.month).to_numpy(dtype=np.float64),
        tick=np.asarray(ticks, dtype=np.float64),
        features=features.to_numpy(dtype=np.float64),
        feature_names=tuple(str(c) for c in features.columns),
        bars_per_year=bars_per_year,
    )


def bars_per_day(timestamps: npt.NDArray[np.datetime64]) -> float:
    """Average bars per calendar day that has bars (24 for hourly crypto and hourly FX alike)."""
    days = np.unique(timestamps.astype("datetime64[D]"))
    return float(len(timestamps) / max(len(days), 1))


def from_feature_table(table: pd.DataFrame, meta: FeatureSet, config: Config) -> MarketData:
    """Market data for the pipeline's instruments, over the whole feature table.

    The regime columns the features stage stored (``regime_*``) are used as they are. With
    several instruments (the table's ``symbol`` column), each instrument's bars and features go
    through :func:`align_instruments`: one clock, markets closed where an instrument has no bar,
    and the market starts once every instrument has its features.
    """
    stored = [f"{REGIME_PREFIX}{name}" for name in REGIME_COLUMNS]
    has_regimes = all(column in table for column in stored)
    if len(meta.symbols) > 1:
        return _aligned(table, meta, config, stored if has_regimes else None)
    index = pd.DatetimeIndex(table[TIMESTAMP])
    symbol = meta.symbols[0]
    close = pd.DataFrame({symbol: table["close"].to_numpy()}, index=index)
    opens = pd.DataFrame({symbol: table["open"].to_numpy()}, index=index)
    volume = pd.DataFrame({symbol: table["volume"].to_numpy()}, index=index)
    features = pd.DataFrame(table[list(meta.feature_names)].to_numpy(), index=index)
    features.columns = list(meta.feature_names)
    regimes = None
    if has_regimes:
        frame = table[stored].set_axis(list(REGIME_COLUMNS), axis=1).set_axis(index)
        regimes = {symbol: frame}
    return build_market(
        close,
        volume,
        features,
        config=config,
        bars_per_year=meta.bars_per_year,
        regimes=regimes,
        open_=opens,
    )


def load_history(
    features: Path, meta: FeatureSet, window: Window, config: Config
) -> tuple[MarketData, npt.NDArray[np.bool_]]:
    """The market over every bar of the feature table, and which bars are ``window``'s."""
    table = _read_table(features)
    market = from_feature_table(table, meta, config)
    return market, _window_bars(table, market, window)


def _aligned(
    table: pd.DataFrame, meta: FeatureSet, config: Config, stored: list[str] | None
) -> MarketData:
    """Several instruments of a feature table, each from its own rows, on one clock."""
    if SYMBOL not in table:
        raise IngestError(
            f"the feature set names {len(meta.symbols)} instruments "
            f"({', '.join(meta.symbols)}) but the table has no {SYMBOL} column"
        )
    bars, blocks, regimes = {}, {}, {}
    for symbol in meta.symbols:
        rows = table.loc[table[SYMBOL] == symbol]
        if rows.empty:
            raise IngestError(f"the feature table holds no bars of {symbol}")
        bars[symbol] = rows[[TIMESTAMP, "open", "close", "volume"]]
        blocks[symbol] = rows[[TIMESTAMP, *meta.feature_names]]
        if stored is not None:
            regimes[symbol] = (
                rows[stored]
                .set_axis(list(REGIME_COLUMNS), axis=1)
                .set_axis(pd.DatetimeIndex(rows[TIMESTAMP]))
            )
    return align_instruments(
        bars,
        blocks,
        config=config,
        bars_per_year=meta.bars_per_year,
        regimes=regimes if stored is not None else None,
    )


def load_window(features: Path, meta: FeatureSet, window: Window, config: Config) -> MarketData:
    """Read one time window (train, validation or test) of the pipeline's feature table."""
    return load_windows(features, meta, (window,), config)[0]


def load_windows(
    features: Path, meta: FeatureSet, windows: Sequence[Window], config: Config
) -> list[MarketData]:
    """Read several time windows of the feature table: one read, one history-aware market."""
    table = _read_table(features)
    market = from_feature_table(table, meta, config)
    return [market.rows(_window_bars(table, market, window)) for window in windows]


def _read_table(features: Path) -> pd.DataFrame:
    if not features.is_file():
        raise IngestError(f"features not found: {features} (run `ijules features` first)")
    return pd.read_parquet(features)


def window_labels(table: pd.DataFrame, market: MarketData) -> npt.NDArray[np.object_]:
    """The feature table's split label (train, validation, test, warmup, embargo) of each of the
    market's bars; the labels are cut on the common clock, so every instrument agrees."""
    times = table.drop_duplicates(TIMESTAMP)
    stamps = pd.DatetimeIndex(times[TIMESTAMP])
    labels = pd.Series(
        times[SPLIT].to_numpy(), index=stamps.tz_localize(None) if stamps.tz else stamps
    )
    return np.asarray(labels.reindex(pd.DatetimeIndex(market.timestamps)).to_numpy())


def _window_bars(table: pd.DataFrame, market: MarketData, window: Window) -> npt.NDArray[np.bool_]:
    """Which of the market's bars are ``window``'s."""
    selected = window_labels(table, market) == window
    if selected.sum() < 2:
        raise IngestError(f"the {window} window holds {int(selected.sum())} bar(s); need 2")
    return np.asarray(selected, dtype=bool)


def align_instruments(
    bars: Mapping[str, pd.DataFrame],
    features: Mapping[str, pd.DataFrame],
    *,
    config: Config,
    bars_per_year: float,
    regimes: Mapping[str, pd.DataFrame] | None = None,
) -> MarketData:
    """Put several instruments on one clock: the union of their bar times.

    ``bars[name]`` holds canonical bars (timestamp, close, volume, ...); ``features[name]`` the
    same instrument's features on its own bars, whose columns are prefixed with the name. Where an
    instrument has no bar, its features are carried forward like its price: they describe the
    last bar it had, never a later one. ``regimes`` (per instrument, indexed by its own bar
    times) are carried forward the same way; computed here when not given.
    """
    closes, opens, volumes, blocks = {}, {}, {}, []
    for name, frame in bars.items():
        indexed = frame.set_index(pd.DatetimeIndex(frame[TIMESTAMP]))
        closes[name] = indexed["close"]
        opens[name] = indexed["open"]
        volumes[name] = indexed["volume"]
        block = features[name].set_index(pd.DatetimeIndex(features[name][TIMESTAMP]))
        block = block.drop(columns=[TIMESTAMP]).add_prefix(f"{name}:")
        blocks.append(block)
    close = pd.DataFrame(closes).sort_index()
    volume = pd.DataFrame(volumes).reindex(close.index)
    feature_frame = pd.concat(blocks, axis=1).reindex(close.index).ffill()
    start = feature_frame.dropna().index.min()
    if start is pd.NaT or pd.isna(start):
        raise IngestError("the instruments never all have features at the same time")
    # The market state runs from the first bar where every instrument has a price; trading
    # starts once every instrument also has its features.
    priced = close.index >= close.apply(lambda c: c.first_valid_index()).max()
    market = build_market(
        close.loc[priced],
        volume.loc[priced],
        feature_frame.loc[priced],
        config=config,
        bars_per_year=bars_per_year,
        regimes=regimes,
        open_=pd.DataFrame(opens).reindex(close.index).loc[priced],
    )
    return market.rows(close.index[priced] >= start)
