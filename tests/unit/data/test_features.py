from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ijules.artifacts import FeatureSet
from ijules.data.config import FeaturesConfig, SplitConfig
from ijules.data.features import (
    assign_windows,
    bars_per_year,
    compute_features,
    feature_columns,
    run_features,
)
from ijules.errors import IngestError

# The technical set and the trend features of Lim et al., with windows that fit the sample.
CFG = FeaturesConfig(
    normalised_return_windows=(1, 24, 168),
    macd_pairs=((8, 24), (16, 48)),
    macd_price_window=63,
    macd_signal_window=126,
)


@pytest.fixture(scope="module")
def bars(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[:1500].reset_index(drop=True)


def test_features_are_finite_after_warm_up(bars) -> None:
    table = compute_features(bars, CFG)
    values = table[list(feature_columns(table))].iloc[CFG.warmup_bars :].to_numpy()
    assert np.isfinite(values).all()
    assert table[list(feature_columns(table))].iloc[: CFG.warmup_bars - 1].isna().any(axis=1).all()


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=60, max_value=1400), shock=st.floats(min_value=0.5, max_value=2.0))
def test_changing_future_bars_never_moves_an_earlier_feature(bars, cut, shock) -> None:
    """A feature at bar t uses bars 0..t only: perturb bars after t and nothing up to t moves."""
    future = bars.copy()
    scale = np.linspace(1.0, shock, len(future) - cut - 1)
    for column in ("open", "high", "low", "close"):
        future.loc[cut + 1 :, column] = future.loc[cut + 1 :, column].to_numpy() * scale
    future.loc[cut + 1 :, "volume"] = future.loc[cut + 1 :, "volume"].to_numpy()[::-1]
    before = compute_features(bars, CFG).iloc[: cut + 1]
    after = compute_features(future, CFG).iloc[: cut + 1]
    pd.testing.assert_frame_equal(before, after)
    assert (
        not compute_features(future, CFG)
        .iloc[cut + 1 :]
        .equals(compute_features(bars, CFG).iloc[cut + 1 :])
    )


def test_windows_are_chronological_with_an_embargo_between_them() -> None:
    labels = assign_windows(
        1000, SplitConfig(train_fraction=0.6, validation_fraction=0.2, embargo_bars=10)
    )
    assert (labels[:600] == "train").all()
    assert (labels[600:610] == "embargo").all()
    assert (labels[610:810] == "validation").all()
    assert (labels[810:820] == "embargo").all()
    assert (labels[820:] == "test").all()


def test_too_few_bars_for_the_split_is_an_error() -> None:
    with pytest.raises(IngestError, match="too few for the split"):
        assign_windows(50, SplitConfig(embargo_bars=48))


def test_bars_per_year_follows_the_calendar(btc_1h) -> None:
    assert bars_per_year(btc_1h["timestamp"]) == pytest.approx(24 * 365.25, rel=1e-6)
    weekdays = btc_1h.loc[btc_1h["timestamp"].dt.weekday < 5, "timestamp"].reset_index(drop=True)
    assert bars_per_year(weekdays) == pytest.approx(24 * 365.25 * 5 / 7, rel=0.01)


def test_run_features_fits_normalisation_on_the_train_window_only(
    make_config, btc_1h, tmp_path
) -> None:
    config = make_config()
    raw = tmp_path / "bars.parquet"
    btc_1h.iloc[:3000].to_parquet(raw, index=False)
    first = run_features(config, bars=raw, output=tmp_path / "f.parquet", meta=tmp_path / "m.json")
    table = pd.read_parquet(tmp_path / "f.parquet")
    # Every bar stays (the market's trailing state needs contiguous bars); the warm-up and the
    # embargoes belong to no window.
    assert set(table["split"]) == {"warmup", "train", "embargo", "validation", "test"}
    assert len(table) == 3000 and table["timestamp"].is_monotonic_increasing
    assert (table["split"].iloc[: config.features.warmup_bars] == "warmup").all()
    train = table.loc[table["split"] == "train", list(first.feature_names)]
    np.testing.assert_allclose(first.norm.mean, train.mean().to_numpy())

    shocked = btc_1h.iloc[:3000].copy()
    shocked.loc[2900:, ["open", "high", "low", "close"]] *= 3.0
    shocked.to_parquet(raw, index=False)
    second = run_features(
        config, bars=raw, output=tmp_path / "f2.parquet", meta=tmp_path / "m2.json"
    )
    assert second.norm == first.norm  # the test window moved; train statistics did not
    assert FeatureSet.read(tmp_path / "m.json") == first


def test_missing_input_is_named(make_config, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="validated bars not found"):
        run_features(
            make_config(),
            bars=tmp_path / "none.parquet",
            output=tmp_path / "f",
            meta=tmp_path / "m",
        )


def test_without_volume_data_there_is_no_volume_feature(bars) -> None:
    closes_only = bars.assign(volume=np.nan)
    table = compute_features(closes_only, CFG, volume=False)
    names = feature_columns(table)
    assert not any(name.startswith("volume_z") for name in names)
    assert np.isfinite(table[list(names)].iloc[CFG.warmup_bars :].to_numpy()).all()


def test_several_instruments_share_the_windows_of_the_common_clock(
    make_config, btc_1h, tmp_path
) -> None:
    btc = btc_1h.iloc[:2000]
    # A second instrument on weekdays only, starting a day later.
    other = btc_1h.iloc[24:2000].assign(symbol="WKDAY", close=lambda f: f["close"] / 2)
    other = other.loc[other["timestamp"].dt.weekday < 5]
    other = other.assign(open=other["close"], high=other["close"], low=other["close"])
    raw = tmp_path / "bars.parquet"
    pd.concat([btc, other], ignore_index=True).to_parquet(raw, index=False)
    # Without regime signals, whose models need more history than these bars (tested below).
    config = make_config(
        {"data": {"symbol": ["BTCUSD", "WKDAY"]}, "features": {"regime_signals": []}}
    )
    meta = run_features(config, bars=raw, output=tmp_path / "f.parquet", meta=tmp_path / "m.json")
    table = pd.read_parquet(tmp_path / "f.parquet")
    assert meta.symbols == ("BTCUSD", "WKDAY") and table["symbol"].tolist()[0] == "BTCUSD"
    # One label per time, whichever instrument's row carries it.
    assert (table.groupby("timestamp")["split"].nunique() == 1).all()
    # The warm-up lasts until both instruments have their features.
    warm = config.features.warmup_bars
    ready = max(btc["timestamp"].iloc[warm], other["timestamp"].iloc[warm])
    assert table.loc[table["split"] == "warmup", "timestamp"].max() < ready
    assert table.loc[table["timestamp"] >= ready, "split"].ne("warmup").all()
    # Each instrument's statistics come from its own train bars, side by side.
    names = list(meta.feature_names)
    assert len(meta.norm.mean) == 2 * len(names)
    train = table.loc[(table["split"] == "train") & (table["symbol"] == "WKDAY"), names]
    np.testing.assert_allclose(meta.norm.mean[len(names) :], train.mean().to_numpy())
    assert meta.windows["train"].rows == table.loc[table["split"] == "train", "timestamp"].nunique()


def test_normalised_returns_are_the_move_over_the_ex_ante_volatility(bars) -> None:
    table = compute_features(bars, CFG)
    logs = np.log(bars["close"].to_numpy())
    sigma = pd.Series(np.diff(logs, prepend=np.nan)).ewm(span=60, min_periods=60).std().to_numpy()
    t = 900
    for k in CFG.normalised_return_windows:
        expected = (logs[t] - logs[t - k]) / (sigma[t] * np.sqrt(k))
        assert table[f"nret_{k}"].iloc[t] == pytest.approx(expected, rel=1e-9)


def test_the_macd_feature_is_the_indicator_the_macd_rule_trades(bars) -> None:
    """One definition of the MACD indicator serves the feature and the benchmark rule."""
    from ijules.evaluation.baselines import macd_weights, volatility_scale
    from ijules.evaluation.config import MacdConfig

    close = bars["close"].to_numpy(dtype=np.float64)[:, None]
    table = compute_features(bars, CFG)
    rule = MacdConfig(pairs=((8, 24),), price_window_bars=63, signal_window_bars=126)
    y = table["macd_8_24"].to_numpy()
    response = y * np.exp(-(y**2) / 4.0) / 0.89
    scale = volatility_scale(close, 8766.0, rule.volatility_target, rule.volatility_bars)[:, 0]
    settled = slice(CFG.warmup_bars, None)
    np.testing.assert_allclose(
        macd_weights(close, 8766.0, rule)[settled, 0], (response * scale)[settled], rtol=1e-12
    )


def test_the_warm_up_lasts_until_the_regime_signals_are_defined(
    make_config, btc_1h, tmp_path
) -> None:
    config = make_config(
        {"features": {"regime_signals": ["efficiency_ratio", "p_high_volatility"]}}
    )
    raw = tmp_path / "bars.parquet"
    btc_1h.iloc[:3000].to_parquet(raw, index=False)
    meta = run_features(config, bars=raw, output=tmp_path / "f.parquet", meta=tmp_path / "m.json")
    table = pd.read_parquet(tmp_path / "f.parquet")
    assert {"signal_efficiency_ratio", "signal_p_high_volatility"} <= set(meta.feature_names)
    # The Markov model's first fit needs its window of bars: the probability starts there,
    # long after the technical features' warm-up, and the first window starts with it.
    first = int(table["signal_p_high_volatility"].notna().to_numpy().argmax())
    assert first == config.regimes.garch_window_bars > config.features.warmup_bars
    assert (table["split"].iloc[:first] == "warmup").all() and table["split"].iloc[first] == "train"
    np.testing.assert_array_equal(
        table["signal_efficiency_ratio"].to_numpy(), table["regime_efficiency_ratio"].to_numpy()
    )
