"""The JSON files stages hand each other, as typed models: one writer, every reader through them.

Each file a stage writes and another stage (or the summary, the e-mail, the command line) reads
is an :class:`Artifact`: its producer builds the model and writes it with :meth:`Artifact.write`
(atomically, NaN and inf refused); its consumers read it with :meth:`Artifact.read` and use
attributes, so renaming a field is a type error in every reader rather than a ``KeyError`` at
run time. A missing file or one that does not hold what its writer writes raises
:class:`~ijules.errors.ArtifactError` naming the file, the key and the command that writes it.

The JSON keeps the keys, order and values the stages wrote as plain dicts: fields are declared
in file order, and a field that was absent rather than null stays absent when unset. The names
of the files the code fixes (the policy's two files, the walk-forward fold files) are defined
here once; the other paths come from ``params.yaml``'s ``paths`` section.

Models are frozen, strict (no ``"1"`` for 1) and refuse unknown keys, like the configuration;
they derive from :class:`Record` rather than :class:`ijules.frozen.Frozen`, which stays the mark
of a configuration section.

==========================================  ========================  =============================
File (default path)                         Model                     Written by
==========================================  ========================  =============================
``reports/ingest.json``                     ``IngestReport``          ``ijules ingest``
``reports/validation/result.json``          ``ValidationResult``      ``ijules validate``
``data/features/meta.json``                 ``FeatureSet``            ``ijules features``
``models/policy.json``                      ``PolicyRecord``          ``ijules train``
``risk_engine.json`` (served model)         ``RiskEngineParameters``  ``ijules train``
``reports/metrics.json``                    ``MetricsReport``         ``ijules evaluate``
``reports/walk_forward/folds/fold_k.json``  ``FoldResult``            ``ijules walk-forward-fold``
``reports/walk_forward/summary.json``       ``WalkForwardSummary``    ``ijules walk-forward``
``reports/stress.json``                     ``StressReport``          ``ijules stress``
``reports/registry.json``                   ``Registration``          ``ijules register``
``review/card_facts.json`` (run artifact)   ``ModelCardFacts``        ``ijules register``
``reports/baseline/v<N>.json``              ``BaselineReproduction``  ``ijules baseline reproduce``
``reports/phases/summary.json``             ``PhasesSummary``         ``ijules phases``
``reports/drift/drift_metrics.json``        ``DriftSummary``          ``ijules drift``
``reports/paper/night.json``                ``PaperReport``           ``ijules paper``
``reports/risk/var_backtest.json``          ``VarBacktestReport``     ``ijules risk-report``
``reports/risk/breakers.json``              ``BreakersReport``        ``ijules risk-report``
==========================================  ========================  =============================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar, get_args

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
)

from ijules.errors import ArtifactError
from ijules.io import write_json

# File names the code fixes (every other path is configured).
POLICY_ZIP = "policy.zip"
POLICY_SPEC = "policy.json"
RESEARCH_SUMMARY = "summary.json"  # in paths.research, beside RESEARCH_REPORT
RESEARCH_REPORT = "report.html"
CARD_FACTS = "card_facts.json"  # the model card's facts, in the run's review artifacts


def fold_file(fold: int) -> str:
    """The name of walk-forward fold ``fold``'s result file."""
    return f"fold_{fold}.json"


# Names shared with the simulator, defined here because the files record them.
Window = Literal["train", "validation", "test"]
CostComponent = Literal[
    "fixed", "proportional", "tick", "temporary_impact", "permanent_impact", "capacity"
]
RiskFeature = Literal[
    "portfolio_heat_ratio",
    "concentration_ratio",
    "drawdown_velocity",
    "var_breach_indicator",
    "correlation_breakdown",
]
WINDOWS: tuple[Window, ...] = get_args(Window)

_MAX_ERRORS = 3


def _absent(value: object) -> bool:
    return value is None


def _empty(value: object) -> bool:
    return not value


def _omitted_when_none() -> Any:
    """A field that the file leaves out (rather than writing null) when it has no value."""
    return Field(default=None, exclude_if=_absent)


class Record(BaseModel):
    """A part of an artifact: frozen, strictly typed, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Artifact(Record):
    """A JSON file a stage writes and others read."""

    written_by: ClassVar[str]  # the command that writes it, quoted when it is missing or invalid

    @classmethod
    def read(cls, path: Path) -> Self:
        """Read ``path``; a missing or ill-formed file raises :class:`ArtifactError`."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ArtifactError(f"{path} not found (run `{cls.written_by}` first)") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            raise ArtifactError(
                f"{path} is not a valid {cls.__name__} ({_describe(error)}); "
                f"rerun `{cls.written_by}`"
            ) from None

    @classmethod
    def read_if_present(cls, path: Path | None) -> Self | None:
        """Read ``path`` if it names a file; None if it is None or there is no file there."""
        return cls.read(path) if path is not None and path.is_file() else None

    def write(self, path: Path) -> None:
        """Write the artifact to ``path`` as indented JSON, atomically; NaN and inf are refused."""
        write_json(path, self.model_dump())


def _describe(error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    parts = [
        f"{'.'.join(str(p) for p in problem['loc']) or 'the document'}: {problem['msg']}"
        for problem in problems[:_MAX_ERRORS]
    ]
    more = len(problems) - _MAX_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# --- ingest -----------------------------------------------------------------------------------


class CleaningCounts(Record):
    """What the cleaning policy changed, bar by bar."""

    rows_out_of_order: int = 0
    duplicates_dropped: int = 0
    duplicates_conflicting: int = 0
    off_grid_dropped: int = 0


class BarFormation(Record):
    """How ingest formed the staged bars from the source's rows."""

    source_rows: Literal["bars", "trades"]
    bar_type: Literal["time", "volume", "dollar"]
    frequency: str | None = _omitted_when_none()  # time bars
    threshold: float | None = _omitted_when_none()  # volume and dollar bars
    trades_aggregated: int | None = _omitted_when_none()  # trades that made the bars
    trades_in_open_bar: int | None = _omitted_when_none()  # after the last closed bar: left out
    derived_ohlc_bars: int = 0  # bars whose open, high and low were derived from close
    volume_data: bool = True  # False: the source has none (the bars' volume is NaN)


class IngestReport(Artifact):
    """What ingest read and wrote (``reports/ingest.json``)."""

    written_by = "ijules ingest"

    source: str
    files: list[str]
    rows_read: int
    rows_other_symbols: int
    rows_outside_window: int
    rows_written: int
    # The instant the history was staged as of (absent: the source's whole history), the rows not
    # yet known then (a bar not closed by it, a trade after it) and, in a landing folder, the
    # deliveries dated after it, which were not read.
    as_of: str | None = _omitted_when_none()
    rows_after_as_of: int | None = _omitted_when_none()
    deliveries_after_as_of: int | None = _omitted_when_none()
    first_bar: str | None
    last_bar: str | None
    cleaning: CleaningCounts = CleaningCounts()
    # Absent from reports written before bars could be formed from trades or close-only series.
    bars: BarFormation | None = _omitted_when_none()
    rows_by_symbol: dict[str, int] | None = _omitted_when_none()


# --- validation -------------------------------------------------------------------------------


class RuleOutcome(Record):
    """One failed rule: its GX expectations merged, with example rows."""

    rule: str
    description: str
    severity: str
    unexpected_count: int
    examples: list[str] = []

    def one_line(self) -> str:
        """Summarise the failure in one line."""
        shown = "; ".join(self.examples)
        count = f"{self.unexpected_count} row(s)" if self.unexpected_count else "table"
        return f"{self.rule} [{self.description}]: {count}" + (f" e.g. {shown}" if shown else "")


class ValidationReport(Record):
    """The outcome of one validation run."""

    staged: str
    rows: int
    success: bool
    failures: list[RuleOutcome]
    warnings: list[RuleOutcome]
    evaluated_expectations: int
    successful_expectations: int


class ValidationResult(Artifact):
    """Our report and Great Expectations' own result (``reports/validation/result.json``)."""

    written_by = "ijules validate"

    summary: ValidationReport
    great_expectations: dict[str, JsonValue]


# --- features ---------------------------------------------------------------------------------


class NormStats(Record):
    """Per-feature mean and standard deviation fitted on the train window."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, values: npt.NDArray[np.float64]) -> NormStats:
        """Fit on ``values`` (rows x features); a constant feature keeps a std of 1."""
        std = values.std(axis=0)
        return cls(mean=tuple(values.mean(axis=0)), std=tuple(np.where(std > 0, std, 1.0)))

    def apply(self, values: npt.NDArray[np.float64], clip: float) -> npt.NDArray[np.float32]:
        """Standardise ``values`` (rows x features) and clip them to +-``clip``."""
        scaled = (values - np.asarray(self.mean)) / np.asarray(self.std)
        return np.asarray(np.clip(scaled, -clip, clip), dtype=np.float32)


class WindowSpan(Record):
    """First and last bar of a window, and its size."""

    start: str
    end: str
    rows: int


class FitCounts(Record):
    """How a regime model's refits went (:mod:`ijules.market.volatility`): how many, how many
    failed (their previous parameters were kept), how many sit on the persistence cap."""

    refits: int
    failed: int
    at_persistence_bound: int


class RegimeFitCounts(Record):
    """The GARCH and (when on) Markov-switching refits of one instrument's regimes."""

    garch: FitCounts
    markov: FitCounts | None


class FeatureSet(Artifact):
    """Metadata of a feature file: names, normalisation and the time split (``meta.json``).

    With several instruments ``norm`` holds every instrument's features in turn, in the order of
    ``symbols`` (the market's), each fitted on that instrument's own train bars.
    """

    written_by = "ijules features"

    feature_names: tuple[str, ...]
    norm: NormStats
    windows: dict[Window, WindowSpan]
    bars_per_year: float
    frequency: str
    calendar: str | dict[str, str]  # one for every symbol, or one per symbol
    symbol: str | tuple[str, ...]  # one instrument, or several (the feature table's symbol column)
    clip_zscore: float
    regime_fits: dict[str, RegimeFitCounts]  # by symbol

    @property
    def symbols(self) -> tuple[str, ...]:
        """The instruments of the feature table, in the order the market lists them."""
        return (self.symbol,) if isinstance(self.symbol, str) else self.symbol


# --- the trained policy -----------------------------------------------------------------------


class PolicySpec(Record):
    """How a policy sees the market; saved beside its weights and frozen at evaluation.

    Evaluation, registry comparisons and serving build observations from this spec (features,
    normalisation, risk features), never from whatever the configuration says today.
    """

    feature_names: tuple[str, ...]
    norm: NormStats
    clip_zscore: float
    instruments: tuple[str, ...]
    risk_features: tuple[RiskFeature, ...]
    action_space: Literal["discrete", "continuous"]
    observation_shape: tuple[int, ...]
    action_shape: tuple[int, ...]
    # Annualised volatility a unit action runs at (None: a unit action is the position limit).
    volatility_target: float | None = _omitted_when_none()


class MlflowRecord(Record):
    """The MLflow run that trained the policy, and the logged model once it is logged."""

    run_id: str
    tracking_uri: str
    model_uri: str | None = _omitted_when_none()


class TrainingRecord(Record):
    """How training went."""

    device: str
    timesteps: int
    resumed_from: int
    diagnostics: dict[str, float]
    curriculum_stage: str | None


class PolicyRecord(Artifact):
    """The policy's spec, its MLflow lineage and its training record (``policy.json``)."""

    written_by = "ijules train"

    spec: PolicySpec
    mlflow: MlflowRecord
    training: TrainingRecord


class RiskEngineParameters(Artifact):
    """The limits' and the risk engine's parameters of the environment a policy was trained in
    (``risk_engine.json``, beside the served model's weights): the served policy passes every
    action through the risk engine with them."""

    written_by = "ijules train"

    params: dict[str, JsonValue]


# --- the test-window evaluation ---------------------------------------------------------------


class PerformanceMetrics(Record):
    """Every headline metric of one backtest. Fractions, not percent."""

    total_return: float
    annualised_return: float
    annualised_volatility: float
    sharpe: float
    sharpe_psr: float
    sortino: float
    calmar: float
    sterling: float
    omega: float
    information_ratio: float
    tail_ratio: float
    skewness: float
    excess_kurtosis: float
    var_95: float
    es_95: float
    max_drawdown: float
    max_drawdown_bars: int
    win_rate: float
    profit_factor: float
    daily_turnover: float
    num_trades: int
    num_round_trips: int
    avg_holding_bars: float
    total_cost: float
    traded_notional: float
    cost_bps: float  # average cost of a fill, in bps of its notional (total cost / notional)
    exposure: float
    bars: int

    def stage_targets(self) -> dict[str, float]:
        """The metrics under the names the curriculum's stage targets use (plan, phase 4)."""
        return {
            "sharpe_ratio": self.sharpe,
            "max_drawdown_pct": self.max_drawdown,
            "win_rate_pct": self.win_rate,
            "information_ratio": self.information_ratio,
            "calmar_ratio": self.calmar,
        }


class Significance(Record):
    """PSR against 0, the minimum track record (bars) for 95% (None when the Sharpe ratio is not
    above 0), and the t-test of the mean return."""

    sharpe_per_bar: float
    skewness: float
    kurtosis: float
    observations: int
    psr: float
    min_track_record_bars: float | None
    t_statistic: float
    p_value: float
    cohens_d: float


class RiskEngineSummary(Record):
    """The risk engine's changes of state (by reason) and its refusals, over a window."""

    state_changes: int
    by_reason: dict[str, int]
    refusals: dict[str, int]


class Attribution(Record):
    """Risk attribution of a backtest; only the components asked for are present."""

    beta: float | None = _omitted_when_none()
    systematic_risk_share: float | None = _omitted_when_none()
    idiosyncratic_risk_share: float | None = _omitted_when_none()
    timing_pnl: float | None = _omitted_when_none()
    sizing_pnl: float | None = _omitted_when_none()
    timing_share: float | None = _omitted_when_none()
    sizing_share: float | None = _omitted_when_none()


class BacktestMetrics(PerformanceMetrics):
    """One backtest of the test window: its metrics, significance, costs and risk record."""

    significance: Significance
    costs: dict[CostComponent, float]
    exit_costs: dict[CostComponent, float]
    risk_engine: RiskEngineSummary
    attribution: Attribution | None = _omitted_when_none()


class ModelRef(Record):
    """The MLflow run of the model a report describes."""

    run_id: str


FillAt = Literal["next_open", "this_close"]


class EvaluationWindow(Record):
    """The window a report covers, the costs it was run with and when trades fill."""

    name: Window
    start: str
    end: str
    bars: int
    bars_per_year: float
    costs: str
    fill_at: FillAt
    # One fill of the initial capital on the window's median bar, per instrument (bps).
    full_capital_fill_bps: dict[str, float]


BacktestRecord = TypeVar("BacktestRecord", bound=Record)


class Baselines(Record, Generic[BacktestRecord]):
    """The benchmark and the rules the agent is judged against (see
    :mod:`ijules.evaluation.baselines`), by name."""

    passive_buy_and_hold: BacktestRecord
    risk_managed_long: BacktestRecord
    tsmom: BacktestRecord
    macd: BacktestRecord
    flat: BacktestRecord
    random: BacktestRecord

    def by_name(self) -> dict[str, BacktestRecord]:
        """Each baseline by name, in file order."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class MetricsReport(Artifact):
    """The agent and its baselines on the test window (``reports/metrics.json``); the agent is
    judged against passive buy-and-hold and against the best rule (``best_rule``)."""

    written_by = "ijules evaluate"

    model: ModelRef
    window: EvaluationWindow
    agent: BacktestMetrics
    baselines: Baselines[BacktestMetrics]
    best_rule: str

    def backtests(self) -> dict[str, BacktestMetrics]:
        """Every backtest by name, the agent first (file order)."""
        return {"agent": self.agent, **self.baselines.by_name()}


# --- seeds ------------------------------------------------------------------------------------


class SeedRun(Record):
    """One training seed's policy on the test window, after costs."""

    seed: int
    run_id: str
    sharpe: float
    total_return: float
    max_drawdown: float
    daily_turnover: float
    num_trades: int
    cost_bps: float


class SeedSpread(Artifact):
    """The agent over training seeds on the test window (``reports/seeds.json``): the spread
    of its figures and the conservative ones the gate reads."""

    written_by = "ijules seeds"

    model: ModelRef  # the registered policy: the first seed
    window: str
    confidence: float
    runs: list[SeedRun]
    mean_sharpe: float
    std_sharpe: float | None  # None with one seed
    sharpe_lower_bound: float  # one-sided, at ``confidence``; the mean itself with one seed
    # What the gate reads: the lower bound (or the registered policy's Sharpe if lower), and
    # the worst seed's drawdown, turnover and trade count.
    sharpe: float
    max_drawdown: float
    daily_turnover: float
    num_trades: int


# --- tuning -------------------------------------------------------------------------------------


class TrialRow(Record):
    """One trial of the study: what it tried and how it scored on the walk-forward folds."""

    number: int
    state: Literal["COMPLETE", "PRUNED", "FAIL"]
    params: dict[str, str | float | int]
    value: float | None  # the mean fold Sharpe (None when pruned or failed)
    fold_sharpes: list[float]  # each fold's Sharpe, averaged over the seeds (the folds it ran)
    # Per bar, for the trial ledger's spread (research: each instrument's fold in turn); left out
    # of the file when empty (reports written before it was kept).
    fold_sharpes_per_bar: list[float] = Field(default_factory=list, exclude_if=_empty)
    params_md5: str  # the trial's policy configuration (what the trial count counts)
    run_id: str


class TuningReport(Artifact):
    """The hyper-parameter study (``reports/tuning/study.json``): every trial, and the best."""

    written_by = "ijules tune"

    study: str
    trials: int  # finished trials (complete, pruned or failed): the count the DSR deflates by
    complete: int
    pruned: int
    seeds: int
    folds: int
    total_timesteps: int
    best_number: int | None
    best_value: float | None
    best_params: dict[str, str | float | int]
    rows: list[TrialRow]


# --- research -----------------------------------------------------------------------------------


class ResearchEntry(Record):
    """One strategy over one instrument's window, after costs."""

    sharpe: float  # annualised
    psr: float  # P(true Sharpe > 0)
    dsr: float | None  # the agent's PSR against the best of the trials (None for benchmarks)
    total_return: float
    max_drawdown: float
    daily_turnover: float
    num_trades: int
    costs: float  # USD
    cost_share: float | None  # costs / gross P&L (None: the gross P&L was not positive)


class ResearchFold(Record):
    """One walk-forward fold of one instrument under the best configuration."""

    fold: int
    test_first: str
    test_last: str
    agent: ResearchEntry  # the seeds' policies side by side, capital split equally
    seed_sharpes: list[float]
    benchmarks: dict[str, ResearchEntry]


class ResearchInstrument(Record):
    """One instrument of the pool: its held-out test window, walk-forward and ablations."""

    symbol: str
    test_first: str
    test_last: str
    test_bars: int
    agent: ResearchEntry  # the pooled policy's seeds side by side, capital split equally
    seed_sharpes: list[float]
    benchmarks: dict[str, ResearchEntry]  # passive buy-and-hold and the rules, same bars and costs
    best_rule: str
    beats_passive: bool
    beats_best_rule: bool
    walk_forward: list[ResearchFold]
    # Ablations, same seeds and bars: positions sized to the volatility target against the
    # plain limit (the sizing effect), and a policy trained on this instrument alone.
    without_volatility_target: ResearchEntry
    trained_alone: ResearchEntry


class ResearchSummary(Artifact):
    """The research study (``reports/research/summary.json``): every configuration tried on the
    walk-forward folds of every instrument, and the best one on each held-out test window."""

    written_by = "ijules research"

    study: str
    instruments: list[str]
    trials: int  # finished trials: the count every deflated Sharpe ratio here deflates by
    complete: int
    pruned: int
    seeds: int  # per trial and fold
    folds: int
    total_timesteps: int  # per trial, fold and seed
    final_seeds: int
    final_timesteps: int
    best_number: int
    best_value: float
    best_params: dict[str, str | float | int]
    trial_sharpe_variance: float  # variance of the trials' per-bar Sharpe ratios (for the DSR)
    rows: list[TrialRow]
    results: dict[str, ResearchInstrument]
    conclusion: str


# --- walk-forward -----------------------------------------------------------------------------


class Fold(Record):
    """Row ranges [start, end) of one fold, in development-bar positions."""

    fold: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


class FoldWindow(Fold):
    """A fold's ranges with their first and last bars, and the gap between train and test."""

    train_first: str
    train_last: str
    test_first: str
    test_last: str
    purge_bars: int
    embargo_bars: int
    full_capital_fill_bps: dict[str, float]


class FoldTraining(Record):
    """The fold's training run."""

    timesteps: int
    run_id: str


class FoldBacktest(Record):
    """One backtest of a fold's test stretch: headline metrics, significance, costs (USD)."""

    sharpe: float
    max_drawdown: float
    daily_turnover: float
    total_return: float
    num_trades: int
    win_rate: float
    significance: Significance
    costs: float
    cost_bps: float

    def headline(self) -> dict[str, float]:
        """The headline metrics by name (as logged to MLflow)."""
        return {
            "sharpe": self.sharpe,
            "max_drawdown": self.max_drawdown,
            "daily_turnover": self.daily_turnover,
            "total_return": self.total_return,
            "num_trades": float(self.num_trades),
            "win_rate": self.win_rate,
        }


class FoldResult(Artifact):
    """One walk-forward fold (``reports/walk_forward/folds/fold_k.json``)."""

    written_by = "ijules walk-forward-fold"

    fold: int
    scheme: str
    window: FoldWindow
    training: FoldTraining
    agent: FoldBacktest
    baselines: Baselines[FoldBacktest]
    best_rule: str
    passed: bool
    reasons: list[str]


class TargetTest(Record):
    """The plan's one-sample t-test of values against a target, with Cohen's d."""

    mean: float
    target: float
    t_statistic: float
    p_value: float
    cohens_d: float
    significant: bool
    practically_significant: bool


class FoldRow(Record):
    """One fold in the walk-forward table."""

    fold: int
    test_first: str
    test_last: str
    agent_sharpe: float
    passive_sharpe: float
    best_rule: str
    best_rule_sharpe: float
    agent_max_drawdown: float
    passive_max_drawdown: float
    agent_daily_turnover: float
    passive_daily_turnover: float
    agent_total_return: float
    passive_total_return: float
    psr: float
    dsr: float
    sharpe_benchmark_per_bar: float
    significant: bool
    passed: bool
    reasons: list[str]


class WalkForwardSummary(Artifact):
    """The walk-forward table: pass rate, PSR and DSR (``reports/walk_forward/summary.json``)."""

    written_by = "ijules walk-forward"

    params_md5: str
    scheme: str
    folds: int
    folds_passed: int
    pass_rate: float
    required_pass_rate: float
    confidence: float
    folds_significant: int
    trials: int
    # The variance of per-fold per-bar Sharpe ratios over the trials (None: too few measured;
    # the Sharpe estimator's own variance stood in).
    trial_sharpe_variance: float | None
    mean_agent_sharpe: float
    mean_passive_sharpe: float
    mean_best_rule_sharpe: float
    sharpe_vs_target: TargetTest
    table: list[FoldRow]


# --- stress -----------------------------------------------------------------------------------


class SurvivalChecks(Record):
    """The survival criteria of one scenario: the agent traded in it (an agent the risk engine
    halted for the whole scenario, or one that never trades, shows a flat line, not survival),
    its drawdown stayed within the limit, its equity stayed positive, and no position grew while
    the risk engine was REDUCING or HALTED."""

    agent_traded: bool
    max_drawdown_within_limit: bool
    equity_positive: bool
    no_growth_while_restricted: bool

    @property
    def unmet(self) -> list[str]:
        """The criteria the scenario failed, by name."""
        return [name for name, met in self.model_dump().items() if not met]

    @property
    def all_met(self) -> bool:
        """Whether the scenario was survived: every criterion met."""
        return not self.unmet


class StressedAgent(Record):
    """The agent under a scenario."""

    total_return: float
    sharpe: float
    max_drawdown: float
    daily_turnover: float
    total_cost: float
    risk_engine: RiskEngineSummary


class StressedBaseline(Record):
    """The risk-managed long rule (full limit, long, through the risk engine) under a
    scenario, for scale."""

    total_return: float
    sharpe: float
    max_drawdown: float
    total_cost: float
    risk_engine: RiskEngineSummary


class ScenarioResult(Record):
    """One stress scenario: its market, the survival verdict and both backtests."""

    scenario: str
    bars: int
    start: str
    end: str
    asset_return: float
    survived: bool
    checks: SurvivalChecks
    max_drawdown: float
    max_drawdown_limit: float
    breaker_violations: int
    agent: StressedAgent
    risk_managed_long: StressedBaseline


def scenario_file(scenario: str) -> str:
    """The name of stress scenario ``scenario``'s result file."""
    return f"{scenario}.json"


class ScenarioReport(Artifact):
    """One stress scenario run on the model (``reports/stress/scenarios/<scenario>.json``)."""

    written_by = "ijules stress-scenario"

    model: ModelRef
    window: Window
    result: ScenarioResult


class StressReport(Artifact):
    """Every stress scenario run on the model (``reports/stress.json``), gathered from the
    scenarios' own reports."""

    written_by = "ijules stress"

    model: ModelRef
    window: Window
    survived: int
    scenarios_run: int
    all_survived: bool
    scenarios: list[ScenarioResult]


# --- the registry -----------------------------------------------------------------------------


class GateCheck(Record):
    """One threshold and how the model fared against it."""

    metric: str
    value: float
    threshold: float
    rule: str
    passed: bool
    note: str = ""

    @property
    def reason(self) -> str:
        """Why the check failed, in one sentence."""
        return (
            self.note or f"{self.metric} {self.value:.4g} is not {self.rule} {self.threshold:.4g}"
        )


class GateDecision(Record):
    """Whether a model may become challenger, and why not if it may not."""

    passed: bool
    reasons: list[str]
    checks: list[GateCheck]

    @classmethod
    def of(cls, checks: Sequence[GateCheck]) -> GateDecision:
        """The decision of ``checks``: passed when every one passed; one reason per failure."""
        return cls(
            passed=all(c.passed for c in checks),
            reasons=[c.reason for c in checks if not c.passed],
            checks=list(checks),
        )


class ChampionComparison(Record):
    """The champion's numbers on the new model's test window."""

    sharpe: float
    total_return: float
    max_drawdown: float
    daily_turnover: float
    num_trades: float


class ChampionChallenge(Record):
    """The candidate against the champion on two kinds of evidence: each model's walk-forward
    folds (mean Sharpe, against a margin) and the candidate's test window (the Sharpe difference,
    against the margin, and a one-sided paired t-test of their per-bar returns). Only a candidate
    better on both replaces the champion; otherwise it is proposed as challenger."""

    champion: str
    candidate_sharpe: float
    champion_sharpe: float
    margin: float
    t_statistic: float
    p_value: float
    max_p_value: float
    bars: int
    test_window_better: bool
    candidate_walk_forward_sharpe: float | None  # None: no walk-forward record
    champion_walk_forward_sharpe: float | None
    walk_forward_folds: tuple[int, int]  # (candidate's, champion's)
    walk_forward_better: bool
    better: bool


class Registration(Artifact):
    """What the registry says about the new model (``reports/registry.json``): the automatic
    review's table (``gate``, every check a row), the alias it proposes, and, once a person
    answered the approval, who decided what and why.

    ``gate`` is None for a version decided by an earlier run (the file then holds ``{}``).
    """

    written_by = "ijules register"

    model_name: str
    version: str
    run_id: str
    status: str
    alias: str | None
    reasons: list[str] = []
    gate: GateDecision | None = None
    champion_before: str | None = None
    champion_sharpe_on_this_window: float | None = None
    champion_on_this_window: ChampionComparison | None = None
    proposed_alias: str | None = None
    weights_sha256: str | None = None
    challenge: ChampionChallenge | None = None
    decided_by: str | None = None
    decision_reason: str | None = None

    @field_validator("gate", mode="before")
    @classmethod
    def _no_gate(cls, value: object) -> object:
        return None if value == {} else value

    @field_serializer("gate", mode="wrap")
    def _empty_gate(
        self, value: GateDecision | None, handler: SerializerFunctionWrapHandler
    ) -> object:
        return {} if value is None else handler(value)


# --- the model card ---------------------------------------------------------------------------


class LockedOutput(Record):
    """One data output as ``dvc.lock`` records it."""

    stage: str
    path: str
    md5: str


class CardData(Record):
    """What the policy was trained and tested on."""

    symbols: tuple[str, ...]
    frequency: str
    windows: dict[Window, WindowSpan]
    dvc_outputs: list[LockedOutput]  # the ingest, validate and features outputs (none: no lock)
    trained_on: dict[str, str]  # the training run's ``dvc.md5.*`` tags: what it actually read


class CardParameters(Record):
    """The digests that name the configuration (see :class:`ijules.config.Config`)."""

    phase: str
    policy_md5: str  # Config.policy_digest(): what the policy is
    walk_forward_md5: str  # Config.walk_forward_digest(): what its folds were judged by
    config_md5: str  # Config.digest(): every section but the paths
    trained_policy_md5: str | None  # the training run's ``params.md5`` tag


class CardCode(Record):
    """The code revision at registration, and the one the training run recorded."""

    revision: str  # ``git rev-parse HEAD``, or "unknown" outside git
    dirty: bool | None  # tracked files changed (None: unknown)
    trained_revision: str | None  # the training run's ``git.revision`` tag


class CardSystem(Record):
    """Where the registration ran: the interpreter, the platform and the packages that matter."""

    python: str
    platform: str
    packages: dict[str, str]  # distribution name: version ("not installed" when absent)


class CardTestWindow(Record):
    """The held-out test window and the Sharpe ratios the intended-use limits are read from."""

    start: str
    end: str
    bars: int
    agent_sharpe: float
    passive_sharpe: float
    best_rule: str
    best_rule_sharpe: float


class CardFold(Record):
    """One walk-forward fold, as the card shows it."""

    fold: int
    test_first: str
    test_last: str
    agent_sharpe: float
    passive_sharpe: float
    best_rule: str
    best_rule_sharpe: float
    psr: float
    dsr: float
    passed: bool


class CardScenario(Record):
    """One stress scenario, as the card shows it."""

    scenario: str
    survived: bool
    agent_total_return: float
    max_drawdown: float


class ModelCardFacts(Artifact):
    """The facts of a version's model card, gathered when it is reviewed (logged to the run as
    ``review/card_facts.json``); the card renders them with the registry's current decision."""

    written_by = "ijules register"

    model_name: str
    version: str
    run_id: str
    registered_at: str  # the version's creation time, UTC
    weights_sha256: str
    data: CardData
    parameters: CardParameters
    code: CardCode
    system: CardSystem
    test_window: CardTestWindow
    walk_forward: list[CardFold] | None  # None: no walk-forward summary given to the review
    stress: list[CardScenario] | None  # None: no stress report given to the review


# --- the baseline, reproduced -----------------------------------------------------------------


class ReproducedMetric(Record):
    """One registered test metric beside its reproduction (``difference``: reproduced minus
    registered)."""

    metric: str
    registered: float
    reproduced: float
    difference: float
    within_tolerance: bool


class BaselineReproduction(Artifact):
    """A registered version's pipeline rerun at its commit and parameters
    (``reports/baseline/v<N>.json``): its test metrics beside the registered ones, equal within
    ``tolerance`` (relative; 0: equal) or not, and the features' MD5 both times (when they
    differ, so did the data)."""

    written_by = "ijules baseline reproduce"

    model_name: str
    version: str
    run_id: str
    revision: str
    tolerance: float
    reproduced: bool
    metrics: list[ReproducedMetric]
    features_md5_registered: str | None
    features_md5_reproduced: str | None


# --- the phases of the master plan -----------------------------------------------------------

Outcome = Literal["met", "not met", "not measured"]
PhaseStatus = Literal["run", "refused", "not run"]


class PhaseFigures(Record):
    """A phase experiment's figures: the agent's on the test window after costs, its training's,
    and the passive benchmark's and best rule's Sharpe ratios for scale."""

    sharpe: float
    max_drawdown: float
    daily_turnover: float
    win_rate: float
    information_ratio: float
    calmar: float
    episode_reward_mean: float | None  # the last update's mean episode reward (None: none ended)
    curriculum_stage: str | None  # the stage training ended in (None: no curriculum)
    passive_buy_and_hold_sharpe: float
    best_rule: str
    best_rule_sharpe: float


class CriterionResult(Record):
    """One of the plan's success criteria for a phase, judged on the phase's experiment."""

    criterion: str  # the plan's words
    measure: str | None  # the figure judged (a PhaseFigures field); None: the pipeline has none
    threshold: str
    value: float | str | None
    outcome: Outcome
    note: str  # why it is not measured; empty otherwise


class PhaseResult(Record):
    """A phase overlay: the experiment that ran it (if any), its figures and the plan's criteria.

    ``gate``: met when every criterion is met, not met when one is not, not measured otherwise.
    """

    phase: str  # config/<phase>.yaml
    plan_phase: int | None  # the master plan's number; None: the plan has no such phase
    goal: str
    status: PhaseStatus
    reason: str  # why it was refused or not run; empty when it ran
    experiment: str | None
    rev: str | None
    timestamp: str | None
    figures: PhaseFigures | None
    criteria: list[CriterionResult]
    gate: Outcome


class LeftOutExperiment(Record):
    """An experiment on the commit that is not a phase's baseline, and why."""

    name: str
    rev: str
    reason: str


class PhasesSummary(Artifact):
    """Each phase overlay's DVC experiment beside the master plan's success criteria for the
    phase (``reports/phases/summary.json``)."""

    written_by = "ijules phases"

    baseline_rev: str  # the commit the experiments ran from
    phases: list[PhaseResult]
    left_out: list[LeftOutExperiment]


# --- drift ------------------------------------------------------------------------------------


class FeatureDrift(Record):
    """One feature's drift test (``drifted`` is absent when Evidently ran no test on it)."""

    method: str | None
    threshold: float | None
    score: float
    drifted: bool | None = _omitted_when_none()


class DriftSpan(Record):
    """First and last bar of the data compared, and how many bars."""

    start: str
    end: str
    bars: int


class DriftSummary(Artifact):
    """The share of drifted features, and each feature's test (``drift_metrics.json``)."""

    written_by = "ijules drift"

    drift_share: float
    drifted_features: int
    features: int
    dataset_drift: bool
    threshold: float
    per_feature: dict[str, FeatureDrift]
    reference: DriftSpan
    current: DriftSpan
    reference_source: str = (
        "the train split of the current features"  # or a model's training window
    )


# --- paper trading ----------------------------------------------------------------------------

# Who trades in paper: the champion and the challenger (the registry's aliases), and, while no
# version is champion, the latest registered version in shadow (no capital, P&L on notional).
PaperSlot = Literal["champion", "challenger", "shadow"]
PAPER_SLOTS: tuple[PaperSlot, ...] = get_args(PaperSlot)
PaperOutcome = Literal["traded", "no new bars", "refused", "stopped", "retired"]


class PaperModelNight(Record):
    """One model's paper-trading night: what it traded tonight and where its book stands.

    ``outcome``: ``traded`` (``bars`` > 0), ``no new bars`` (its state stands at the data's last
    bar), ``refused`` (not traded, ``error`` says why, its state untouched), ``stopped`` (its
    book was ruined and trades no more) or ``retired`` (the version left its slot tonight and
    no version took it; its book was closed). ``started`` when the version began under its slot
    tonight (fresh: flat, new LSTM state); ``retired`` the version it replaced there, if any.
    P&L is after costs; ``pnl_cumulative_usd`` counts from the version's start under the slot.
    """

    slot: PaperSlot
    version: str
    alias: str | None  # None: in shadow
    status: str | None  # the version's registry status
    approved: bool  # its review passed and a person approved it
    allocation: float  # share of the paper capital (0 in shadow)
    capital_usd: float  # the book it trades (in shadow: notional, the champion's share)
    outcome: PaperOutcome
    started: bool
    retired: str | None
    first_bar: str | None  # tonight's first and last decision bars
    last_bar: str | None
    standing_at: str | None  # the bar its book is marked at now
    bars: int
    fills: int
    pnl_usd: float
    costs_usd: float
    pnl_cumulative_usd: float
    equity_usd: float
    drawdown: float  # below the book's equity peak, now
    breaker_events: list[str]
    error: str | None
    ledger: str


class PaperReport(Artifact):
    """The paper-trading night (``reports/paper/night.json``): each model's book."""

    written_by = "ijules paper"

    model_name: str
    data_end: str | None  # the last published bar (None: no bars)
    capital_usd: float
    challenger_allocation: float
    models: list[PaperModelNight]
    note: str | None  # why nothing traded, when nothing could


# --- the risk report --------------------------------------------------------------------------


class VarBacktest(Record):
    """How a VaR method's forecasts fared against the losses that followed them."""

    method: str
    confidence: float
    observations: int
    exceptions: int
    exception_rate: float
    kupiec_p: float
    independence_p: float
    conditional_coverage_p: float
    zone: str
    accuracy: float


class VarBacktestReport(Artifact):
    """Every VaR method at every confidence level (``reports/risk/var_backtest.json``)."""

    written_by = "ijules risk-report"

    series: str
    backtests: list[VarBacktest]


class BreakerEvent(Record):
    """One change of trading state in a replay."""

    date: str
    state: str
    reason: str


class BreakerReplay(Record):
    """One window of the index replayed fully invested through the risk engine."""

    start: str
    end: str
    days: int
    index_return: float
    replay_return: float
    replay_max_drawdown: float
    breakers_fired: int
    by_reason: dict[str, int]
    refusals: dict[str, int]
    events: list[BreakerEvent]


class BreakersReport(Artifact):
    """The circuit-breaker replays by window (``reports/risk/breakers.json``)."""

    written_by = "ijules risk-report"

    series: str
    windows: dict[str, BreakerReplay]
    regime_fits: RegimeFitCounts  # of the regimes the replays ran with


# --- health (ijules health) -------------------------------------------------------------------

Severity = Literal["low", "medium", "high"]
HealthComponentName = Literal["data_drift", "action_drift", "performance", "regime", "risk"]
HEALTH_COMPONENTS: tuple[HealthComponentName, ...] = get_args(HealthComponentName)


class HealthComponent(Record):
    """One part of the health score: its score in [0, 1] (None: not measured tonight, left out of
    the score) and, in words, what it measured against what."""

    score: float | None
    detail: str


class HealthAlert(Record):
    """A condition that fires once: ``new`` the night it appears, not again until it clears."""

    key: str  # the condition: kind, slot and version (e.g. ``performance:champion:v3``)
    kind: str
    severity: Severity
    slot: PaperSlot | None
    version: str | None
    message: str
    recommended_action: str
    new: bool


class HealthActions(Record):
    """What tonight's health starts: an early retraining, a rollback of the champion."""

    retrain: bool
    rollback: bool
    reasons: list[str]


class HealthReport(Artifact):
    """The night's model health (``reports/health/night.json``): the judged model's score and
    components, the alerts, and the actions they start."""

    written_by = "ijules health"

    data_end: str | None  # the last published bar
    slot: PaperSlot | None  # the model judged: the champion, else the shadow (None: no model)
    version: str | None
    reference: str  # the drift reference window, and whose training window it is
    score: float | None  # weighted mean of the measured components (None: none measured)
    components: dict[HealthComponentName, HealthComponent]
    alerts: list[HealthAlert]
    cleared: list[str]  # alert keys active last night and not tonight
    actions: HealthActions
    drift_share: float | None
    pnl_usd: dict[str, float]  # each book's cumulative P&L tonight, by slot


class HealthDay(Record):
    """One line of ``reports/health/history.jsonl``: a night's figures, for the 30-day charts.
    A rerun of a night (same ``data_end``) replaces its line."""

    data_end: str
    slot: PaperSlot | None
    version: str | None
    score: float | None
    drift_share: float | None
    pnl_usd: dict[str, float]  # each book's cumulative P&L, by ``slot:v<version>``
    alerts: list[str]  # the keys active that night
