"""Register the trained policy in the MLflow registry and give it the alias it earned.

Every trained model becomes a version of ``registry.model_name``. The gate decides what it earns:

- fails a threshold: tagged ``ijules.status=rejected`` with the reasons, no alias;
- passes, and there is no champion or it beats the champion on the same test window after
  costs (higher Sharpe): alias ``champion``; the version it replaced is recorded for rollback;
- passes but does not beat the champion: alias ``challenger``.

The champion alias only moves at the very end, after every check, so a failure on the way leaves
the current champion untouched. A version already decided is not decided again: a rerun returns
the recorded outcome. Every decision is written to the audit trail (:mod:`ijules.registry.audit`)
before any alias moves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from ijules.artifacts import (
    POLICY_SPEC,
    ChampionComparison,
    FeatureSet,
    MetricsReport,
    ModelRef,
    PolicyRecord,
    Registration,
    SeedSpread,
    StressReport,
    WalkForwardSummary,
)
from ijules.config import Config
from ijules.env.market_data import load_window
from ijules.errors import IjulesError, RegistryError
from ijules.evaluation.thresholds import Benchmarks
from ijules.registry.audit import append, mirror
from ijules.registry.gate import apply_gate
from ijules.tracking import configure

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
STATUS_TAG = "ijules.status"
REASONS_TAG = "ijules.reasons"
PREVIOUS_CHAMPION_TAG = "ijules.previous_champion"


class Verdict(NamedTuple):
    """What the gate and the champion comparison decided."""

    status: str
    alias: str | None
    reasons: list[str]
    champion_before: str | None = None
    champion_sharpe: float | None = None
    champion_on_this_window: ChampionComparison | None = None  # the champion baseline


def run_register(
    config: Config,
    *,
    model_dir: Path,
    metrics: Path,
    features: Path,
    meta: Path,
    output: Path,
    walk_forward: Path | None = None,
    stress: Path | None = None,
    seeds: Path | None = None,
    audit: Path,
) -> Registration:
    """Register ``model_dir``'s policy, apply the gate and aliases, and write ``output``.

    The gate reads the test-window metrics, their spread over training seeds, the walk-forward
    summary (which must describe this configuration) and the stress results (which, like the
    seeds, must describe this model).
    """
    from mlflow import MlflowClient

    spec_path = model_dir / POLICY_SPEC
    record = PolicyRecord.read(spec_path).mlflow
    evaluation = MetricsReport.read(metrics)
    run_id, model_uri = record.run_id, record.model_uri
    if model_uri is None:
        raise RegistryError(f"{spec_path} names no logged MLflow model; run `ijules train` again")
    _require_same_model(evaluation.model, run_id, metrics, model_dir, "ijules evaluate")
    folds = WalkForwardSummary.read_if_present(walk_forward)
    if folds is not None and folds.params_md5 != config.walk_forward_digest():
        raise RegistryError(
            f"{walk_forward} was produced with other parameters; run `ijules walk-forward` first"
        )
    scenarios = StressReport.read_if_present(stress)
    if scenarios is not None:
        _require_same_model(scenarios.model, run_id, stress, model_dir, "ijules stress")
        ran = sorted(result.scenario for result in scenarios.scenarios)
        if ran != sorted(config.stress.scenarios):
            raise RegistryError(
                f"{stress} holds scenarios {ran}, but stress.scenarios configures "
                f"{sorted(config.stress.scenarios)}; rerun `ijules stress`"
            )
    spread = SeedSpread.read_if_present(seeds)
    if spread is not None:
        _require_same_model(spread.model, run_id, seeds, model_dir, "ijules seeds")
        if len(spread.runs) != config.seeds.count or spread.confidence != config.seeds.confidence:
            raise RegistryError(
                f"{seeds} was produced with other seeds settings; rerun `ijules seeds`"
            )
    configure(config.registry.experiment)
    client = MlflowClient()
    name = config.registry.model_name
    version = _version_for_run(client, name, run_id, model_uri)
    decided = version.tags.get(STATUS_TAG)
    if decided is not None:
        result = _recorded(client, name, version, decided)
        result.write(output)
        log.info("%s v%s was already decided: %s", name, version.version, decided)
        return result

    agent = evaluation.agent
    decision = apply_gate(
        agent,
        config.gate,
        benchmarks(evaluation),
        evaluation.window.full_capital_fill_bps,
        seeds=spread,
        required_seeds=config.seeds.count,
        walk_forward=folds,
        stress=scenarios,
        required_scenarios=len(config.stress.scenarios),
    )
    tags = {
        "sharpe": agent.sharpe,
        "max_drawdown": agent.max_drawdown,
        "daily_turnover": agent.daily_turnover,
        "total_return": agent.total_return,
        "num_trades": agent.num_trades,
    }
    if spread is not None:
        tags |= {"seeds": len(spread.runs), "sharpe_over_seeds_lower_bound": spread.sharpe}
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, f"test.{key}", str(value))
    if not decision.passed:
        verdict = Verdict("rejected", None, decision.reasons)
    else:
        champion = alias_version(client, name, CHAMPION)
        if champion is None:
            verdict = Verdict(CHAMPION, CHAMPION, ["passed the gate; no champion yet"])
        else:
            verdict = _compare_with_champion(
                config, name, champion, float(agent.sharpe), features, meta
            )
    result = Registration(
        model_name=name,
        version=str(version.version),
        run_id=run_id,
        status=verdict.status,
        alias=verdict.alias,
        reasons=verdict.reasons,
        gate=decision,
        champion_before=verdict.champion_before,
        champion_sharpe_on_this_window=verdict.champion_sharpe,
        champion_on_this_window=verdict.champion_on_this_window,
    )
    # The trail first: an alias never moves without its record.
    entry = append(
        audit,
        action="register",
        model=name,
        version=result.version,
        alias=result.alias,
        reason=f"gate {'passed' if decision.passed else 'failed'}: {result.status}",
        checks=result.reasons,
    )
    _apply(client, result)
    mirror(client, entry)
    result.write(output)
    log.info("%s v%s: %s (%s)", name, result.version, result.status, "; ".join(result.reasons))
    return result


def benchmarks(evaluation: MetricsReport) -> Benchmarks:
    """What the agent is compared with on its test window: passive buy-and-hold, the best rule."""
    rule = evaluation.best_rule
    return Benchmarks(
        passive_sharpe=evaluation.baselines.passive_buy_and_hold.sharpe,
        best_rule=rule,
        best_rule_sharpe=evaluation.baselines.by_name()[rule].sharpe,
    )


def _require_same_model(
    model: ModelRef, run_id: str, path: Path | None, model_dir: Path, command: str
) -> None:
    described = model.run_id
    if described != run_id:
        raise RegistryError(
            f"{path} describes run {described}, but the model in {model_dir} is run {run_id}; "
            f"run `{command}` first"
        )


def _compare_with_champion(
    config: Config,
    model_name: str,
    champion: Any,
    sharpe: float,
    features: Path,
    meta: Path,
) -> Verdict:
    """Backtest the champion on this model's test window; promote only a strictly better model."""
    import mlflow

    from ijules.evaluation.evaluate import backtest_policy

    before = str(champion.version)
    feature_set = FeatureSet.read(meta)
    market = load_window(features, feature_set, "test", config)
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/{champion.version}")
    policy = loaded.unwrap_python_model().policy
    try:
        backtest = backtest_policy(policy, market, config)
    except IjulesError as err:
        reason = f"champion v{champion.version} cannot be compared here ({err}); kept it"
        return Verdict(CHALLENGER, CHALLENGER, [reason], before)
    baseline = backtest.metrics(feature_set.bars_per_year, backtest.asset_returns)
    champion_sharpe = baseline.sharpe
    comparison = ChampionComparison(
        sharpe=float(baseline.sharpe),
        total_return=float(baseline.total_return),
        max_drawdown=float(baseline.max_drawdown),
        daily_turnover=float(baseline.daily_turnover),
        num_trades=float(baseline.num_trades),
    )
    if sharpe > champion_sharpe:
        status = CHAMPION
        reason = (
            f"Sharpe {sharpe:.3f} beats champion v{champion.version}'s {champion_sharpe:.3f} "
            "on the same test window"
        )
    else:
        status = CHALLENGER
        reason = (
            f"Sharpe {sharpe:.3f} does not beat champion v{champion.version}'s "
            f"{champion_sharpe:.3f} on the same test window"
        )
    return Verdict(status, status, [reason], before, champion_sharpe, comparison)


def _apply(client: Any, result: Registration) -> None:
    name, version = result.model_name, result.version
    client.set_model_version_tag(name, version, REASONS_TAG, "; ".join(result.reasons))
    if result.alias == CHAMPION:
        if result.champion_before is not None:
            client.set_model_version_tag(
                name, version, PREVIOUS_CHAMPION_TAG, result.champion_before
            )
        client.set_registered_model_alias(name, CHAMPION, version)
        challenger = alias_version(client, name, CHALLENGER)
        if challenger is not None and str(challenger.version) == version:
            client.delete_registered_model_alias(name, CHALLENGER)
    elif result.alias == CHALLENGER:
        client.set_registered_model_alias(name, CHALLENGER, version)
    # The status tag goes last: it marks the decision as complete.
    client.set_model_version_tag(name, version, STATUS_TAG, result.status)


def _version_for_run(client: Any, name: str, run_id: str, model_uri: str) -> Any:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="IntradayJules RecurrentPPO trading policy (pyfunc, stateful LSTM)"
        )
    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if existing:
        return client.get_model_version(name, existing[0].version)
    created = mlflow.register_model(model_uri, name, tags={"ijules.run_id": run_id})
    return client.get_model_version(name, created.version)


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    """Return the version ``alias`` points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _recorded(client: Any, name: str, version: Any, status: str) -> Registration:
    aliases = list(getattr(version, "aliases", []) or [])
    reasons = version.tags.get(REASONS_TAG, "")
    return Registration(
        model_name=name,
        version=str(version.version),
        run_id=str(version.run_id),
        status=status,
        alias=aliases[0] if aliases else None,
        reasons=[r for r in reasons.split("; ") if r],
        champion_before=version.tags.get(PREVIOUS_CHAMPION_TAG),
    )
