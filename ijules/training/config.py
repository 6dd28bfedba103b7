"""Configuration of training: RecurrentPPO's hyper-parameters and budget, and the curriculum."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from ijules.frozen import Fraction, Frozen, PositiveFloat, PositiveInt


class TrainingConfig(Frozen):
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


class StageTargets(Frozen):
    """A curriculum stage's target metrics, per episode (fractions)."""

    sharpe_ratio: float
    max_drawdown_pct: Fraction
    win_rate_pct: Fraction
    information_ratio: float | None = None
    calmar_ratio: float | None = None


class StageConstraints(Frozen):
    """Training constraints of a stage: position size and turnover per bar (weights)."""

    max_position_size: Annotated[float, Field(gt=0, le=1)]
    turnover_limit: Annotated[float, Field(gt=0, le=2)]


class AdvancementCriteria(Frozen):
    """What advancing out of a stage takes."""

    consecutive_passing_episodes: Annotated[int, Field(ge=1)] = 10
    out_of_sample_validation: bool = False
    multi_regime_validation: bool = False
    stress_test_passage: bool = False


CurriculumRegime = Literal[
    "low_volatility", "medium_volatility", "high_volatility", "all", "all_including_stress"
]


class CurriculumStage(Frozen):
    """One stage of the curriculum (master plan, phase 4)."""

    name: str
    target_metrics: StageTargets
    market_regimes: tuple[CurriculumRegime, ...]
    training_constraints: StageConstraints
    minimum_episodes: Annotated[int, Field(ge=1)] = 50
    advancement_criteria: AdvancementCriteria = AdvancementCriteria()
    continuous_improvement: bool = False


class AdvancementGates(Frozen):
    """How the out-of-sample validation of an advancement is judged: the validation window is
    cut into consecutive periods, each of which must meet the stage's targets, and the whole
    window's Sharpe ratio must beat the stage's target with this probability (PSR)."""

    minimum_out_of_sample_periods: Annotated[int, Field(ge=1)] = 3
    confidence_threshold: Fraction = 0.95


class AdaptationTriggers(Frozen):
    """Performance against target that triggers an adaptation."""

    consistent_overperformance: Annotated[float, Field(gt=1)] = 1.2
    consistent_underperformance: Annotated[float, Field(gt=0, lt=1)] = 0.8


AdaptationMethod = Literal[
    "transaction_cost_scaling",
    "market_regime_complexity",
    "position_size_constraints",
    "risk_budget_adjustment",
]


class DifficultyAdaptation(Frozen):
    """Adaptive difficulty within a stage."""

    enabled: bool = True
    performance_window: Annotated[int, Field(ge=2)] = 20
    adaptation_triggers: AdaptationTriggers = AdaptationTriggers()
    adaptation_methods: tuple[AdaptationMethod, ...] = get_args(AdaptationMethod)


class CurriculumConfig(Frozen):
    """The curriculum with performance gates (master plan, phase 4). Off by default."""

    enabled: bool = False
    advancement_gates: AdvancementGates = AdvancementGates()
    stages: dict[str, CurriculumStage] = Field(default_factory=dict)
    difficulty_adaptation: DifficultyAdaptation = DifficultyAdaptation()

    @model_validator(mode="after")
    def _stages_when_enabled(self) -> CurriculumConfig:
        if self.enabled and not self.stages:
            raise ValueError("an enabled curriculum needs at least one stage")
        return self
