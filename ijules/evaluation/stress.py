"""Stress scenarios: the trained policy in markets it has not seen, and whether it survives them.

Every scenario reshapes a base window of real bars (the test window by default), rebuilds the
features and regimes from the reshaped bars with the pipeline's own code (the history before the
window is real, so trailing windows start with real context), and backtests the policy with the
configured costs and risk engine. The risk-managed long rule runs beside it for scale.

Reshaping a bar: with x = log(price / previous close) for its open, high, low and close, the bar
becomes m x + (r' - m x_close) for every x, so its shape scales by m and its close return is r';
highs stay highs. Prices are rebuilt from the last real close before the window.

- **Real crises** (``market_crash_2008``, ``flash_crash_2010``, ``covid_volatility_2020``),
  mapped by return scaling: each crisis day's S&P 500 return, in units of the index's calm
  daily volatility (``stress.calm_reference``), becomes one day of the instrument's, in units of
  the instrument's own daily volatility before the window. Within a day, the real bars' own
  noise is scaled by the crisis's volatility multiple (its daily volatility over the calm one)
  and the day's move is spread evenly over its bars. A crisis of K trading days replays on the
  window's first K days.
- **volatility_x3**: every bar's deviation from the window's mean return times
  ``stress.volatility_multiple``.
- **correlation_breakdown**: the correlation-breakdown signal forced on, and the correlation gap
  at its worst, for a stretch of the window (``stress.correlation_breakdown_span``, the middle
  third); outside it both stay what the bars say. The breakdown arrives mid-window, the risk
  engine halts new risk while it lasts and lifts the halt after it clears, so the test is what
  the agent does before, through and after it. (Forced on for the whole window, it would halt
  every agent from the first bar to the last, and no agent could trade, let alone survive. With
  one instrument there is no cross-asset correlation in prices to break; the signal is what the
  engine acts on.)
- **liquidity_crisis**: spread (proportional costs) x k and the depth of every bar (from volume or
  its fallback) / k, k = ``stress.liquidity_multiple``; impact and capacity costs grow accordingly.

Survival, per scenario: the agent traded (its traded notional is above 0: an agent the risk
engine halted for the whole scenario, or one that never trades, has a drawdown of 0 and has shown
nothing), its maximum drawdown stays within ``stress.max_drawdown``, equity stays positive, and
the breakers behaved: no exposure grew while the risk engine was REDUCING or HALTED (in
``correlation_breakdown``, through the forced stretch the engine halts on).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.artifacts import (
    POLICY_SPEC,
    FeatureSet,
    ModelRef,
    PerformanceMetrics,
    PolicyRecord,
    ScenarioReport,
    ScenarioResult,
    StressedAgent,
    StressedBaseline,
    StressReport,
    SurvivalChecks,
    Window,
    scenario_file,
)
from ijules.config import Config
from ijules.data.features import BAR_COLUMNS, SPLIT, feature_table
from ijules.data.schema import TIMESTAMP
from ijules.env.backtest import Backtest, baseline_env, constant, run_backtest
from ijules.env.market_data import MarketData, from_feature_table
from ijules.errors import ArtifactError, ConfigError, IngestError
from ijules.evaluation.config import StressName
from ijules.evaluation.risk_report import load_daily
from ijules.sim import codes
from ijules.training.policy import RecurrentPolicy

log = logging.getLogger(__name__)

CRISES: tuple[StressName, ...] = ("market_crash_2008", "flash_crash_2010", "covid_volatility_2020")
FloatArray = npt.NDArray[np.float64]


def bars_of(table: pd.DataFrame) -> pd.DataFrame:
    """The canonical bars (timestamp, OHLCV) a feature table was computed from."""
    missing = [c for c in BAR_COLUMNS if c not in table]
    if missing:
        raise IngestError(f"the feature table has no {missing} columns; rerun `ijules features`")
    return table[[TIMESTAMP, *BAR_COLUMNS]].reset_index(drop=True)


def reshape(
    segment: pd.DataFrame, previous_close: float, returns: FloatArray, multiple: float
) -> pd.DataFrame:
    """Bars with close log returns ``returns`` and each bar's shape scaled by ``multiple``."""
    prev = np.concatenate([[previous_close], segment["close"].to_numpy()[:-1]])
    logs = {c: np.log(segment[c].to_numpy() / prev) for c in ("open", "high", "low", "close")}
    shift = returns - multiple * logs["close"]
    closes = previous_close * np.exp(np.cumsum(returns))
    base = np.concatenate([[previous_close], closes[:-1]])
    out = segment.copy()
    for column, values in logs.items():
        out[column] = base * np.exp(multiple * values + shift)
    out["close"] = closes
    return out


def volatility_scaled(
    segment: pd.DataFrame, previous_close: float, multiple: float
) -> pd.DataFrame:
    """Every bar's deviation from the segment's mean log return times ``multiple``."""
    returns = _log_returns(segment, previous_close)
    mean = float(np.mean(returns))
    return reshape(segment, previous_close, mean + multiple * (returns - mean), multiple)


def crisis_replay(
    segment: pd.DataFrame,
    previous_close: float,
    *,
    crisis_returns: FloatArray,
    calm_sigma: float,
    instrument_daily_sigma: float,
) -> pd.DataFrame:
    """The crisis's daily moves replayed on the segment's first days (see the module docstring)."""
    days = segment[TIMESTAMP].dt.floor("D").to_numpy()
    calendar = pd.unique(days)
    n_days = min(len(calendar), len(crisis_returns))
    if n_days < len(crisis_returns):
        log.warning("the window holds %d days; the crisis's last %d days are left out",
                    len(calendar), len(crisis_returns) - n_days)  # fmt: skip
    kept = np.isin(days, calendar[:n_days])
    segment = segment.loc[kept].reset_index(drop=True)
    days = days[kept]
    returns = _log_returns(segment, previous_close)
    multiple = max(float(np.std(crisis_returns, ddof=1)) / calm_sigma, 1.0)
    replayed = np.empty_like(returns)
    for k, day in enumerate(calendar[:n_days]):
        bars = days == day
        noise = returns[bars] - returns[bars].mean()
        target = crisis_returns[k] / calm_sigma * instrument_daily_sigma
        replayed[bars] = multiple * noise + target / bars.sum()
    return reshape(segment, previous_close, replayed, multiple)


def scenario_market(
    config: Config,
    table: pd.DataFrame,
    meta: FeatureSet,
    scenario: StressName,
    window: Window,
    daily: pd.Series | None,
) -> tuple[MarketData, Config]:
    """The market (and the costs) of ``scenario`` over ``window`` of the feature table.

    ``daily`` holds the daily log returns the crises are taken from (see `daily_returns`).
    """
    selected = (table[SPLIT] == window).to_numpy()
    if selected.sum() < 2:
        raise IngestError(f"the {window} window holds {int(selected.sum())} bar(s); need 2")
    first = int(np.argmax(selected))
    history, segment = bars_of(table.iloc[:first]), bars_of(table.loc[selected])
    previous_close = float(history["close"].iloc[-1])
    stress = config.stress
    if scenario in CRISES:
        if daily is None:
            raise ValueError(f"{scenario} needs the daily returns it replays")
        start, end = stress.crisis_windows[scenario]
        calm = daily.loc[stress.calm_reference[0] : stress.calm_reference[1]]
        crisis = daily.loc[start:end].to_numpy()
        if len(crisis) < 2 or len(calm) < 20:
            raise IngestError(
                f"{config.risk_report.source} does not cover {scenario} ({start}..{end})"
            )
        history_returns = np.log(history["close"]).diff()
        per_day = history_returns.groupby(history[TIMESTAMP].dt.floor("D")).sum()
        segment = crisis_replay(
            segment,
            previous_close,
            crisis_returns=crisis,
            calm_sigma=float(calm.std()),
            instrument_daily_sigma=float(per_day.std()),
        )
    elif scenario == "volatility_x3":
        segment = volatility_scaled(segment, previous_close, stress.volatility_multiple)
    market = _market(config, meta, history, segment)
    if scenario == "correlation_breakdown":
        market = correlation_broken(market, stress.correlation_breakdown_span)
    elif scenario == "liquidity_crisis":
        k = stress.liquidity_multiple
        market = replace(market, liquidity=market.liquidity / k)
        config = _illiquid(config, k)
    return market, config


def breakdown_stretch(bars: int, span: tuple[float, float]) -> npt.NDArray[np.bool_]:
    """The bars of a ``bars``-long window within ``span`` (fractions of it); at least one bar."""
    start, end = span
    first = min(int(np.floor(start * bars)), bars - 1)
    last = max(int(np.floor(end * bars)), first + 1)
    stretch = np.zeros(bars, dtype=bool)
    stretch[first:last] = True
    return stretch


def correlation_broken(market: MarketData, span: tuple[float, float]) -> MarketData:
    """``market`` with the correlation-breakdown signal on and the correlation gap at its worst
    within ``span`` of it (fractions of its bars); elsewhere both stay as they were."""
    stretch = breakdown_stretch(len(market), span)
    worst = float(np.max(np.abs(market.correlation)) + 1.0)
    return replace(
        market,
        correlation_break=market.correlation_break | stretch,
        correlation=np.where(stretch, worst, market.correlation),
    )


def daily_returns(config: Config) -> pd.Series | None:
    """The daily log returns the configured crises replay, read once; None if none is run."""
    if not any(scenario in CRISES for scenario in config.stress.scenarios):
        return None
    closes = load_daily(config, Path(config.risk_report.source))
    returns: pd.Series = np.log(closes).diff().dropna()
    return returns


def _market(
    config: Config, meta: FeatureSet, history: pd.DataFrame, segment: pd.DataFrame
) -> MarketData:
    bars = pd.concat([history, segment], ignore_index=True)
    # The Markov fit is slow: only where a feature reads its probability.
    markov = "p_high_volatility" in config.features.regime_signals
    table = feature_table(bars, config, meta.bars_per_year, markov=markov)
    rows = len(segment)
    return from_feature_table(table, meta, config).rows(slice(len(table) - rows, None))


def _illiquid(config: Config, k: float) -> Config:
    micro = config.microstructure
    costs = micro.transaction_costs.model_copy(
        update={"proportional_cost_bps": micro.transaction_costs.proportional_cost_bps * k}
    )
    updated = micro.model_copy(update={"transaction_costs": costs})
    return config.model_copy(update={"microstructure": updated})


def _log_returns(segment: pd.DataFrame, previous_close: float) -> FloatArray:
    closes = segment["close"].to_numpy(dtype=np.float64)
    return np.diff(np.log(np.concatenate([[previous_close], closes])))


def breaker_violations(backtest: Backtest, states: npt.NDArray[np.int64]) -> int:
    """Steps where a position grew while the risk engine was REDUCING or HALTED."""
    units = np.abs(backtest.units)
    before = np.vstack([np.zeros((1, units.shape[1])), units[:-1]])
    grew = (units > before * (1 + 1e-9) + 1e-9).any(axis=1)
    restricted = states[: len(units)] != codes.ACTIVE
    return int(np.sum(grew & restricted))


def survival(
    config: Config, agent: Backtest, metrics: PerformanceMetrics, violations: int
) -> SurvivalChecks:
    """The survival criteria of one scenario, given the agent's backtest, its metrics and its
    breaker violations."""
    return SurvivalChecks(
        agent_traded=metrics.traded_notional > 0,
        max_drawdown_within_limit=metrics.max_drawdown <= config.stress.max_drawdown,
        equity_positive=bool(np.all(agent.equity > 0)),
        no_growth_while_restricted=violations == 0,
    )


def stress_policy(
    config: Config,
    policy: RecurrentPolicy,
    table: pd.DataFrame,
    meta: FeatureSet,
    scenario: StressName,
    daily: pd.Series | None,
    window: Window = "test",
) -> ScenarioResult:
    """Backtest ``policy`` and the risk-managed long rule under ``scenario``; judge the agent's
    survival."""
    from ijules.evaluation.evaluate import policy_env

    market, scenario_config = scenario_market(config, table, meta, scenario, window, daily)
    env = policy_env(policy, market, scenario_config)
    policy.reset()
    agent = run_backtest(env, policy.act)
    long_env = baseline_env(scenario_config, market, meta.norm, meta.clip_zscore)
    long = run_backtest(long_env, constant(1.0, market.n_instruments))
    bars_per_year = meta.bars_per_year
    agent_metrics = agent.metrics(bars_per_year, agent.asset_returns)
    long_metrics = long.metrics(bars_per_year)
    violations = breaker_violations(agent, env.engine.trading_states())
    checks = survival(config, agent, agent_metrics, violations)
    return ScenarioResult(
        scenario=scenario,
        bars=len(market),
        start=str(pd.Timestamp(market.timestamps[0])),
        end=str(pd.Timestamp(market.timestamps[-1])),
        asset_return=float(market.close[-1, 0] / market.close[0, 0] - 1.0),
        survived=checks.all_met,
        checks=checks,
        max_drawdown=agent_metrics.max_drawdown,
        max_drawdown_limit=config.stress.max_drawdown,
        breaker_violations=violations,
        agent=StressedAgent(
            total_return=agent_metrics.total_return,
            sharpe=agent_metrics.sharpe,
            max_drawdown=agent_metrics.max_drawdown,
            daily_turnover=agent_metrics.daily_turnover,
            total_cost=agent_metrics.total_cost,
            risk_engine=agent.risk_summary(),
        ),
        risk_managed_long=StressedBaseline(
            total_return=long_metrics.total_return,
            sharpe=long_metrics.sharpe,
            max_drawdown=long_metrics.max_drawdown,
            total_cost=long_metrics.total_cost,
            risk_engine=long.risk_summary(),
        ),
    )


def run_scenario(
    config: Config,
    *,
    scenario: StressName,
    features: Path,
    meta: Path,
    model_dir: Path,
    output: Path,
) -> ScenarioReport:
    """Run one configured scenario on the test window; write ``output``."""
    if scenario not in config.stress.scenarios:
        raise ConfigError(
            f"stress scenario {scenario!r} is not in stress.scenarios "
            f"({', '.join(config.stress.scenarios)})"
        )
    feature_set = FeatureSet.read(meta)
    if len(feature_set.symbols) > 1:
        raise ConfigError(
            f"stress scenarios reshape one instrument's bars; {meta} holds "
            f"{len(feature_set.symbols)} ({', '.join(feature_set.symbols)}): set "
            "gate.require_stress_survival: false for several instruments, or run one"
        )
    table = pd.read_parquet(features)
    policy = RecurrentPolicy.load(model_dir)
    result = stress_policy(config, policy, table, feature_set, scenario, daily_returns(config))
    log.info(
        "stress %s: %s (agent max drawdown %.2f%%, risk-managed long %.2f%%)",
        scenario,
        "survived" if result.survived else f"FAILED {', '.join(result.checks.unmet)}",
        100 * result.max_drawdown,
        100 * result.risk_managed_long.max_drawdown,
    )
    report = ScenarioReport(model=_model(model_dir), window="test", result=result)
    report.write(output)
    return report


def run_stress(config: Config, *, scenarios: Path, model_dir: Path, output: Path) -> StressReport:
    """Gather every configured scenario's report from ``scenarios`` into ``output``.

    Each must be there and have been run on the current model: a missing one, or one run on
    another model, is no evidence about this one, and nothing is written.
    """
    model = _model(model_dir)
    results = []
    for scenario in config.stress.scenarios:
        path = scenarios / scenario_file(scenario)
        if not path.is_file():
            raise ArtifactError(
                f"{path} not found: stress scenario {scenario!r} has not run "
                f"(`ijules stress-scenario --scenario {scenario}`, the stage stress_scenario@...)"
            )
        report = ScenarioReport.read(path)
        if report.model.run_id != model.run_id or report.result.scenario != scenario:
            raise ArtifactError(
                f"{path} holds scenario {report.result.scenario!r} run on model "
                f"{report.model.run_id}, not {scenario!r} on the current model {model.run_id}: "
                f"rerun `ijules stress-scenario --scenario {scenario}`"
            )
        results.append(report.result)
    payload = StressReport(
        model=model,
        window="test",
        survived=sum(r.survived for r in results),
        scenarios_run=len(results),
        all_survived=all(r.survived for r in results),
        scenarios=results,
    )
    payload.write(output)
    return payload


def _model(model_dir: Path) -> ModelRef:
    return ModelRef(run_id=PolicyRecord.read(model_dir / POLICY_SPEC).mlflow.run_id)
