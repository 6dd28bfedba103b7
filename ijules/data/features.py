"""Features: returns, volatility and technical indicators from past bars only, split by time.

Every feature at bar t is a function of bars 0..t (trailing windows and recursive averages), so
perturbing a later bar never moves it. The train, validation and test windows follow each other
in time with ``split.embargo_bars`` bars between them, which (like the warm-up bars before the
first window) stay in the table in no window: the market's trailing state is computed on
contiguous bars. The market's regimes (GARCH
volatility, trend, crisis and recovery; :mod:`ijules.market.regimes`) are stored beside the
features, computed once here on the whole history without look-ahead. Normalisation statistics
are fitted on the train window only and travel with the model.

The table has one row per bar and a ``symbol`` column. With several instruments, each one's
features and regimes are computed on its own bars alone, and the windows are cut on the common
clock (the union of their bar times): a time belongs to the same window for every instrument,
and the warm-up lasts until every instrument has its features. A source without volume data has
no volume feature.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.artifacts import (
    WINDOWS,
    FeatureSet,
    FitCounts,
    NormStats,
    RegimeFitCounts,
    WindowSpan,
)
from ijules.config import Config
from ijules.data.config import FeaturesConfig, SplitConfig
from ijules.data.schema import SYMBOL, TIMESTAMP
from ijules.errors import IngestError
from ijules.io import write_parquet
from ijules.market.regimes import (
    REGIME_COLUMNS,
    RegimeFits,
    RegimeSettings,
    detect_regimes_with_fits,
)
from ijules.market.trend import macd_indicator, normalised_returns

log = logging.getLogger(__name__)

SPLIT = "split"
WARMUP, EMBARGO = "warmup", "embargo"  # rows of the table that belong to no window
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
REGIME_PREFIX = "regime_"  # market regimes travel with the features, but are not features
SIGNAL_PREFIX = "signal_"  # regime signals chosen as features (features.regime_signals)
_SECONDS_PER_YEAR = 365.25 * 24 * 3600


def run_features(config: Config, *, bars: Path, output: Path, meta: Path) -> FeatureSet:
    """Compute features from validated bars and split them by time.

    Writes ``output`` (Parquet: timestamp, symbol, the bar, features, regimes, split: train,
    validation, test, or warmup / embargo for bars of no window) and ``meta`` (JSON
    :class:`FeatureSet`), both atomically.
    """
    if not bars.is_file():
        raise IngestError(f"validated bars not found: {bars} (run `ijules validate` first)")
    frame = pd.read_parquet(bars)
    symbols = _symbols_in(frame, config, bars)
    tables, fits = [], {}
    for symbol in symbols:
        own = frame.loc[frame[SYMBOL] == symbol].reset_index(drop=True)
        table, fits[symbol] = feature_table_with_fits(own, config, bars_per_year(own[TIMESTAMP]))
        table.insert(1, SYMBOL, symbol)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    clock = table[TIMESTAMP].drop_duplicates().sort_values()
    table[SPLIT] = split_on_clock(table, warmup_bars(table, config.features), config.split)
    names = feature_columns(table)
    _require_finite(table.loc[table[SPLIT] != WARMUP], names, bars)
    norms = [
        NormStats.fit(
            table.loc[(table[SPLIT] == "train") & (table[SYMBOL] == symbol), list(names)].to_numpy(
                dtype=np.float64
            )
        )
        for symbol in symbols
    ]
    feature_set = FeatureSet(
        feature_names=names,
        norm=norms[0] if len(norms) == 1 else _joined(norms),
        windows={w: _span(table, w) for w in WINDOWS},
        bars_per_year=bars_per_year(clock.reset_index(drop=True)),
        frequency=config.data.frequency,
        calendar=config.data.calendar,
        symbol=symbols[0] if len(symbols) == 1 else symbols,
        clip_zscore=config.features.clip_zscore,
        regime_fits={symbol: fit_counts(fit) for symbol, fit in fits.items()},
    )
    # Every bar stays, warm-up and embargo included: the market's trailing state (volatility,
    # liquidity, correlations) is computed on contiguous bars, never across a gap.
    write_parquet(output, table)
    feature_set.write(meta)
    log.info(
        "features: %d bars of %s x %d features (%s); regime refits: %s",
        len(table),
        ", ".join(symbols),
        len(names),
        ", ".join(f"{w} {feature_set.windows[w].rows}" for w in WINDOWS),
        "; ".join(
            f"{symbol} GARCH {f.garch.refits} ({f.garch.failed} failed, "
            f"{f.garch.at_persistence_bound} at the persistence cap)"
            for symbol, f in feature_set.regime_fits.items()
        ),
    )
    return feature_set


def warmup_bars(table: pd.DataFrame, cfg: FeaturesConfig) -> dict[str, int]:
    """Each symbol's warm-up: ``features.warmup_bars``, or longer while a regime signal
    feature is still undefined (its model needs its own history: a GARCH window, ...)."""
    symbols = table[SYMBOL] if SYMBOL in table else pd.Series("", index=table.index)
    signals = [c for c in table.columns if c.startswith(SIGNAL_PREFIX)]
    warmups = {}
    for symbol, rows in table.groupby(symbols, sort=False).groups.items():
        defined = table.loc[rows, signals].notna().all(axis=1).to_numpy()
        leading = int(np.argmax(defined)) if defined.any() else len(defined)
        warmups[str(symbol)] = max(cfg.warmup_bars, leading)
    return warmups


def split_on_clock(
    table: pd.DataFrame, warmup: int | Mapping[str, int], split: SplitConfig
) -> npt.NDArray[np.str_]:
    """Label each row with its time's window, the windows cut on the common clock.

    The warm-up runs until every symbol has had its ``warmup`` bars (one count for all, or one
    per symbol); the times after it are split train / embargo / validation / embargo / test
    (:func:`assign_windows`).
    """
    stamps = table[TIMESTAMP].to_numpy(dtype="datetime64[ns]")
    clock = np.unique(stamps)
    symbols = table[SYMBOL].to_numpy() if SYMBOL in table else np.full(len(table), "")
    ready = []
    for symbol in pd.unique(symbols):
        own = np.sort(stamps[symbols == symbol])
        bars = warmup if isinstance(warmup, int) else warmup[str(symbol)]
        ready.append(own[bars] if bars < len(own) else clock[-1] + np.timedelta64(1, "ns"))
    first = int(np.searchsorted(clock, max(ready), side="left"))
    labels = np.full(len(clock), WARMUP, dtype=object)
    labels[first:] = assign_windows(len(clock) - first, split)
    return labels[np.searchsorted(clock, stamps)].astype(str)


def _symbols_in(frame: pd.DataFrame, config: Config, source: Path) -> tuple[str, ...]:
    """The configured symbols, in the configured order; each must have bars."""
    present = set(frame[SYMBOL].unique())
    absent = [symbol for symbol in config.data.symbols if symbol not in present]
    if absent:
        raise IngestError(f"{source}: no bars for symbol {', '.join(map(repr, absent))}")
    return config.data.symbols


def _joined(norms: list[NormStats]) -> NormStats:
    """Several instruments' statistics side by side, in the market's feature order."""
    return NormStats(
        mean=tuple(value for norm in norms for value in norm.mean),
        std=tuple(value for norm in norms for value in norm.std),
    )


def feature_table(
    bars: pd.DataFrame, config: Config, per_year: float, *, markov: bool = True
) -> pd.DataFrame:
    """Features and regimes of canonical bars, every bar (no split column yet); the first
    ``features.warmup_bars`` rows lack some features.

    ``markov=False`` skips the Markov-switching regime probabilities (slow; stress replays).
    """
    return feature_table_with_fits(bars, config, per_year, markov=markov)[0]


def fit_counts(fits: RegimeFits) -> RegimeFitCounts:
    """The regime models' refit counts, as the features' metadata records them."""
    markov = fits.markov
    return RegimeFitCounts(
        garch=FitCounts(**asdict(fits.garch)),
        markov=None if markov is None else FitCounts(**asdict(markov)),
    )


def feature_table_with_fits(
    bars: pd.DataFrame, config: Config, per_year: float, *, markov: bool = True
) -> tuple[pd.DataFrame, RegimeFits]:
    """:func:`feature_table`, and how its regime models' refits went."""
    # Validated bars hold volume throughout, or (a source without volume data) none at all.
    has_volume = bool(bars["volume"].notna().any())
    table = compute_features(bars, config.features, volume=has_volume)
    regimes_config = config.regimes.model_copy(
        update={"markov_probabilities": config.regimes.markov_probabilities and markov}
    )
    settings = RegimeSettings(config.microstructure.regime_detection, regimes_config, per_year)
    regimes, fits = detect_regimes_with_fits(bars["close"].astype("float64"), settings)
    for name in REGIME_COLUMNS:
        table[f"{REGIME_PREFIX}{name}"] = regimes[name].to_numpy()
    for name in config.features.regime_signals:
        table[f"{SIGNAL_PREFIX}{name}"] = regimes[name].to_numpy(dtype=np.float64)
    return table, fits


def compute_features(
    bars: pd.DataFrame, cfg: FeaturesConfig, *, volume: bool = True
) -> pd.DataFrame:
    """Return timestamp, the bar (OHLCV) and the features; row t uses bars 0..t only.

    ``volume=False`` (the source has no volume data) leaves out the volume feature.
    """
    close = bars["close"].astype("float64")
    log_close = pd.Series(np.log(close.to_numpy()), index=close.index)
    one_bar = log_close.diff()
    # The bar travels with the features: the simulator marks and costs trades with close and
    # volume, and stress scenarios rebuild features from reshaped bars.
    out = pd.DataFrame({TIMESTAMP: bars[TIMESTAMP]})
    for column in BAR_COLUMNS:
        out[column] = bars[column].astype("float64")
    for window in cfg.return_windows:
        out[f"ret_{window}"] = log_close.diff(window)
    out[f"vol_{cfg.volatility_window}"] = one_bar.rolling(cfg.volatility_window).std()
    out[f"rsi_{cfg.rsi_window}"] = _rsi(one_bar, cfg.rsi_window)
    out[f"sma_gap_{cfg.sma_window}"] = close / close.rolling(cfg.sma_window).mean() - 1.0
    out["range_hl"] = (bars["high"] - bars["low"]) / close
    prices = close.to_frame()
    for window in cfg.normalised_return_windows:
        out[f"nret_{window}"] = normalised_returns(prices, window, cfg.ex_ante_volatility_span)
    for short, long in cfg.macd_pairs:
        macd = macd_indicator(prices, short, long, cfg.macd_price_window, cfg.macd_signal_window)
        indicator = macd.iloc[:, 0].to_numpy(copy=True)
        # A flat stretch has no spread to normalise by: no trend (0), after the warm-up.
        settled = indicator[cfg.warmup_bars :]
        settled[~np.isfinite(settled)] = 0.0
        out[f"macd_{short}_{long}"] = indicator
    if volume:
        log_volume = pd.Series(
            np.log1p(bars["volume"].to_numpy(dtype=np.float64)), index=bars.index
        )
        mean = log_volume.rolling(cfg.volume_window).mean()
        spread = log_volume.rolling(cfg.volume_window).std()
        volume_z = (log_volume - mean) / spread
        # A window of constant volume has no spread: call it average (0), not undefined.
        out[f"volume_z_{cfg.volume_window}"] = volume_z.where(spread > 0, 0.0).where(spread.notna())
    hours = bars[TIMESTAMP].dt.hour + bars[TIMESTAMP].dt.minute / 60.0
    out["hour_sin"] = np.sin(2 * np.pi * hours / 24.0)
    out["hour_cos"] = np.cos(2 * np.pi * hours / 24.0)
    return out


def feature_columns(table: pd.DataFrame) -> tuple[str, ...]:
    """Names of the feature columns in a feature table (market state and regimes excluded)."""
    return tuple(
        c
        for c in table.columns
        if c not in (TIMESTAMP, SYMBOL, SPLIT, *BAR_COLUMNS) and not c.startswith(REGIME_PREFIX)
    )


def assign_windows(rows: int, split: SplitConfig) -> npt.NDArray[np.str_]:
    """Label rows train / embargo / validation / embargo / test, in time order."""
    train_end = int(rows * split.train_fraction)
    validation_end = train_end + split.embargo_bars + int(rows * split.validation_fraction)
    test_start = validation_end + split.embargo_bars
    if train_end < 1 or test_start >= rows or validation_end <= train_end + split.embargo_bars:
        raise IngestError(
            f"{rows} bars after warm-up are too few for the split "
            f"({split.train_fraction:.0%} / {split.validation_fraction:.0%} / rest, "
            f"embargo {split.embargo_bars} bars)"
        )
    labels = np.full(rows, EMBARGO, dtype=object)
    labels[:train_end] = "train"
    labels[train_end + split.embargo_bars : validation_end] = "validation"
    labels[test_start:] = "test"
    return labels.astype(str)


def bars_per_year(timestamps: pd.Series) -> float:
    """Estimate bars per year from the data itself, so market closures are accounted for."""
    span_s = (timestamps.iloc[-1] - timestamps.iloc[0]).total_seconds()
    if len(timestamps) < 2 or span_s <= 0:
        raise IngestError("need at least two bars a positive time apart to annualise")
    return float((len(timestamps) - 1) / (span_s / _SECONDS_PER_YEAR))


def _rsi(one_bar: pd.Series, window: int) -> pd.Series:
    """Wilder's RSI rescaled to [-1, 1]; flat stretches read 0."""
    gains = one_bar.clip(lower=0.0)
    losses = -one_bar.clip(upper=0.0)
    alpha = 1.0 / window
    avg_gain = gains.ewm(alpha=alpha, adjust=False, min_periods=window).mean()
    avg_loss = losses.ewm(alpha=alpha, adjust=False, min_periods=window).mean()
    total = avg_gain + avg_loss
    return ((avg_gain - avg_loss) / total).where(total > 0, 0.0).where(total.notna())


def _require_finite(table: pd.DataFrame, names: tuple[str, ...], source: Path) -> None:
    values = table[list(names)].to_numpy(dtype=np.float64)
    bad_rows, bad_cols = np.nonzero(~np.isfinite(values))
    if len(bad_rows):
        row, col = int(bad_rows[0]), int(bad_cols[0])
        who = f"{table[SYMBOL].iloc[row]} " if SYMBOL in table else ""
        raise IngestError(
            f"{source}: {len(bad_rows)} non-finite feature value(s) after warm-up, first "
            f"{names[col]} of {who}at {table[TIMESTAMP].iloc[row].isoformat()}"
        )


def _span(table: pd.DataFrame, window: str) -> WindowSpan:
    """The window's first and last time, and its bars on the common clock."""
    times = table.loc[table[SPLIT] == window, TIMESTAMP]
    return WindowSpan(
        start=times.min().isoformat(), end=times.max().isoformat(), rows=times.nunique()
    )
