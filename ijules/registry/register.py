"""Register the trained policy in the MLflow registry and review it: every check a row.

Every trained model becomes a version of ``registry.model_name``. The automatic review then
checks it (the gate's thresholds, plus the rows of :mod:`ijules.registry.review`, recomputed from
what the registry serves) and writes the table to ``reports/registry.json`` and the version:

- a check fails: tagged ``ijules.status=rejected`` with the reasons; it never reaches approval;
- every check passes: ``ijules.status=awaiting_approval``, with the alias it would take:
  ``champion`` when there is none, or when it beats the champion both on their walk-forward
  records (by the margin) and on its test window (by the margin and the paired test; see
  :func:`ijules.registry.review.challenge`), else ``challenger``.

No alias moves here: a person answers the approval (:mod:`ijules.registry.approval`). A version
already reviewed is not reviewed again: a rerun returns the recorded outcome. Every review is
written to the audit trail (:mod:`ijules.registry.audit`), and every reviewed version, rejected
ones included, gets the facts of its model card logged beside the review, and its card
(:mod:`ijules.registry.card`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from ijules.artifacts import (
    CARD_FACTS,
    POLICY_SPEC,
    POLICY_ZIP,
    ChampionChallenge,
    ChampionComparison,
    FeatureSet,
    GateDecision,
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
from ijules.io import write_text
from ijules.registry.audit import append, mirror
from ijules.registry.gate import apply_gate
from ijules.registry.review import (
    Recomputed,
    backtest_served,
    challenge,
    challenge_summary,
    download,
    integrity_checks,
    sha256_of,
    significance_checks,
    table_markdown,
    var_zone_check,
)
from ijules.tracking import configure, project_root

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
AWAITING, REJECTED, DECLINED = "awaiting_approval", "rejected", "declined"
STATUS_TAG = "ijules.status"
REASONS_TAG = "ijules.reasons"
PREVIOUS_CHAMPION_TAG = "ijules.previous_champion"
PROPOSED_TAG = "ijules.proposed_alias"
REVIEWED_AGAINST_TAG = "ijules.reviewed_against"  # the champion when reviewed ("none": none)
WEIGHTS_TAG = "ijules.weights_sha256"
DECIDED_BY_TAG = "ijules.decided_by"
DECISION_REASON_TAG = "ijules.decision_reason"
REVIEW_ARTIFACTS = "review"  # the run's artifact folder holding the review's JSON and table


class Verdict(NamedTuple):
    """What the review proposes: the alias, and the champion comparison behind it."""

    status: str
    alias: str | None
    reasons: list[str]
    champion_before: str | None = None
    champion_on_this_window: ChampionComparison | None = None  # the champion baseline
    challenge: ChampionChallenge | None = None


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
    cards: Path | None = None,
) -> Registration:
    """Register ``model_dir``'s policy, review it, and write ``output`` (and its Markdown table).

    The review reads the test-window metrics, their spread over training seeds, the walk-forward
    summary (which must describe this configuration) and the stress results (which, like the
    seeds, must describe this model), and recomputes the rest from the served model. With
    ``cards``, the version's model card is written there too.
    """
    from mlflow import MlflowClient

    # Imported here: the card module reads this one's recorded().
    from ijules.registry.card import DVC_LOCK, collect_facts, log_facts, publish

    spec_path = model_dir / POLICY_SPEC
    policy_record = PolicyRecord.read(spec_path)
    record = policy_record.mlflow
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
        result = recorded(client, name, version)
        _write(result, output)
        log.info("%s v%s was already reviewed: %s", name, version.version, decided)
        if cards is not None:
            publish(client, result, cards)
        return result

    number = str(version.version)
    served = download(name, number)
    try:
        served_sha256 = served.sha256
        recomputed = backtest_served(served, config, features, meta)
    finally:
        served.folder.cleanup()
    trained_sha256 = sha256_of(model_dir / POLICY_ZIP)
    agent = evaluation.agent
    gate = config.gate
    thresholds = apply_gate(
        agent,
        gate,
        benchmarks(evaluation),
        evaluation.window.full_capital_fill_bps,
        seeds=spread,
        required_seeds=config.seeds.count,
        walk_forward=folds,
        stress=scenarios,
        required_scenarios=len(config.stress.scenarios),
    )
    returns = recomputed.returns if isinstance(recomputed, Recomputed) else None
    decision = GateDecision.of(
        [
            *integrity_checks(
                trained_sha256=trained_sha256,
                served_sha256=served_sha256,
                recomputed=recomputed,
                reported=agent,
                policy=policy_record,
            ),
            *thresholds.checks,
            *significance_checks(
                returns,
                min_psr=gate.min_psr,
                min_dsr=gate.min_dsr,
                sharpe_benchmark_per_bar=folds.table[0].sharpe_benchmark_per_bar
                if folds is not None and folds.table
                else None,
                trials=folds.trials if folds is not None else None,
            ),
            var_zone_check(
                returns,
                confidence=gate.var_confidence,
                window=config.risk_models.expected_shortfall.tail_expectation_window,
                max_zone=gate.max_var_zone,
            ),
        ]
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
        client.set_model_version_tag(name, number, f"test.{key}", str(value))
    client.set_model_version_tag(name, number, WEIGHTS_TAG, trained_sha256)
    champion = alias_version(client, name, CHAMPION)
    # Against the champion whenever both run: the risk team sees it for a rejected one too.
    compared = (
        _compare_with_champion(config, client, name, champion, recomputed, features, meta, folds)
        if champion is not None and isinstance(recomputed, Recomputed)
        else None
    )
    if not decision.passed:
        verdict = Verdict(REJECTED, None, decision.reasons)
        if compared is not None:
            verdict = compared._replace(status=REJECTED, alias=None, reasons=decision.reasons)
    elif compared is None:
        verdict = Verdict(AWAITING, CHAMPION, ["passed the review; no champion yet"])
    else:
        verdict = compared
    result = Registration(
        model_name=name,
        version=number,
        run_id=run_id,
        status=verdict.status,
        alias=None,
        reasons=verdict.reasons,
        gate=decision,
        champion_before=verdict.champion_before,
        champion_sharpe_on_this_window=None
        if verdict.challenge is None
        else verdict.challenge.champion_sharpe,
        champion_on_this_window=verdict.champion_on_this_window,
        proposed_alias=verdict.alias,
        weights_sha256=trained_sha256,
        challenge=verdict.challenge,
    )
    entry = append(
        audit,
        action="register",
        model=name,
        version=number,
        alias=verdict.alias,
        reason=f"automatic review {'passed' if decision.passed else 'failed'}: {result.status}",
        checks=[
            f"{c.metric} {c.value:.4g} {c.rule} {c.threshold:.4g}: {'pass' if c.passed else 'FAIL'}"
            for c in decision.checks
        ],
    )
    _write(result, output)
    for path in (output, output.with_suffix(".md")):
        client.log_artifact(run_id, str(path), REVIEW_ARTIFACTS)
    facts = collect_facts(
        config,
        registration=result,
        registered_at_ms=int(version.creation_timestamp),
        feature_set=FeatureSet.read(meta),
        evaluation=evaluation,
        walk_forward=folds,
        stress=scenarios,
        run_tags=client.get_run(run_id).data.tags,
        lock=project_root() / DVC_LOCK,
    )
    log_facts(client, facts)
    client.set_model_version_tag(name, number, REASONS_TAG, "; ".join(result.reasons))
    if verdict.alias is not None:
        client.set_model_version_tag(name, number, PROPOSED_TAG, verdict.alias)
        against = "none" if champion is None else str(champion.version)
        client.set_model_version_tag(name, number, REVIEWED_AGAINST_TAG, against)
    mirror(client, entry)
    # The status tag goes last: it marks the review as complete.
    client.set_model_version_tag(name, number, STATUS_TAG, result.status)
    log.info("%s v%s: %s (%s)", name, number, result.status, "; ".join(result.reasons))
    if cards is not None:
        publish(client, recorded(client, name, client.get_model_version(name, number)), cards)
    return result


def _write(result: Registration, output: Path) -> None:
    """The review's JSON and its table as Markdown beside it (``registry.md``)."""
    result.write(output)
    lines = [
        f"# {result.model_name} v{result.version}: {result.status}",
        "",
        f"Proposed alias: {result.proposed_alias or 'none'}. " + "; ".join(result.reasons),
        "",
    ]
    if result.gate is not None:
        lines.append(table_markdown(result.gate.checks))
    if result.challenge is not None:
        lines += ["", challenge_summary(result.challenge)]
    write_text(output.with_suffix(".md"), "\n".join(lines) + "\n")


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
    client: Any,
    model_name: str,
    champion: Any,
    candidate: Recomputed,
    features: Path,
    meta: Path,
    folds: WalkForwardSummary | None,
) -> Verdict:
    """Challenge the champion: each model's walk-forward record, and the served champion
    backtested on this model's test window."""
    from ijules.evaluation.evaluate import backtest_policy
    from ijules.training.policy import RecurrentPolicy

    before = str(champion.version)
    feature_set = FeatureSet.read(meta)
    market = load_window(features, feature_set, "test", config)
    served = download(model_name, before)
    try:
        policy = RecurrentPolicy.load_files(served.zip_path, served.spec_path)
        backtest = backtest_policy(policy, market, config)
    except IjulesError as err:
        reason = f"champion v{before} cannot be compared here ({err}); proposed as challenger"
        return Verdict(AWAITING, CHALLENGER, [reason], before)
    finally:
        served.folder.cleanup()
    baseline = backtest.metrics(feature_set.bars_per_year)
    comparison = ChampionComparison(
        sharpe=float(baseline.sharpe),
        total_return=float(baseline.total_return),
        max_drawdown=float(baseline.max_drawdown),
        daily_turnover=float(baseline.daily_turnover),
        num_trades=float(baseline.num_trades),
    )
    gate = config.gate
    outcome = challenge(
        before,
        candidate,
        backtest.returns,
        float(baseline.sharpe),
        margin=gate.champion_margin,
        max_p_value=gate.champion_max_p_value,
        candidate_folds=None if folds is None else [row.agent_sharpe for row in folds.table],
        champion_folds=_walk_forward_record(client, champion.run_id),
    )
    how = challenge_summary(outcome)
    if outcome.better:
        return Verdict(
            AWAITING, CHAMPION, [f"beats the champion. {how}"], before, comparison, outcome
        )
    reason = f"does not beat the champion. {how}"
    return Verdict(AWAITING, CHALLENGER, [reason], before, comparison, outcome)


def _walk_forward_record(client: Any, run_id: str) -> list[float] | None:
    """The fold Sharpes of a version's walk-forward, as recorded when it was reviewed."""
    from ijules.registry.card import logged_facts

    facts = logged_facts(client, run_id)
    if facts is None or not facts.walk_forward:
        return None
    return [fold.agent_sharpe for fold in facts.walk_forward]


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
    try:
        client.get_run(run_id)
    except MlflowException:
        # The model was trained against another store (DVC restored models/ from its run-cache
        # after the MLflow store was removed): there is nothing to register it from.
        raise RegistryError(
            f"the model's training run {run_id} is not in this MLflow store "
            f"({mlflow.get_tracking_uri()}); retrain it: dvc repro --force train"
        ) from None
    created = mlflow.register_model(model_uri, name, tags={"ijules.run_id": run_id})
    return client.get_model_version(name, created.version)


def registered_version(config: Config, version: str) -> tuple[Any, str, Any]:
    """The MLflow client, the registered model's name and its ``version``; a clear error when
    the registry holds no such version."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure(config.registry.experiment)
    client = MlflowClient()
    name = config.registry.model_name
    try:
        return client, name, client.get_model_version(name, version)
    except MlflowException:
        raise RegistryError(f"{name} has no version {version}") from None


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    """Return the version ``alias`` points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def recorded(client: Any, name: str, version: Any) -> Registration:
    """What the registry records about a reviewed version: its review file when logged, with
    the status, alias and decision as they stand now."""
    import json

    import mlflow

    aliases = list(getattr(version, "aliases", []) or [])
    tags = version.tags
    base: dict[str, Any] = {}
    try:
        folder = mlflow.artifacts.download_artifacts(
            run_id=str(version.run_id), artifact_path=REVIEW_ARTIFACTS
        )
        # The review's JSON, not the card facts logged beside it.
        files = sorted(p for p in Path(folder).glob("*.json") if p.name != CARD_FACTS)
        if files:
            base = json.loads(files[0].read_text())
    except Exception:  # noqa: BLE001 - a version reviewed before reviews were logged
        base = {}
    reasons = tags.get(REASONS_TAG, "")
    base.update(
        model_name=name,
        version=str(version.version),
        run_id=str(version.run_id),
        status=tags.get(STATUS_TAG, "unreviewed"),
        alias=aliases[0] if aliases else None,
        reasons=[r for r in reasons.split("; ") if r],
        champion_before=tags.get(PREVIOUS_CHAMPION_TAG, base.get("champion_before")),
        proposed_alias=tags.get(PROPOSED_TAG),
        weights_sha256=tags.get(WEIGHTS_TAG),
        decided_by=tags.get(DECIDED_BY_TAG),
        decision_reason=tags.get(DECISION_REASON_TAG),
    )
    return Registration.model_validate_json(json.dumps(base))
