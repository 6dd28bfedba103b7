"""The curriculum (master plan, phase 4): stages with targets, constraints, regimes and gates.

Training starts in the first stage with its constraints: a smaller position limit, a cap on the
weight traded per bar, and episodes that start only in the stage's market regimes. Every finished
episode is scored against the stage's targets (Sharpe, drawdown, win rate, and the information
and Calmar ratios where the stage sets them). The agent advances when it has played the stage's
minimum episodes, its last N episodes in a row all passed, and, where the stage asks for it, a
backtest of the current policy on the validation window passes the ``advancement_gates``: the
targets met in each of ``minimum_out_of_sample_periods`` consecutive periods, and a Sharpe ratio
above the stage's target with probability ``confidence_threshold`` (PSR); with
``stress_test_passage``, also under volatility x3.

Regimes here are relative: the volatility terciles of the training window (the plan's absolute
thresholds would leave a crypto market with no low-volatility bars at all); ``all`` excludes
crisis bars, ``all_including_stress`` does not.

Adaptive difficulty: over each ``performance_window`` episodes, mean Sharpe against the stage
target above ``consistent_overperformance`` makes the stage harder (costs x1.25, one more
regime, positions x1.1 up to the stage's limit, risk budget x1.1); below
``consistent_underperformance`` makes it easier by the inverse steps, within bounds. The last
stage adapts only with ``continuous_improvement``. Every change is recorded in the history,
which training logs to MLflow.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from stable_baselines3.common.callbacks import BaseCallback

from ijules.analytics.significance import SharpeMoments, psr
from ijules.artifacts import PolicySpec
from ijules.config import Config
from ijules.env.backtest import Backtest
from ijules.env.engine import Engine, EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv
from ijules.training.config import AdvancementGates, CurriculumConfig, CurriculumStage

log = logging.getLogger(__name__)

Validator = Callable[[CurriculumStage, Engine], tuple[bool, dict[str, Any]]]
_REGIME_ORDER = ("low_volatility", "medium_volatility", "high_volatility")


def regime_starts(engine: Engine) -> dict[str, npt.NDArray[np.int64]]:
    """Bars of the training window by relative volatility regime (terciles of trailing sigma)."""
    sigma = engine.market.sigma.mean(axis=1)
    low, high = np.quantile(sigma, [1 / 3, 2 / 3])
    crisis = engine.market.crisis
    bars = np.arange(len(sigma))
    return {
        "low_volatility": bars[(sigma <= low) & ~crisis],
        "medium_volatility": bars[(sigma > low) & (sigma <= high) & ~crisis],
        "high_volatility": bars[(sigma > high) & ~crisis],
        "all": bars[~crisis],
        "all_including_stress": bars,
    }


def passes(stage: CurriculumStage, metrics: dict[str, float]) -> bool:
    """Whether an episode's (or a backtest's) metrics meet the stage's targets."""
    targets = stage.target_metrics
    ok = (
        metrics["sharpe_ratio"] >= targets.sharpe_ratio
        and metrics["max_drawdown_pct"] <= targets.max_drawdown_pct
        and metrics["win_rate_pct"] >= targets.win_rate_pct
    )
    if targets.information_ratio is not None:
        ok = ok and metrics["information_ratio"] >= targets.information_ratio
    if targets.calmar_ratio is not None:
        ok = ok and metrics["calmar_ratio"] >= targets.calmar_ratio
    return ok


@dataclass
class Curriculum:
    """Stage, streak and difficulty of a training run; applies them to the engine."""

    config: CurriculumConfig
    engine: Engine
    validator: Validator | None = None
    stage_index: int = 0
    episodes_in_stage: int = 0
    streak: int = 0
    cost_scale: float = 1.0
    position_scale: float = 1.0
    risk_budget_scale: float = 1.0
    extra_regimes: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = list(self.config.stages)
        self.base = self.engine.settings
        self.pools = regime_starts(self.engine)
        window = self.config.difficulty_adaptation.performance_window
        self.recent: deque[float] = deque(maxlen=window)
        self._record("start", f"curriculum starts in stage {self.names[0]}")
        self.apply()

    @property
    def stage(self) -> CurriculumStage:
        """The current stage."""
        return self.config.stages[self.names[self.stage_index]]

    def regimes(self) -> list[str]:
        """The regimes episodes start in: the stage's, widened by adaptation."""
        asked: list[str] = list(self.stage.market_regimes)
        if {"all", "all_including_stress"} & set(asked):
            return asked
        ordered = [r for r in _REGIME_ORDER if r in asked]
        missing = [r for r in _REGIME_ORDER if r not in ordered]
        return ordered + missing[: max(self.extra_regimes, 0)]

    def apply(self) -> None:
        """Give the engine the stage's constraints and the current difficulty."""
        base = self.base
        constraints = self.stage.training_constraints
        limit = min(base.limits.max_single, constraints.max_position_size * self.position_scale)
        self.engine.reconfigure(
            limits=replace(
                base.limits,
                max_single=min(limit, constraints.max_position_size),
                max_trade=constraints.turnover_limit,
            ),
            costs=replace(base.costs, scale=base.costs.scale * self.cost_scale),
            risk=replace(
                base.risk, daily_var_budget=base.risk.daily_var_budget * self.risk_budget_scale
            ),
        )
        pools = [self.pools[name] for name in self.regimes() if len(self.pools[name])]
        starts = np.unique(np.concatenate(pools)) if pools else None
        try:
            self.engine.set_start_pool(starts)
        except ValueError:
            self.engine.set_start_pool(None)  # the regimes hold no full episode: anywhere
            self._record("regimes", "the stage's regimes leave no room for an episode; any bar")

    def record_episode(self, metrics: dict[str, float]) -> None:
        """Score one finished episode; adapt the difficulty or advance when the rules say so."""
        stage = self.stage
        self.episodes_in_stage += 1
        self.streak = self.streak + 1 if passes(stage, metrics) else 0
        self.recent.append(metrics["sharpe_ratio"])
        adaptation = self.config.difficulty_adaptation
        last = self.stage_index + 1 == len(self.names)
        # The last stage keeps adapting only under continuous_improvement; else it is frozen.
        adapts = adaptation.enabled and (not last or stage.continuous_improvement)
        if adapts and len(self.recent) == self.recent.maxlen:
            self._adapt(float(np.mean(self.recent)))
            self.recent.clear()
        needed = stage.advancement_criteria.consecutive_passing_episodes
        ready = self.episodes_in_stage >= stage.minimum_episodes and self.streak >= needed
        if ready and self.stage_index + 1 < len(self.names):
            self._try_advance()

    def _try_advance(self) -> None:
        stage = self.stage
        criteria = stage.advancement_criteria
        wants_validation = (
            criteria.out_of_sample_validation
            or criteria.multi_regime_validation
            or criteria.stress_test_passage
        )
        if wants_validation and self.validator is not None:
            ok, details = self.validator(stage, self.engine)
            if not ok:
                self._record(
                    "validation", f"{stage.name}: out-of-sample validation failed", details
                )
                self.streak = 0
                return
        self.stage_index += 1
        self.episodes_in_stage = self.streak = 0
        self.cost_scale = self.position_scale = self.risk_budget_scale = 1.0
        self.extra_regimes = 0
        self._record("advance", f"advanced to stage {self.names[self.stage_index]}")
        self.apply()

    def _adapt(self, mean_sharpe: float) -> None:
        target = self.stage.target_metrics.sharpe_ratio
        ratio = mean_sharpe / target if target > 0 else 0.0
        triggers = self.config.difficulty_adaptation.adaptation_triggers
        methods = set(self.config.difficulty_adaptation.adaptation_methods)
        if ratio >= triggers.consistent_overperformance:
            step, direction = 1.25, "harder"
        elif ratio <= triggers.consistent_underperformance:
            step, direction = 0.8, "easier"
        else:
            return
        if "transaction_cost_scaling" in methods:
            self.cost_scale = float(np.clip(self.cost_scale * step, 0.5, 2.0))
        if "market_regime_complexity" in methods:
            self.extra_regimes = int(np.clip(self.extra_regimes + (1 if step > 1 else -1), 0, 2))
        if "position_size_constraints" in methods:
            factor = 1.1 if step > 1 else 0.9
            self.position_scale = float(np.clip(self.position_scale * factor, 0.5, 1.0))
        if "risk_budget_adjustment" in methods:
            factor = 1.1 if step > 1 else 0.9
            self.risk_budget_scale = float(np.clip(self.risk_budget_scale * factor, 0.5, 1.5))
        self._record(
            "adapt",
            f"{self.stage.name}: {direction} "
            f"(mean Sharpe {mean_sharpe:.2f} vs target {target:.2f})",
            {
                "cost_scale": self.cost_scale,
                "position_scale": self.position_scale,
                "risk_budget_scale": self.risk_budget_scale,
                "regimes": self.regimes(),
            },
        )
        self.apply()

    def _record(self, kind: str, message: str, details: dict[str, Any] | None = None) -> None:
        entry = {
            "kind": kind,
            "stage": self.names[self.stage_index],
            "episodes_in_stage": self.episodes_in_stage,
            "message": message,
            **({"details": details} if details else {}),
        }
        self.history.append(entry)
        log.info("curriculum: %s", message)

    def state(self) -> dict[str, Any]:
        """Where the curriculum stands, for a checkpoint."""
        return {
            "stage_index": self.stage_index,
            "episodes_in_stage": self.episodes_in_stage,
            "streak": self.streak,
            "cost_scale": self.cost_scale,
            "position_scale": self.position_scale,
            "risk_budget_scale": self.risk_budget_scale,
            "extra_regimes": self.extra_regimes,
            "history": self.history,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (a resumed training)."""
        for key, value in state.items():
            setattr(self, key, value)
        self.apply()

    def summary(self) -> dict[str, Any]:
        """Where the run ended up, and how it got there."""
        return {
            "final_stage": self.names[self.stage_index],
            "stage_index": self.stage_index,
            "episodes_in_stage": self.episodes_in_stage,
            "history": self.history,
        }


class CurriculumCallback(BaseCallback):
    """Feeds every finished training episode to the curriculum; logs where it stands."""

    def __init__(self, curriculum: Curriculum) -> None:
        super().__init__()
        self.curriculum = curriculum

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            metrics = info.get("episode_metrics")
            if metrics is not None:
                self.curriculum.record_episode(metrics)
        return True

    def _on_rollout_end(self) -> None:
        curriculum = self.curriculum
        self.logger.record("curriculum/stage", curriculum.stage_index)
        self.logger.record("curriculum/streak", curriculum.streak)
        self.logger.record("curriculum/episodes_in_stage", curriculum.episodes_in_stage)
        self.logger.record("curriculum/cost_scale", curriculum.cost_scale)


def policy_validator(
    config: Config,
    model: Any,
    spec: PolicySpec,
    validation: MarketData,
    settings: EngineSettings,
) -> Validator:
    """Out-of-sample gate: backtest the current policy on the validation window.

    The backtest runs under the stage's constraints (the training engine's current parameters)
    and must meet the stage's targets; with ``stress_test_passage`` it must also meet them with
    the window's volatility x ``stress.volatility_multiple``.
    """
    from ijules.env.backtest import run_backtest
    from ijules.training.policy import RecurrentPolicy

    gates = config.curriculum.advancement_gates

    def backtest(
        stage: CurriculumStage, market: MarketData, engine: Engine
    ) -> tuple[bool, dict[str, Any]]:
        env = TradingEnv(market, settings, Safeguards(config.safeguards))
        current = engine.settings  # the stage's constraints and difficulty
        env.engine.reconfigure(limits=current.limits, costs=current.costs, risk=current.risk)
        policy = RecurrentPolicy(model, spec)
        result = run_backtest(env, policy.act)
        return judge_out_of_sample(stage, result, market.bars_per_year, gates)

    stressed: list[MarketData] = []

    def validate(stage: CurriculumStage, engine: Engine) -> tuple[bool, dict[str, Any]]:
        verdicts = {"validation": backtest(stage, validation, engine)}
        if stage.advancement_criteria.stress_test_passage:
            if not stressed:
                stressed.append(volatility_shock(config, validation))
            verdicts["volatility_shock"] = backtest(stage, stressed[0], engine)
        passed = all(ok for ok, _ in verdicts.values())
        return passed, {name: details for name, (_, details) in verdicts.items()}

    return validate


def judge_out_of_sample(
    stage: CurriculumStage, backtest: Backtest, bars_per_year: float, gates: AdvancementGates
) -> tuple[bool, dict[str, Any]]:
    """Whether an out-of-sample backtest earns the advancement (``advancement_gates``).

    The window is cut into ``minimum_out_of_sample_periods`` consecutive periods and each must
    meet the stage's targets on its own, walk-forward style; and the probability that the
    whole window's Sharpe ratio beats the stage's target Sharpe (PSR, per bar) must reach
    ``confidence_threshold``.
    """
    bounds = np.linspace(0, len(backtest.equity) - 1, gates.minimum_out_of_sample_periods + 1)
    periods = []
    for first, last in zip(bounds[:-1].astype(int), bounds[1:].astype(int), strict=True):
        window = backtest.window(int(first), int(last))
        periods.append(window.metrics(bars_per_year, window.asset_returns).stage_targets())
    target_per_bar = stage.target_metrics.sharpe_ratio / np.sqrt(bars_per_year)
    confidence = psr(SharpeMoments.of(backtest.returns), target_per_bar)
    passed = all(passes(stage, m) for m in periods) and confidence >= gates.confidence_threshold
    return passed, {"periods": periods, "psr_vs_target": confidence}


def volatility_shock(config: Config, market: MarketData) -> MarketData:
    """``market`` with each bar's deviation from the mean return scaled up (no features rebuilt).

    A lighter stress than :mod:`ijules.evaluation.stress` (which rebuilds features from bars),
    enough for a training-time gate: prices, volatility and VaR move; features stay as seen.
    """
    multiple = config.stress.volatility_multiple
    logs = np.diff(np.log(market.close), axis=0)
    mean = logs.mean(axis=0)
    scaled = mean + multiple * (logs - mean)
    close = market.close[:1] * np.exp(
        np.vstack([np.zeros((1, logs.shape[1])), np.cumsum(scaled, axis=0)])
    )
    return replace(
        market,
        close=close,
        sigma=market.sigma * multiple,
        daily_var=market.daily_var * multiple,
        volatility_ratio=market.volatility_ratio * multiple,
    )
