"""Evaluate: backtest the trained policy on the test window, after costs, beside baselines.

Only the test window is traded, and nothing here feeds back into training or its parameters.
The agent is judged against passive buy-and-hold (also the benchmark of its information ratio
and attribution) and against the best simple rule (:mod:`ijules.evaluation.baselines`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.analytics.significance import (
    SharpeMoments,
    minimum_track_record,
    psr,
    target_test,
)
from ijules.artifacts import (
    POLICY_SPEC,
    BacktestMetrics,
    Baselines,
    EvaluationWindow,
    FeatureSet,
    MetricsReport,
    ModelRef,
    PolicyRecord,
    Significance,
)
from ijules.config import Config
from ijules.env.backtest import Backtest, run_backtest
from ijules.env.cost_check import full_capital_fill_bps
from ijules.env.market_data import MarketData, load_history
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv
from ijules.errors import ModelCompatibilityError, RegistryError
from ijules.evaluation.baselines import (
    BASELINES,
    FLAT,
    PASSIVE,
    RULES,
    best_rule,
    rule_baselines,
)
from ijules.io import write_text, write_with
from ijules.risk.attribution import risk_attribution
from ijules.risk.config import AttributionConfig
from ijules.tracking import configure, run_exists
from ijules.training.policy import RecurrentPolicy, policy_settings

log = logging.getLogger(__name__)

AGENT = "agent"


@dataclass(frozen=True)
class Evaluation:
    """The test-window backtests of the agent and its baselines."""

    window: EvaluationWindow
    backtests: dict[str, Backtest]
    bars_per_year: float
    regimes: list[str]
    attribution: AttributionConfig

    def report(self, model: ModelRef) -> MetricsReport:
        """The content of ``metrics.json``: metrics, costs, risk and significance per backtest.

        The information ratio and the systematic share of risk are against passive buy-and-hold's
        returns; timing and sizing against the instrument's.
        """
        benchmark = self.backtests[PASSIVE].returns
        asset = self.backtests[AGENT].asset_returns
        entries: dict[str, BacktestMetrics] = {}
        for name, backtest in self.backtests.items():
            returns = backtest.returns
            attribution = (
                risk_attribution(
                    returns,
                    benchmark,
                    backtest.weights.sum(axis=1),
                    asset,
                    self.attribution.components,
                )
                if self.attribution.enabled
                else None
            )
            entries[name] = BacktestMetrics(
                **backtest.metrics(self.bars_per_year, benchmark).model_dump(),
                significance=significance(returns),
                costs=backtest.costs_by_component(),
                exit_costs=backtest.exit_costs,
                risk_engine=backtest.risk_summary(),
                attribution=attribution,
            )
        return MetricsReport(
            model=model,
            window=self.window,
            agent=entries[AGENT],
            baselines=Baselines[BacktestMetrics](**{name: entries[name] for name in BASELINES}),
            best_rule=best_rule({name: entries[name].sharpe for name in RULES}),
        )


def significance(returns: np.ndarray) -> Significance:
    """PSR against 0, the minimum track record (bars) for 95%, and the t-test of mean return.

    The minimum track record is None when the Sharpe ratio is not above 0: no length of record
    would make it significant.
    """
    moments = SharpeMoments.of(returns)
    test = target_test(returns, 0.0)
    track = minimum_track_record(moments)
    return Significance(
        sharpe_per_bar=moments.sharpe,
        skewness=moments.skewness,
        kurtosis=moments.kurtosis,
        observations=moments.observations,
        psr=psr(moments),
        min_track_record_bars=track if np.isfinite(track) else None,
        t_statistic=test.t_statistic,
        p_value=test.p_value,
        cohens_d=test.cohens_d,
    )


def backtest_policy(policy: RecurrentPolicy, market: MarketData, config: Config) -> Backtest:
    """Run ``policy`` over the whole of ``market``: its own observations, today's economics."""
    env = policy_env(policy, market, config)
    policy.reset()
    return run_backtest(env, policy.act)


def policy_env(
    policy: RecurrentPolicy,
    market: MarketData,
    config: Config,
    *,
    capital: float | None = None,
    bars_per_day: float | None = None,
) -> TradingEnv:
    """An evaluation environment for ``policy`` over ``market``, after checking they match.

    ``capital`` replaces ``environment.initial_capital`` (a paper book's share); ``bars_per_day``
    pins the daily figures' bar count (see :class:`ijules.env.engine.Engine`).
    """
    settings = policy_settings(config, policy.spec)
    if capital is not None:
        settings = replace(settings, initial_capital=capital)
    env = TradingEnv(market, settings, Safeguards(config.safeguards), bars_per_day=bars_per_day)
    policy.check_compatible(
        tuple(env.observation_space.shape or ()),
        tuple(env.action_space.shape or ()),
        market.feature_names,
    )
    if market.instruments != policy.spec.instruments:
        raise ModelCompatibilityError(
            f"instrument mismatch: policy trades {list(policy.spec.instruments)}, "
            f"the market has {list(market.instruments)}"
        )
    return env


def evaluate(
    policy: RecurrentPolicy,
    history: MarketData,
    selected: npt.NDArray[np.bool_],
    feature_set: FeatureSet,
    config: Config,
) -> Evaluation:
    """Backtest the policy and the baselines on the same bars (``history.rows(selected)``)
    with the same costs; the rules size themselves on the history before the window."""
    market = history.rows(selected)
    backtests = {AGENT: backtest_policy(policy, market, config)}
    backtests.update(
        rule_baselines(config, history, selected, feature_set.norm, feature_set.clip_zscore)
    )
    span = feature_set.windows["test"]
    window = EvaluationWindow(
        name="test",
        start=span.start,
        end=span.end,
        bars=span.rows,
        bars_per_year=feature_set.bars_per_year,
        costs=describe_costs(config),
        fill_at=config.environment.fill_at,
        full_capital_fill_bps=full_capital_fill_bps(market, config),
    )
    return Evaluation(
        window,
        backtests,
        feature_set.bars_per_year,
        regime_labels(market),
        config.risk_management.attribution,
    )


def regime_labels(market: MarketData) -> list[str]:
    """The market regime at each bar, most severe first: crisis, recovery, high volatility."""
    return [
        "crisis" if crisis else "recovery" if recovery else "high_volatility" if high else "normal"
        for crisis, recovery, high in zip(
            market.crisis, market.recovery, market.high_volatility, strict=True
        )
    ]


def describe_costs(config: Config) -> str:
    """The cost model in a few words, for reports."""
    micro = config.microstructure
    costs = micro.transaction_costs
    parts = [f"{costs.proportional_cost_bps:g} bps"]
    if micro.enabled:
        if costs.fixed_cost_per_trade:
            parts.append(f"${costs.fixed_cost_per_trade:g} per fill")
        if costs.market_impact.enabled:
            parts.append("market impact")
        if costs.turnover_penalty.enabled:
            parts.append("turnover capacity")
    fills = {"next_open": "the next bar's open", "this_close": "the bar's close"}
    return " + ".join(parts) + f"; fills at {fills[config.environment.fill_at]}"


def run_evaluate(
    config: Config,
    *,
    features: Path,
    meta: Path,
    model_dir: Path,
    metrics: Path,
    curve: Path,
    plot: Path,
) -> MetricsReport:
    """Evaluate out of sample; write metrics, the equity curve and its plot; log them to MLflow."""
    feature_set = FeatureSet.read(meta)
    history, window = load_history(features, feature_set, "test", config)
    policy = RecurrentPolicy.load(model_dir)
    result = evaluate(policy, history, window, feature_set, config)
    spec_path = model_dir / POLICY_SPEC
    run_id = PolicyRecord.read(spec_path).mlflow.run_id
    report = result.report(ModelRef(run_id=run_id))
    report.write(metrics)
    frame = _curve_frame(result)
    write_text(curve, frame.to_csv(index=False))
    write_with(plot, lambda tmp: _plot(frame, tmp))
    # The curve too: paper trading's health compares live positions and returns with it.
    _log_to_run(config, run_id, spec_path, report, [metrics, plot, curve])
    agent, passive = report.agent, report.baselines.passive_buy_and_hold
    rule = report.baselines.by_name()[report.best_rule]
    log.info(
        "test window: agent Sharpe %.2f return %.2f%%; passive buy-and-hold Sharpe %.2f return "
        "%.2f%%; best rule %s Sharpe %.2f",
        agent.sharpe,
        100 * agent.total_return,
        passive.sharpe,
        100 * passive.total_return,
        report.best_rule,
        rule.sharpe,
    )
    return report


def _curve_frame(result: Evaluation) -> pd.DataFrame:
    agent = result.backtests[AGENT]
    frame = pd.DataFrame(
        {"timestamp": pd.to_datetime(agent.timestamps).strftime("%Y-%m-%dT%H:%M:%SZ")}
    )
    for name, backtest in result.backtests.items():
        frame[name] = np.round(backtest.equity, 2)
    gross = np.abs(agent.weights).sum(axis=1) * np.sign(agent.weights.sum(axis=1))
    frame["agent_position"] = np.round(np.append(gross, gross[-1]), 4)
    frame["regime"] = result.regimes[: len(frame)]
    return frame


def _plot(frame: pd.DataFrame, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    when = pd.to_datetime(frame["timestamp"])
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for name, label in ((AGENT, "agent"), (PASSIVE, "passive buy and hold"), (FLAT, "flat")):
        top.plot(when, frame[name], label=label, linewidth=1.2)
    top.set_ylabel("equity (USD, after costs)")
    top.set_title("Out-of-sample test window")
    top.legend(loc="best")
    top.grid(alpha=0.3)
    bottom.plot(when, frame["agent_position"], color="tab:blue", linewidth=0.8)
    bottom.set_ylabel("agent weight")
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, format="png", dpi=100)
    plt.close(figure)


def _log_to_run(
    config: Config, run_id: str, spec_path: Path, report: MetricsReport, files: list[Path]
) -> None:
    import mlflow

    configure(config.registry.experiment)
    if not run_exists(run_id):
        raise RegistryError(
            f"MLflow run {run_id} (from {spec_path}) is not in {mlflow.get_tracking_uri()}; "
            "retrain, or point MLFLOW_TRACKING_URI at the store that holds it"
        )
    numbers = {
        f"test_{prefix}{key}": float(value)
        for entry, prefix in (
            (report.agent, ""),
            (report.baselines.passive_buy_and_hold, "passive_buy_and_hold_"),
        )
        for key, value in entry.model_dump().items()
        if isinstance(value, int | float)
    }
    numbers.update({f"test_cost_{key}": value for key, value in report.agent.costs.items()})
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(numbers)
        for file in files:
            mlflow.log_artifact(str(file), artifact_path="evaluation")
