"""Run parameters: ``params.yaml`` plus an optional phase overlay, parsed once into frozen models.

``params.yaml`` is the single source of run parameters. Its ``phase`` key (or ``--phase`` on the
command line) selects ``config/<phase>.yaml``, an overlay merged over it: the master plan's phase
configurations live there. Each section's model lives beside the code that reads it (for example
:mod:`ijules.risk.config`); this module assembles them, loads the files and refuses by name every
key that is not built (or that describes the only behaviour there is), so that nothing parses and
then does nothing. Every model forbids unknown keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import Field, ValidationError, model_validator

from ijules.data.config import DataConfig, FeaturesConfig, QualityConfig, SplitConfig
from ijules.env.config import EnvironmentConfig, ObservationConfig, RewardConfig, SafeguardsConfig
from ijules.errors import ConfigError, RefusedKeyError
from ijules.evaluation.config import (
    BaselinesConfig,
    GateConfig,
    ReportConfig,
    ResearchConfig,
    RiskReportConfig,
    SeedsConfig,
    StressConfig,
    TuningConfig,
    WalkForwardConfig,
)
from ijules.execution.config import MicrostructureConfig
from ijules.frozen import Frozen
from ijules.health.config import HealthConfig
from ijules.market.config import RegimesConfig
from ijules.monitoring.config import DriftConfig, NotifyConfig
from ijules.paper.config import PaperConfig
from ijules.registry.config import RegistryConfig
from ijules.risk.config import RiskManagementConfig, RiskModelsConfig
from ijules.training.config import CurriculumConfig, TrainingConfig

BASE_PHASE = "base"

# The run's as-of, beside params.yaml: the instant the data stages see the market as of. The DAG
# runs write their data-interval end here before `dvc repro ingest`; dvc.yaml lists its one key
# under the ingest stage's params, so a new as-of reruns ingest and a former one is a run-cache
# restore. Committed as `as_of: null` (the source's whole history), so that `dvc repro` works on a
# fresh clone. Not part of params.yaml: a run writing its own date there would rewrite the file a
# person edits.
AS_OF_FILE = "as_of.yaml"
AS_OF_KEY = "as_of"

# The sections that shape what a trained policy does (the data enters through its files).
POLICY_SECTIONS = (
    "seed",
    "features",
    "environment",
    "observation",
    "reward",
    "safeguards",
    "microstructure",
    "regimes",
    "risk_management",
    "training",
    "curriculum",
)

# Keys of the master plan that nothing here reads, each refused by name with the reason, so that a
# phase overlay never half-applies and no setting parses and then does nothing. A key is refused
# together with everything under it.
REFUSED_KEYS: dict[str, str] = {
    "portfolio_optimization": "is not implemented yet: enhanced Kelly sizing needs an edge the "
    "agent has not shown out of sample (reports/research); positions are sized by "
    "environment.volatility_target",
    "performance_attribution": "is not implemented yet: Brinson-Fachler and factor attribution "
    "(not scheduled)",
    "risk_budgeting": "is not implemented yet: risk budgeting and risk parity (not scheduled)",
    "backtesting": "is not implemented yet: fixed calendar validation periods (walk_forward and "
    "stress replace them)",
    "regime_mastery": "is not implemented yet: phase 6 regime mastery and continuous learning "
    "(not scheduled)",
    "safeguards.nan_guard_strict": "cannot be set: the NaN guard is always strict (a NaN or inf "
    "stops the run)",
    "curriculum.architecture": "describes the only curriculum there is (multi-stage adaptive)",
    "curriculum.advancement_gates.validation_method": "describes the only validation there is "
    "(consecutive out-of-sample periods of the validation window)",
    "microstructure.transaction_costs.turnover_penalty.model_type": "describes the only "
    "turnover model there is (a volatility-regime capacity)",
    "microstructure.transaction_costs.turnover_penalty.penalty_curve": "describes the only "
    "penalty curve there is (Almgren-Chriss)",
}


class PathsConfig(Frozen):
    """Where each stage reads and writes; dvc.yaml passes the same paths to every command."""

    staged: str = "data/staging/bars.parquet"
    ingest_report: str = "reports/ingest.json"
    bars: str = "data/raw/bars.parquet"
    validation: str = "reports/validation/result.json"
    features: str = "data/features/features.parquet"
    feature_meta: str = "data/features/meta.json"
    model_dir: str = "models"
    metrics: str = "reports/metrics.json"
    seeds: str = "reports/seeds.json"
    tuning: str = "reports/tuning/study.json"
    research: str = "reports/research"  # summary.json and report.html
    research_work: str = "var/research"  # each research instrument's bars and features
    equity_curve: str = "reports/equity.csv"
    equity_plot: str = "reports/equity.png"
    registration: str = "reports/registry.json"
    audit: str = "var/audit/trail.jsonl"  # the registry's append-only, hash-chained audit trail
    cards: str = "reports/cards"  # a model card per reviewed version (<model>-v<N>.md, .html)
    drift_html: str = "reports/drift/drift.html"
    drift_snapshot: str = "reports/drift/snapshot.json"
    drift_metrics: str = "reports/drift/drift_metrics.json"
    mailbox: str = "var/mail"
    var_backtest: str = "reports/risk/var_backtest.json"
    breakers: str = "reports/risk/breakers.json"
    checkpoints: str = "var/checkpoints"
    walk_forward_folds: str = "reports/walk_forward/folds"
    walk_forward: str = "reports/walk_forward/summary.json"
    trials: str = "reports/trials/ledger.jsonl"  # every configuration tried (git, DVC: persist)
    stress_scenarios: str = "reports/stress/scenarios"  # <scenario>.json, one per stage item
    stress: str = "reports/stress.json"
    performance_report: str = "reports/performance_report.yaml"
    performance_html: str = "reports/performance_report.html"
    performance_rolling: str = "reports/performance_rolling.csv"
    paper_ledgers: str = "data/paper/ledgers"  # <slot>.jsonl, append-only
    paper_state: str = "data/paper/state"  # <slot>.json: each book, carried to the next night
    paper_report: str = "reports/paper/night.json"
    health_report: str = "reports/health/night.json"
    health_history: str = (
        "reports/health/history.jsonl"  # a line per night (append; rerun: replace)
    )
    health_charts: str = "reports/health/charts"  # the nightly e-mail's inline charts


class Config(Frozen):
    """Every run parameter, resolved from params.yaml and the selected phase overlay."""

    seed: Annotated[int, Field(ge=0)]
    phase: str = BASE_PHASE
    data: DataConfig
    quality: QualityConfig = QualityConfig()
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    environment: EnvironmentConfig = EnvironmentConfig()
    observation: ObservationConfig = ObservationConfig()
    reward: RewardConfig = RewardConfig()
    safeguards: SafeguardsConfig = SafeguardsConfig()
    microstructure: MicrostructureConfig = MicrostructureConfig()
    regimes: RegimesConfig = RegimesConfig()
    risk_management: RiskManagementConfig = RiskManagementConfig()
    risk_models: RiskModelsConfig = RiskModelsConfig()
    risk_report: RiskReportConfig = RiskReportConfig()
    training: TrainingConfig = TrainingConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    walk_forward: WalkForwardConfig = WalkForwardConfig()
    stress: StressConfig = StressConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    seeds: SeedsConfig = SeedsConfig()
    tuning: TuningConfig = TuningConfig()
    research: ResearchConfig = ResearchConfig()
    gate: GateConfig = GateConfig()
    report: ReportConfig = ReportConfig()
    registry: RegistryConfig = RegistryConfig()
    drift: DriftConfig = DriftConfig()
    notify: NotifyConfig = NotifyConfig()
    paper: PaperConfig = PaperConfig()
    health: HealthConfig = HealthConfig()
    paths: PathsConfig = PathsConfig()

    @model_validator(mode="after")
    def _sections_agree(self) -> Self:
        # A per-instrument entry for a symbol that is not traded would be read by nothing.
        liquidity = self.microstructure.liquidity_model
        for key in ("daily_volume_usd", "contract_multiplier"):
            unknown = sorted(set(getattr(liquidity, key)) - set(self.data.symbols))
            if unknown:
                raise ValueError(
                    f"microstructure.liquidity_model.{key} names {unknown}, which "
                    f"data.symbol does not trade ({', '.join(self.data.symbols)})"
                )
        if "p_high_volatility" in self.features.regime_signals and not (
            self.regimes.markov_probabilities
        ):
            raise ValueError(
                "features.regime_signals has p_high_volatility, which needs "
                "regimes.markov_probabilities: true"
            )
        for key in self.tuning.space:
            section, _, rest = key.partition(".")
            if rest not in type(getattr(self, section)).model_fields:
                raise ValueError(f"tuning.space: {key!r} names no parameter of {section}")
        return self

    def digest(self, *sections: str) -> str:
        """Return a stable hash of the named sections (all of them, paths excluded, if none).

        A digest stands for every value under its sections: whatever embeds one in an output
        depends on all of them.
        """
        dumped = self.model_dump(mode="json", exclude={"paths"})
        chosen = {name: dumped[name] for name in sections} if sections else dumped
        canonical = json.dumps(chosen, sort_keys=True)
        return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()

    def policy_digest(self) -> str:
        """The identity of a trained policy's configuration (:data:`POLICY_SECTIONS`): what
        makes two trainings on the same data the same trial."""
        return self.digest(*POLICY_SECTIONS)

    def searched_digest(self) -> str:
        """The policy's configuration less the keys ``tuning.space`` searches: what a study of
        that space holds fixed (committing a study's best values does not rename the study)."""
        dumped = self.model_dump(mode="json", exclude={"paths"})
        for key in self.tuning.space:
            section, _, name = key.partition(".")
            dumped[section].pop(name, None)
        chosen = {name: dumped[name] for name in POLICY_SECTIONS}
        canonical = json.dumps(chosen, sort_keys=True)
        return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()

    def walk_forward_digest(self) -> str:
        """The identity of walk-forward results: the policy's configuration, the folds, the
        thresholds they are judged by and the rules they are compared with."""
        return self.digest(*POLICY_SECTIONS, "walk_forward", "gate", "baselines")


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
    _refuse_unbuilt(raw, params_path)
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
    _refuse_unbuilt(overlay, overlay_path)
    merged = _deep_merge(raw, overlay)
    merged["phase"] = selected
    try:
        # JSON mode keeps strict typing (no "yes" -> True) while accepting YAML lists as tuples.
        return Config.model_validate_json(json.dumps(merged, default=str))
    except ValidationError as err:
        sources = str(params_path) if selected == BASE_PHASE else f"{params_path} + {overlay_path}"
        raise ConfigError(f"{sources}: {_describe(err)}") from None


def parse_as_of(value: object, source: str) -> datetime | None:
    """Return an as-of instant in UTC: ISO 8601 text or a YAML timestamp, naive ones read as
    UTC; None (no as-of: the source's whole history) stays None.

    Raises
    ------
    ConfigError
        Naming ``source`` when the value is no instant (a bare date is refused: which instant
        of the day would it mean?).
    """
    if value is None:
        return None
    stamp: datetime | None = None
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            stamp = datetime.fromisoformat(value.strip())
        except ValueError:
            stamp = None
    if stamp is None:
        shown = value.isoformat() if isinstance(value, date) else repr(value)
        raise ConfigError(
            f"{source}: as-of {shown} is not an ISO 8601 instant (e.g. 2026-03-01T01:00:00Z; "
            "null: the source's whole history)"
        )
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def load_as_of(path: Path) -> datetime | None:
    """Read the as-of from ``path`` (:data:`AS_OF_FILE`): its one key ``as_of``, an instant in
    UTC, or None for the source's whole history.

    Raises
    ------
    ConfigError
        When the file is missing, is not a mapping of that one key, or holds no instant.
    """
    raw = _read_mapping(path)
    if set(raw) != {AS_OF_KEY}:
        found = ", ".join(map(str, raw)) or "nothing"
        raise ConfigError(
            f"{path}: expected one key, '{AS_OF_KEY}' (an ISO 8601 instant, or null for the "
            f"source's whole history); found {found}"
        )
    return parse_as_of(raw[AS_OF_KEY], str(path))


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


def _refuse_unbuilt(mapping: Mapping[str, Any], source: Path) -> None:
    for dotted in _flatten(mapping):
        for prefix, reason in REFUSED_KEYS.items():
            if dotted == prefix or dotted.startswith(prefix + "."):
                raise RefusedKeyError(
                    f"{source}: '{prefix}' {reason}; remove it or select another phase"
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
