"""Configuration of evaluation: walk-forward, stress, the risk report, thresholds and red flags."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from ijules.execution.config import AssetClass
from ijules.frozen import Fraction, Frozen, PositiveFloat, PositiveInt
from ijules.market.config import RegimesConfig


class WalkForwardConfig(Frozen):
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


class StressConfig(Frozen):
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
    # The correlation breakdown's stretch, as fractions of the window (start, end): the signal is
    # forced on only there, so the agent trades before it, is halted through it and trades again
    # once the halt lifts after it (a breakdown forced on throughout halts every agent throughout).
    correlation_breakdown_span: tuple[Fraction, Fraction] = (1 / 3, 2 / 3)
    max_drawdown: Fraction = 0.25

    @field_validator("correlation_breakdown_span")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        start, end = value
        if not start < end:
            raise ValueError(f"correlation_breakdown_span must start before it ends, got {value}")
        return value


class RiskReportConfig(Frozen):
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


class GateConfig(Frozen):
    """What a model must show out of sample to become challenger or champion."""

    min_sharpe: float = 0.0  # the Sharpe ratio must be above it (a flat agent has exactly 0)
    max_drawdown: Fraction = 0.10
    max_daily_turnover: Annotated[float, Field(ge=0)] = 2.5
    min_trades: Annotated[int, Field(ge=0)] = 10
    min_walk_forward_pass_rate: Fraction = 0.6
    require_stress_survival: bool = True
    # The agent's Sharpe ratio must reach passive buy-and-hold's and the best simple rule's.
    beat_passive_buy_and_hold: bool = True
    beat_best_rule: bool = True
    # One fill of the whole capital may cost at most this (bps): above it the cost model itself
    # is suspect (no volume data, a wrong liquidity setting) and no figure built on it is trusted.
    max_full_capital_fill_cost_bps: PositiveFloat = 100.0
    # Significance on the test window: the probabilistic Sharpe ratio against 0, and the
    # deflated one against the best of the trials tried (Bailey & Lopez de Prado).
    min_psr: Fraction = 0.95
    min_dsr: Fraction = 0.95
    # The Basel zone of a rolling historical VaR of the agent's own per-bar returns.
    var_confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.99
    max_var_zone: Literal["green", "yellow"] = "yellow"
    # A candidate replaces the champion only with a Sharpe ratio this much higher on the same
    # bars and a one-sided paired t-test of the per-bar returns at most this p-value.
    champion_margin: Annotated[float, Field(ge=0)] = 0.25
    champion_max_p_value: Fraction = 0.10


class TsmomConfig(Frozen):
    """Time-series momentum (Moskowitz, Ooi & Pedersen 2012): the sign of the trailing return,
    sized to a volatility target."""

    horizon_bars: PositiveInt = 168
    volatility_target: Annotated[float, Field(gt=0, le=2)] = 0.15  # annualised
    volatility_bars: Annotated[int, Field(ge=2)] = 168


class MacdConfig(Frozen):
    """The normalised MACD trend signal of Baz et al. (2015), averaged over time-scale pairs
    (short, long EWMA spans in bars), sized to a volatility target."""

    pairs: tuple[tuple[PositiveInt, PositiveInt], ...] = ((8, 24), (16, 48), (32, 96))
    price_window_bars: Annotated[int, Field(ge=2)] = 63
    signal_window_bars: Annotated[int, Field(ge=2)] = 252
    volatility_target: Annotated[float, Field(gt=0, le=2)] = 0.15
    volatility_bars: Annotated[int, Field(ge=2)] = 168

    @field_validator("pairs")
    @classmethod
    def _short_before_long(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        if not value or any(short >= long for short, long in value):
            raise ValueError(f"each pair must be (short, long) with short < long, got {value}")
        return value


class SeedsConfig(Frozen):
    """The agent over several training seeds: ``seed``, ``seed + 1``, ... (the first is the
    registered policy); the gate reads the lower bound of their mean Sharpe ratio."""

    count: Annotated[int, Field(ge=1)] = 5
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95  # one-sided


TUNABLE_SECTIONS = ("training", "environment", "reward")  # what a trial may change


class SearchDimension(Frozen):
    """One tuned parameter: a range (``low``..``high``, ``log`` scale, ``integer`` steps) or a
    list of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[str | float, ...] | None = None

    @model_validator(mode="after")
    def _a_range_or_choices(self) -> SearchDimension:
        ranged = self.low is not None and self.high is not None
        if ranged == (self.choices is not None) or (self.low is None) != (self.high is None):
            raise ValueError("give low and high, or choices (not both)")
        if ranged and not self.low < self.high:  # type: ignore[operator]
            raise ValueError(f"low {self.low} must be below high {self.high}")
        if ranged and self.log and self.low <= 0:  # type: ignore[operator]
            raise ValueError("a log-scale range must be positive")
        return self


class TuningConfig(Frozen):
    """The hyper-parameter search (Optuna): TPE over ``space``, each trial trained and scored on
    the walk-forward folds of the development bars (never the test window), ``seeds`` training
    seeds per fold, pruned (median rule) after ``prune_after_folds`` folds once
    ``startup_trials`` trials have finished. ``storage`` is the study's database URL (SQLite
    here, PostgreSQL for several workers); the study runs until it holds ``trials`` trials."""

    trials: PositiveInt = 2
    seeds: PositiveInt = 1
    total_timesteps: PositiveInt = 16384
    storage: str = "sqlite:///var/optuna/tuning.db"
    study: str = "ijules"
    startup_trials: Annotated[int, Field(ge=0)] = 4
    prune_after_folds: Annotated[int, Field(ge=0)] = 1
    space: dict[str, SearchDimension] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _tunable(cls, value: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        for key in value:
            if key.split(".", 1)[0] not in TUNABLE_SECTIONS or "." not in key:
                raise ValueError(
                    f"space: {key!r} is not a key of {', '.join(TUNABLE_SECTIONS)} (the features "
                    "are fixed for a study)"
                )
        return value


class ResearchInstrumentConfig(Frozen):
    """One instrument of the research pool: its bars, market calendar and cost class."""

    source: str
    calendar: str = "continuous"
    asset_class: AssetClass = "crypto"


class ResearchConfig(Frozen):
    """The research study (``ijules research``): one policy pooled over ``instruments``, each
    prepared from its own bars like the pipeline's (ingest, checks, features, splits); an Optuna
    study of ``trials`` trials over ``tuning.space``, each trained with ``seeds`` seeds per fold
    and scored on every instrument's walk-forward folds (``fold_ids``, ``test_bars`` each, the
    rest of ``walk_forward`` as configured); then the best configuration trained ``final_seeds``
    times on the development bars and tested once on each instrument's held-out test window."""

    instruments: dict[str, ResearchInstrumentConfig] = Field(default_factory=dict)
    trials: PositiveInt = 20
    seeds: PositiveInt = 2
    total_timesteps: PositiveInt = 32768
    final_seeds: PositiveInt = 3
    fold_ids: tuple[Annotated[int, Field(ge=0)], ...] = (0, 1)
    test_bars: Annotated[int, Field(ge=50)] = 800
    storage: str = "sqlite:///var/optuna/research.db"


class BaselinesConfig(Frozen):
    """The simple rules the agent is judged against, beside passive buy-and-hold."""

    tsmom: TsmomConfig = TsmomConfig()
    macd: MacdConfig = MacdConfig()


class ReportConfig(Frozen):
    """Red-flag rules of the performance report (defaults: the master plan's standards)."""

    min_sharpe: float = 1.0  # "institutional minimum 1.0"
    max_drawdown: Fraction = 0.05  # "under 5% threshold"
    max_daily_turnover: Annotated[float, Field(ge=0)] = 2.0  # "target < 2x"
    min_win_rate: Fraction = 0.45
    min_explained_variance: float = 0.85  # phase 1 success criteria
    min_psr: Fraction = 0.95
    max_cost_share: Fraction = 0.5  # costs above this share of gross P&L
    rolling_sharpe_bars: Annotated[int, Field(ge=10)] = 168
