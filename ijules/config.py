"""Run parameters: ``params.yaml`` plus an optional phase overlay, parsed once into frozen models.

``params.yaml`` is the single source of run parameters. Its ``phase`` key (or ``--phase`` on the
command line) selects ``config/<phase>.yaml``, an overlay merged over it: the master plan's phase
configurations live there. Every model forbids unknown keys, and keys that belong to work not built
yet are refused by name instead of being silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ijules.errors import ConfigError

BASE_PHASE = "base"

# Sections of the master plan that later work implements. A key under one of these prefixes is
# refused with the name of the work that will implement it, so a phase overlay never half-applies.
PLANNED_KEYS: dict[str, str] = {
    "portfolio_optimization.objective_function": "multi-objective optimisation (not scheduled)",
    "performance_attribution": "Brinson-Fachler and factor attribution (not scheduled)",
    "risk_budgeting": "risk budgeting and risk parity (not scheduled)",
    "backtesting": "fixed calendar validation periods (walk_forward and stress replace them)",
    "regime_mastery": "phase 6 regime mastery and continuous learning (not scheduled yet)",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class ColumnMap(_Frozen):
    """Canonical column name -> column name in the source file."""

    timestamp: str = "timestamp"
    symbol: str | None = "symbol"
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str = "volume"


class CleaningPolicy(_Frozen):
    """What ingest may repair before validation; each repair is counted in the ingest report.

    Off by default: dirty data should fail loudly unless someone chose to clean it.
    """

    drop_duplicates: Literal["none", "keep_first", "keep_last"] = "none"
    sort: bool = False
    drop_off_grid: bool = False


class DataConfig(_Frozen):
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


class QualityConfig(_Frozen):
    """Thresholds of the data-quality rules that need one."""

    max_abs_log_return: PositiveFloat = 0.25
    max_missing_bars: Annotated[int, Field(ge=0)] | None = None
    example_rows: PositiveInt = 5


class FeaturesConfig(_Frozen):
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


class SplitConfig(_Frozen):
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


class EnvironmentConfig(_Frozen):
    """The trading environment: capital, portfolio limits, actions and reward scaling."""

    initial_capital: PositiveFloat = 100_000.0
    max_position_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_gross_exposure: Annotated[float, Field(gt=0, le=1)] = 1.0
    min_cash_reserve_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    action_space: Literal["continuous", "discrete"] = "continuous"
    min_trade_weight: Annotated[float, Field(ge=0, lt=1)] = 0.02
    reward_scaling: PositiveFloat = 0.001
    episode_bars: Annotated[int, Field(ge=16)] = 512

    @property
    def position_limit(self) -> float:
        """Largest absolute weight of equity one position may take."""
        return min(self.max_position_fraction, self.gross_limit)

    @property
    def gross_limit(self) -> float:
        """Largest sum of absolute weights: gross exposure, net of the cash reserve."""
        return min(self.max_gross_exposure, 1.0 - self.min_cash_reserve_fraction)


RiskFeature = Literal[
    "portfolio_heat_ratio",
    "concentration_ratio",
    "drawdown_velocity",
    "var_breach_indicator",
    "correlation_breakdown",
]
ALL_RISK_FEATURES: tuple[RiskFeature, ...] = get_args(RiskFeature)


class RiskObservationConfig(_Frozen):
    """Risk features in the observation and the reward's risk penalty (master plan, phase 1)."""

    include_risk_features: bool = True
    risk_features: tuple[RiskFeature, ...] = ALL_RISK_FEATURES
    penalty_lambda: Annotated[float, Field(ge=0)] = 0.0
    penalty: Literal["drawdown", "variance"] = "drawdown"
    dd_limit: Annotated[float, Field(gt=0, le=1)] | None = None
    daily_var_budget: Annotated[float, Field(gt=0, le=1)] = 0.02
    drawdown_velocity_bars: Annotated[int, Field(ge=1)] = 24
    correlation_short_bars: Annotated[int, Field(ge=5)] = 24
    correlation_long_bars: Annotated[int, Field(ge=10)] = 240

    @field_validator("risk_features")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("risk features must not repeat")
        return value

    @model_validator(mode="after")
    def _windows_ordered(self) -> RiskObservationConfig:
        if self.correlation_short_bars >= self.correlation_long_bars:
            raise ValueError("correlation_short_bars must be below correlation_long_bars")
        return self

    @property
    def active_features(self) -> tuple[RiskFeature, ...]:
        """The risk features that go into the observation, in order."""
        return self.risk_features if self.include_risk_features else ()


class SafeguardsConfig(_Frozen):
    """Environment safeguards (master plan, phase 1). The NaN guard cannot be switched off."""

    observation_consistency_check: bool = True
    reward_bounds_check: bool = True
    nan_guard_strict: Literal[True] = True
    reward_bounds: tuple[float, float] = (-1000.0, 1000.0)

    @field_validator("reward_bounds")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"reward_bounds must be (low, high) with low < high, got {value}")
        return value


class MarketImpactConfig(_Frozen):
    """Almgren-Chriss impact: temporary eta sigma sqrt(q/V) |value|, permanent gamma q/V |value|."""

    enabled: bool = True
    temporary_impact_coeff: Annotated[float, Field(ge=0)] = 0.314159
    permanent_impact_coeff: Annotated[float, Field(ge=0)] = 0.1
    liquidity_decay_factor: Annotated[float, Field(gt=0, le=1)] = 0.5


class TurnoverPenaltyConfig(_Frozen):
    """Turnover beyond a free capacity that scales with the volatility regime pays extra."""

    enabled: bool = True
    model_type: Literal["microstructure_aware"] = "microstructure_aware"
    base_capacity_pct: Annotated[float, Field(gt=0, le=1)] = 0.02
    capacity_scaling_factor: Annotated[float, Field(ge=1)] = 1.5
    penalty_curve: Literal["almgren_chriss"] = "almgren_chriss"


class TransactionCostsConfig(_Frozen):
    """Every cost a fill pays, by component."""

    fixed_cost_per_trade: Annotated[float, Field(ge=0)] = 0.0
    proportional_cost_bps: Annotated[float, Field(ge=0)] = 5.0
    market_impact: MarketImpactConfig = MarketImpactConfig()
    turnover_penalty: TurnoverPenaltyConfig = TurnoverPenaltyConfig()


class VolatilityRegimeConfig(_Frozen):
    """Annualised-volatility thresholds of the low / medium / high regimes."""

    volatility_threshold_low: Annotated[float, Field(gt=0)] = 0.15
    volatility_threshold_high: Annotated[float, Field(gt=0)] = 0.35
    trend_strength_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.6

    @model_validator(mode="after")
    def _ordered(self) -> VolatilityRegimeConfig:
        if self.volatility_threshold_low >= self.volatility_threshold_high:
            raise ValueError("volatility_threshold_low must be below volatility_threshold_high")
        return self


class LiquidityModelConfig(_Frozen):
    """Where liquidity comes from when the data has no volume, and execution protections."""

    book_depth_estimate: PositiveFloat = 100_000.0
    liquidity_window_bars: Annotated[int, Field(ge=1)] = 24
    adverse_selection_protection: bool = False
    tick_size_aware: bool = False
    tick_size: PositiveFloat | None = None


class MicrostructureConfig(_Frozen):
    """The cost engine (master plan, phase 2); disabled, only proportional costs apply."""

    enabled: bool = True
    transaction_costs: TransactionCostsConfig = TransactionCostsConfig()
    regime_detection: VolatilityRegimeConfig = VolatilityRegimeConfig()
    liquidity_model: LiquidityModelConfig = LiquidityModelConfig()


class RegimesConfig(_Frozen):
    """Regime detection (ijules.market): GARCH volatility, trend, crisis and recovery.

    Volatility thresholds and the trend threshold are ``microstructure.regime_detection``'s.
    """

    garch_window_bars: Annotated[int, Field(ge=100)] = 1000
    garch_refit_bars: Annotated[int, Field(ge=1)] = 250
    markov_probabilities: bool = True
    trend_window_bars: Annotated[int, Field(ge=2)] = 24
    long_run_window_bars: Annotated[int, Field(ge=10)] = 720
    crisis_volatility_ratio: Annotated[float, Field(gt=1)] = 2.5
    crisis_drawdown: Annotated[float, Field(gt=0, lt=1)] = 0.15
    recovery_bars: Annotated[int, Field(ge=1)] = 240


class RiskLimitsConfig(_Frozen):
    """Hard limits (master plan, phase 3). Fractions of equity."""

    max_daily_drawdown_pct: Fraction = 0.03
    max_monthly_drawdown_pct: Fraction = 0.08
    max_position_concentration_pct: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_leverage_ratio: Annotated[float, Field(gt=0)] = 1.0
    max_var_multiple: PositiveFloat = 2.5


class RiskMonitoringConfig(_Frozen):
    """Soft alerts: counted and logged, they do not stop trading."""

    drawdown_velocity_threshold: PositiveFloat = 0.01
    correlation_breakdown_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.7
    volatility_spike_threshold: Annotated[float, Field(gt=1)] = 2.0


class HaltConditionsConfig(_Frozen):
    """What halts trading."""

    consecutive_losses: Annotated[int, Field(ge=1)] = 5
    losing_day_pct: Fraction = 0.001  # a day counts as lost below -0.1% (not on costs alone)
    volatility_spike: Annotated[float, Field(gt=1)] = 3.0
    correlation_breakdown: bool = True


class CircuitBreakersConfig(_Frozen):
    """Automatic actions on losses since the start of the trading day."""

    enabled: bool = True
    emergency_liquidation_threshold: Fraction = 0.05
    position_scaling_threshold: Fraction = 0.02
    trading_halt_conditions: HaltConditionsConfig = HaltConditionsConfig()

    @model_validator(mode="after")
    def _ordered(self) -> CircuitBreakersConfig:
        if self.position_scaling_threshold >= self.emergency_liquidation_threshold:
            raise ValueError(
                "position_scaling_threshold must be below emergency_liquidation_threshold"
            )
        return self


class AttributionConfig(_Frozen):
    """Risk attribution reported with each evaluation."""

    enabled: bool = True
    components: tuple[
        Literal["systematic_risk", "idiosyncratic_risk", "timing_risk", "sizing_risk"], ...
    ] = ("systematic_risk", "idiosyncratic_risk", "timing_risk", "sizing_risk")


class HaltReleaseConfig(_Frozen):
    """How a halt is lifted.

    time: after ``cooldown_bars`` (a daily-loss halt also waits for the next day); condition:
    once the trigger has cleared, and not before ``cooldown_bars``; operator: only by hand.
    """

    mode: Literal["time", "condition", "operator"] = "condition"
    cooldown_bars: Annotated[int, Field(ge=1)] = 24


class RegimeLimitsConfig(_Frozen):
    """Position limits scale down in these regimes (multipliers of the limits)."""

    crisis_mode: Annotated[float, Field(ge=0, le=1)] = 0.2
    recovery_mode: Annotated[float, Field(ge=0, le=1)] = 0.5
    high_volatility: Annotated[float, Field(ge=0, le=1)] = 0.6


class RiskManagementConfig(_Frozen):
    """The risk engine (master plan, phase 3): every action passes through it."""

    enabled: bool = True
    limits: RiskLimitsConfig = RiskLimitsConfig()
    monitoring: RiskMonitoringConfig = RiskMonitoringConfig()
    circuit_breakers: CircuitBreakersConfig = CircuitBreakersConfig()
    attribution: AttributionConfig = AttributionConfig()
    halt_release: HaltReleaseConfig = HaltReleaseConfig()
    regime_limits: RegimeLimitsConfig = RegimeLimitsConfig()


VarModel = Literal[
    "historical_simulation",
    "parametric_normal",
    "parametric_student_t",
    "monte_carlo",
    "extreme_value_theory",
]


class ExpectedShortfallConfig(_Frozen):
    """Confidence levels and the window of the VaR and expected-shortfall estimates."""

    confidence_levels: tuple[Annotated[float, Field(gt=0.5, lt=1)], ...] = (0.95, 0.99)
    tail_expectation_window: Annotated[int, Field(ge=50)] = 252


class RiskModelsConfig(_Frozen):
    """VaR models (master plan, phase 3)."""

    var_models: tuple[VarModel, ...] = get_args(VarModel)
    expected_shortfall: ExpectedShortfallConfig = ExpectedShortfallConfig()
    monte_carlo_paths: Annotated[int, Field(ge=1000)] = 20_000
    evt_threshold_quantile: Annotated[float, Field(gt=0.5, lt=0.99)] = 0.90
    refit_every: Annotated[int, Field(ge=1)] = 20


class KellyConstraintsConfig(_Frozen):
    """Bounds of the enhanced Kelly size."""

    max_kelly_fraction: Annotated[float, Field(gt=0, le=1)] = 0.25
    min_position_size: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_position_size: Annotated[float, Field(gt=0, le=1)] = 0.20
    volatility_target: PositiveFloat = 0.15


class PositionSizingConfig(_Frozen):
    """Enhanced Kelly sizing (master plan, phase 5)."""

    method: Literal["enhanced_kelly"] = "enhanced_kelly"
    kelly_enhancements: tuple[
        Literal[
            "drawdown_scaling",
            "volatility_targeting",
            "regime_adjustment",
            "correlation_adjustment",
        ],
        ...,
    ] = ("drawdown_scaling", "volatility_targeting", "regime_adjustment", "correlation_adjustment")
    constraints: KellyConstraintsConfig = KellyConstraintsConfig()


class RegimeStrategyConfig(_Frozen):
    """Per-regime parameters of phase 5's regime adaptation."""

    position_size_multiplier: Annotated[float, Field(ge=0)] = 1.0
    turnover_tolerance: Annotated[float, Field(ge=0)] | None = None
    risk_budget_allocation: Annotated[float, Field(ge=0, le=1)] | None = None
    emergency_liquidation_threshold: Fraction | None = None


class RegimeAdaptationConfig(_Frozen):
    """Phase 5's regime classes and their parameters (the sizer's regime scalar)."""

    enabled: bool = True
    regime_classification: tuple[str, ...] = ()
    strategy_parameters: dict[str, RegimeStrategyConfig] = Field(default_factory=dict)


class PortfolioOptimizationConfig(_Frozen):
    """Position sizing and regime adaptation (master plan, phase 5)."""

    enabled: bool = True
    optimization_framework: Literal["institutional_grade"] = "institutional_grade"
    position_sizing: PositionSizingConfig = PositionSizingConfig()
    regime_adaptation: RegimeAdaptationConfig = RegimeAdaptationConfig()


class RiskReportConfig(_Frozen):
    """The risk report: VaR backtests and circuit-breaker replays on a daily index series."""

    source: str = "data/samples/sp500_daily_close.csv.gz"
    date_column: str = "date"
    column: str = "SP500"
    var_start: str | None = None
    windows: dict[str, tuple[str, str]] = Field(
        default_factory=lambda: {
            "crisis_2008": ("2008-09-01", "2008-12-31"),
            "flash_crash_2010": ("2010-04-26", "2010-05-21"),
            "covid_2020": ("2020-02-18", "2020-04-15"),
            "calm_2017": ("2017-01-03", "2017-12-29"),
        }
    )
    # Daily bars: the regime windows of params.yaml are in (hourly) bars.
    regimes: RegimesConfig = RegimesConfig(
        garch_window_bars=500,
        garch_refit_bars=20,
        trend_window_bars=20,
        long_run_window_bars=252,
        recovery_bars=20,
        markov_probabilities=False,
    )
    cooldown_bars: Annotated[int, Field(ge=1)] = 1


class TrainingConfig(_Frozen):
    """RecurrentPPO hyper-parameters and the training budget."""

    total_timesteps: PositiveInt = 16_384
    n_envs: PositiveInt = 4
    n_steps: PositiveInt = 256
    batch_size: PositiveInt = 256
    n_epochs: PositiveInt = 4
    learning_rate: PositiveFloat = 3e-4
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.99
    gae_lambda: Annotated[float, Field(gt=0, le=1)] = 0.95
    clip_range: PositiveFloat = 0.2
    ent_coef: Annotated[float, Field(ge=0)] = 0.005
    lstm_hidden_size: PositiveInt = 32
    net_arch: tuple[PositiveInt, ...] = (64,)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: PositiveInt = 2
    max_grad_norm: PositiveFloat = 0.5
    entropy_floor: float = -0.25
    checkpoint_every: Annotated[int, Field(ge=0)] = 4096


class GateConfig(_Frozen):
    """What a model must show out of sample to become challenger or champion."""

    min_sharpe: float = 0.0
    max_drawdown: Fraction = 0.10
    max_daily_turnover: Annotated[float, Field(ge=0)] = 2.5
    min_trades: Annotated[int, Field(ge=0)] = 10
    min_walk_forward_pass_rate: Fraction = 0.6
    require_stress_survival: bool = True


class StageTargets(_Frozen):
    """A curriculum stage's target metrics, per episode (fractions)."""

    sharpe_ratio: float
    max_drawdown_pct: Fraction
    win_rate_pct: Fraction
    information_ratio: float | None = None
    calmar_ratio: float | None = None


class StageConstraints(_Frozen):
    """Training constraints of a stage: position size and turnover per bar (weights)."""

    max_position_size: Annotated[float, Field(gt=0, le=1)]
    turnover_limit: Annotated[float, Field(gt=0, le=2)]


class AdvancementCriteria(_Frozen):
    """What advancing out of a stage takes."""

    consecutive_passing_episodes: Annotated[int, Field(ge=1)] = 10
    out_of_sample_validation: bool = False
    multi_regime_validation: bool = False
    stress_test_passage: bool = False


CurriculumRegime = Literal[
    "low_volatility", "medium_volatility", "high_volatility", "all", "all_including_stress"
]


class CurriculumStage(_Frozen):
    """One stage of the curriculum (master plan, phase 4)."""

    name: str
    target_metrics: StageTargets
    market_regimes: tuple[CurriculumRegime, ...]
    training_constraints: StageConstraints
    minimum_episodes: Annotated[int, Field(ge=1)] = 50
    advancement_criteria: AdvancementCriteria = AdvancementCriteria()
    continuous_improvement: bool = False


class AdvancementGates(_Frozen):
    """How out-of-sample validation counts for advancement."""

    validation_method: Literal["walk_forward"] = "walk_forward"
    minimum_out_of_sample_periods: Annotated[int, Field(ge=1)] = 3
    confidence_threshold: Fraction = 0.95


class AdaptationTriggers(_Frozen):
    """Performance against target that triggers an adaptation."""

    consistent_overperformance: Annotated[float, Field(gt=1)] = 1.2
    consistent_underperformance: Annotated[float, Field(gt=0, lt=1)] = 0.8


AdaptationMethod = Literal[
    "transaction_cost_scaling",
    "market_regime_complexity",
    "position_size_constraints",
    "risk_budget_adjustment",
]


class DifficultyAdaptation(_Frozen):
    """Adaptive difficulty within a stage."""

    enabled: bool = True
    performance_window: Annotated[int, Field(ge=2)] = 20
    adaptation_triggers: AdaptationTriggers = AdaptationTriggers()
    adaptation_methods: tuple[AdaptationMethod, ...] = get_args(AdaptationMethod)


class CurriculumConfig(_Frozen):
    """The curriculum with performance gates (master plan, phase 4). Off by default."""

    enabled: bool = False
    architecture: Literal["multi_stage_adaptive"] = "multi_stage_adaptive"
    advancement_gates: AdvancementGates = AdvancementGates()
    stages: dict[str, CurriculumStage] = Field(default_factory=dict)
    difficulty_adaptation: DifficultyAdaptation = DifficultyAdaptation()

    @model_validator(mode="after")
    def _stages_when_enabled(self) -> CurriculumConfig:
        if self.enabled and not self.stages:
            raise ValueError("an enabled curriculum needs at least one stage")
        return self


class WalkForwardConfig(_Frozen):
    """Walk-forward validation over the development bars (the test window stays held out)."""

    scheme: Literal["expanding", "rolling"] = "expanding"
    fold_ids: tuple[Annotated[int, Field(ge=0)], ...] = (0, 1, 2)
    test_bars: Annotated[int, Field(ge=50)] = 1500
    train_bars: Annotated[int, Field(ge=100)] = 6000
    min_train_bars: Annotated[int, Field(ge=100)] = 2000
    purge_bars: Annotated[int, Field(ge=0)] = 1
    embargo_bars: Annotated[int, Field(ge=0)] = 48
    total_timesteps: PositiveInt = 8192
    confidence: Fraction = 0.95  # a fold's Sharpe is significant when its PSR reaches this

    @field_validator("fold_ids")
    @classmethod
    def _consecutive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or list(value) != list(range(len(value))):
            raise ValueError(f"fold_ids must be 0, 1, ..., n-1, got {list(value)}")
        return value


StressName = Literal[
    "market_crash_2008",
    "flash_crash_2010",
    "covid_volatility_2020",
    "volatility_x3",
    "correlation_breakdown",
    "liquidity_crisis",
]


class StressConfig(_Frozen):
    """Stress scenarios: real crises mapped onto the instrument, and synthetic shocks."""

    scenarios: tuple[StressName, ...] = get_args(StressName)
    crisis_windows: dict[str, tuple[str, str]] = Field(
        default_factory=lambda: {
            "market_crash_2008": ("2008-09-01", "2008-12-31"),
            "flash_crash_2010": ("2010-04-26", "2010-05-21"),
            "covid_volatility_2020": ("2020-02-18", "2020-04-15"),
        }
    )
    calm_reference: tuple[str, str] = ("2012-01-01", "2019-12-31")
    volatility_multiple: Annotated[float, Field(gt=1)] = 3.0
    liquidity_multiple: Annotated[float, Field(gt=1)] = 5.0
    max_drawdown: Fraction = 0.25


class ReportConfig(_Frozen):
    """Red-flag rules of the performance report (defaults: the master plan's standards)."""

    min_sharpe: float = 1.0  # "institutional minimum 1.0"
    max_drawdown: Fraction = 0.05  # "under 5% threshold"
    max_daily_turnover: Annotated[float, Field(ge=0)] = 2.0  # "target < 2x"
    min_win_rate: Fraction = 0.45
    min_explained_variance: float = 0.85  # phase 1 success criteria
    min_psr: Fraction = 0.95
    max_cost_share: Fraction = 0.5  # costs above this share of gross P&L
    rolling_sharpe_bars: Annotated[int, Field(ge=10)] = 168


class RegistryConfig(_Frozen):
    """MLflow names."""

    model_name: str = "ijules-policy"
    experiment: str = "ijules"


class DriftConfig(_Frozen):
    """Drift of the newest bars' features against the training window."""

    window_bars: Annotated[int, Field(ge=30)] = 500
    drift_share: Annotated[float, Field(gt=0, le=1)] = 0.5


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class NotifyConfig(_Frozen):
    """Who receives the nightly reports."""

    risk_team: tuple[str, ...] = ("risk-team@example.com",)
    sender: str = "ijules@localhost"

    @field_validator("risk_team")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one address is needed")
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"not an e-mail address: {address!r}")
        return value


class PathsConfig(_Frozen):
    """Where each stage reads and writes; dvc.yaml passes the same paths to every command."""

    staged: str = "data/staging/bars.parquet"
    ingest_report: str = "reports/ingest.json"
    bars: str = "data/raw/bars.parquet"
    validation: str = "reports/validation/result.json"
    features: str = "data/features/features.parquet"
    feature_meta: str = "data/features/meta.json"
    model_dir: str = "models"
    metrics: str = "reports/metrics.json"
    equity_curve: str = "reports/equity.csv"
    equity_plot: str = "reports/equity.png"
    registration: str = "reports/registry.json"
    drift_html: str = "reports/drift/drift.html"
    drift_snapshot: str = "reports/drift/snapshot.json"
    drift_metrics: str = "reports/drift/drift_metrics.json"
    mailbox: str = "var/mail"
    var_backtest: str = "reports/risk/var_backtest.json"
    breakers: str = "reports/risk/breakers.json"
    checkpoints: str = "var/checkpoints"
    walk_forward_folds: str = "reports/walk_forward/folds"
    walk_forward: str = "reports/walk_forward/summary.json"
    stress: str = "reports/stress.json"
    performance_report: str = "reports/performance_report.yaml"
    performance_html: str = "reports/performance_report.html"
    performance_rolling: str = "reports/performance_rolling.csv"


class Config(_Frozen):
    """Every run parameter, resolved from params.yaml and the selected phase overlay."""

    seed: Annotated[int, Field(ge=0)]
    phase: str = BASE_PHASE
    data: DataConfig
    quality: QualityConfig = QualityConfig()
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    environment: EnvironmentConfig = EnvironmentConfig()
    risk: RiskObservationConfig = RiskObservationConfig()
    safeguards: SafeguardsConfig = SafeguardsConfig()
    microstructure: MicrostructureConfig = MicrostructureConfig()
    regimes: RegimesConfig = RegimesConfig()
    risk_management: RiskManagementConfig = RiskManagementConfig()
    risk_models: RiskModelsConfig = RiskModelsConfig()
    portfolio_optimization: PortfolioOptimizationConfig = PortfolioOptimizationConfig()
    risk_report: RiskReportConfig = RiskReportConfig()
    training: TrainingConfig = TrainingConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    walk_forward: WalkForwardConfig = WalkForwardConfig()
    stress: StressConfig = StressConfig()
    gate: GateConfig = GateConfig()
    report: ReportConfig = ReportConfig()
    registry: RegistryConfig = RegistryConfig()
    drift: DriftConfig = DriftConfig()
    notify: NotifyConfig = NotifyConfig()
    paths: PathsConfig = PathsConfig()

    def digest(self) -> str:
        """Return a stable hash of the parameters that shape results (paths excluded)."""
        canonical = json.dumps(self.model_dump(mode="json", exclude={"paths"}), sort_keys=True)
        return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()


def available_phases(config_dir: Path) -> list[str]:
    """List the overlays in ``config_dir``."""
    return sorted(path.stem for path in config_dir.glob("*.yaml"))


def load_config(params_path: Path = Path("params.yaml"), phase: str | None = None) -> Config:
    """Parse ``params_path`` and the selected phase overlay into a frozen :class:`Config`.

    Raises
    ------
    ConfigError
        With a one-line message naming the file and the key at fault.
    """
    raw = _read_mapping(params_path)
    _refuse_planned(raw, params_path)
    selected = phase if phase is not None else raw.get("phase", BASE_PHASE)
    if not isinstance(selected, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", selected):
        raise ConfigError(f"{params_path}: phase must be a preset name, got {selected!r}")
    config_dir = params_path.parent / "config"
    overlay_path = config_dir / f"{selected}.yaml"
    if not overlay_path.is_file():
        known = ", ".join(available_phases(config_dir)) or "none"
        raise ConfigError(f"unknown phase {selected!r}: no {overlay_path} (known: {known})")
    overlay = _read_mapping(overlay_path, allow_empty=True)
    if "phase" in overlay:
        raise ConfigError(f"{overlay_path}: an overlay cannot set 'phase'")
    _refuse_planned(overlay, overlay_path)
    merged = _deep_merge(raw, overlay)
    merged["phase"] = selected
    try:
        # JSON mode keeps strict typing (no "yes" -> True) while accepting YAML lists as tuples.
        return Config.model_validate_json(json.dumps(merged, default=str))
    except ValidationError as err:
        sources = str(params_path) if selected == BASE_PHASE else f"{params_path} + {overlay_path}"
        raise ConfigError(f"{sources}: {_describe(err)}") from None


def _read_mapping(path: Path, *, allow_empty: bool = False) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"parameter file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML") from None
    if loaded is None and allow_empty:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of parameters at the top level")
    return loaded


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, Mapping):
            keys.extend(_flatten(value, f"{dotted}."))
    return keys


def _refuse_planned(mapping: Mapping[str, Any], source: Path) -> None:
    for dotted in _flatten(mapping):
        for prefix, owner in PLANNED_KEYS.items():
            if dotted == prefix or dotted.startswith(prefix + "."):
                raise ConfigError(
                    f"{source}: '{prefix}' is not implemented yet ({owner}); "
                    "remove it or select another phase"
                )


def _deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _describe(err: ValidationError) -> str:
    parts = []
    for issue in err.errors():
        where = ".".join(str(part) for part in issue["loc"]) or "(top level)"
        if issue["type"] == "extra_forbidden":
            parts.append(f"unknown key '{where}'")
        elif issue["type"] == "missing":
            parts.append(f"missing key '{where}'")
        else:
            message = issue["msg"].removeprefix("Value error, ")
            parts.append(f"'{where}': {message} (got {issue.get('input')!r})")
    return "; ".join(parts)
