"""Register the trained policy in the MLflow registry and give it the alias it earned.

Every trained model becomes a version of ``registry.model_name``. The gate decides what it earns:

- fails a threshold: tagged ``ijules.status=rejected`` with the reasons, no alias;
- passes, and there is no champion or it beats the champion on the same test window after
  costs (higher Sharpe): alias ``champion``; the version it replaced is recorded for rollback;
- passes but does not beat the champion: alias ``challenger``.

The champion alias only moves at the very end, after every check, so a failure on the way leaves
the current champion untouched. A version already decided is not decided again: a rerun returns
the recorded outcome.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ijules.config import Config
from ijules.data.features import FeatureSet
from ijules.env.market_data import load_window
from ijules.errors import IjulesError, RegistryError
from ijules.io import read_json, write_json
from ijules.registry.gate import apply_gate
from ijules.tracking import configure
from ijules.training.policy import POLICY_SPEC

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
STATUS_TAG = "ijules.status"
REASONS_TAG = "ijules.reasons"
PREVIOUS_CHAMPION_TAG = "ijules.previous_champion"


@dataclass
class Registration:
    """What the registry now says about the new model."""

    model_name: str
    version: str
    run_id: str
    status: str
    alias: str | None
    reasons: list[str] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)
    champion_before: str | None = None
    champion_sharpe_on_this_window: float | None = None
    champion_on_this_window: dict[str, float] | None = None  # the champion baseline

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


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
) -> Registration:
    """Register ``model_dir``'s policy, apply the gate and aliases, and write ``output``.

    The gate reads the test-window metrics, the walk-forward summary (which must describe this
    configuration) and the stress results (which must describe this model).
    """
    from mlflow import MlflowClient

    record = read_json(model_dir / POLICY_SPEC)["mlflow"]
    evaluation = read_json(metrics)
    run_id, model_uri = record["run_id"], record["model_uri"]
    _require_same_model(evaluation, run_id, metrics, model_dir, "ijules evaluate")
    folds = _optional(walk_forward)
    if folds is not None and folds.get("params_md5") != config.walk_forward_digest():
        raise RegistryError(
            f"{walk_forward} was produced with other parameters; run `ijules walk-forward` first"
        )
    scenarios = _optional(stress)
    if scenarios is not None:
        _require_same_model(scenarios, run_id, stress, model_dir, "ijules stress")
    configure(config.registry.experiment)
    client = MlflowClient()
    name = config.registry.model_name
    version = _version_for_run(client, name, run_id, model_uri)
    decided = version.tags.get(STATUS_TAG)
    if decided is not None:
        result = _recorded(client, name, version, decided)
        write_json(output, result.to_dict())
        log.info("%s v%s was already decided: %s", name, version.version, decided)
        return result

    agent = evaluation["agent"]
    decision = apply_gate(agent, config.gate, walk_forward=folds, stress=scenarios)
    for key in ("sharpe", "max_drawdown", "daily_turnover", "total_return", "num_trades"):
        client.set_model_version_tag(name, version.version, f"test.{key}", str(agent[key]))
    result = Registration(
        model_name=name,
        version=str(version.version),
        run_id=run_id,
        status="rejected",
        alias=None,
        gate=decision.to_dict(),
    )
    if not decision.passed:
        result.reasons = decision.reasons
    else:
        champion = alias_version(client, name, CHAMPION)
        result.champion_before = None if champion is None else str(champion.version)
        if champion is None:
            result.status, result.alias = CHAMPION, CHAMPION
            result.reasons = ["passed the gate; no champion yet"]
        else:
            _compare_with_champion(config, result, champion, float(agent["sharpe"]), features, meta)
    _apply(client, result)
    write_json(output, result.to_dict())
    log.info("%s v%s: %s (%s)", name, result.version, result.status, "; ".join(result.reasons))
    return result


def _optional(path: Path | None) -> dict[str, Any] | None:
    return read_json(path) if path is not None and path.is_file() else None


def _require_same_model(
    payload: dict[str, Any], run_id: str, path: Path | None, model_dir: Path, command: str
) -> None:
    described = payload.get("model", {}).get("run_id")
    if described != run_id:
        raise RegistryError(
            f"{path} describes run {described}, but the model in {model_dir} is run {run_id}; "
            f"run `{command}` first"
        )


def _compare_with_champion(
    config: Config,
    result: Registration,
    champion: Any,
    sharpe: float,
    features: Path,
    meta: Path,
) -> None:
    """Backtest the champion on this model's test window; promote only a strictly better model."""
    import mlflow

    from ijules.evaluation.evaluate import backtest_policy

    feature_set = FeatureSet.load(meta)
    market = load_window(features, feature_set, "test", config)
    loaded = mlflow.pyfunc.load_model(f"models:/{result.model_name}/{champion.version}")
    policy = loaded.unwrap_python_model().policy
    try:
        backtest = backtest_policy(policy, market, config)
    except IjulesError as err:
        result.status, result.alias = CHALLENGER, CHALLENGER
        result.reasons = [f"champion v{champion.version} cannot be compared here ({err}); kept it"]
        return
    baseline = backtest.metrics(feature_set.bars_per_year, backtest.asset_returns)
    champion_sharpe = baseline.sharpe
    result.champion_sharpe_on_this_window = champion_sharpe
    result.champion_on_this_window = {
        key: float(getattr(baseline, key))
        for key in ("sharpe", "total_return", "max_drawdown", "daily_turnover", "num_trades")
    }
    if sharpe > champion_sharpe:
        result.status, result.alias = CHAMPION, CHAMPION
        result.reasons = [
            f"Sharpe {sharpe:.3f} beats champion v{champion.version}'s {champion_sharpe:.3f} "
            "on the same test window"
        ]
    else:
        result.status, result.alias = CHALLENGER, CHALLENGER
        result.reasons = [
            f"Sharpe {sharpe:.3f} does not beat champion v{champion.version}'s "
            f"{champion_sharpe:.3f} on the same test window"
        ]


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
