"""The MLflow flow on a real SQLite store: lineage, the pyfunc model, the gate and the aliases."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ijules.artifacts import FeatureSet, MetricsReport
from ijules.env.market_data import load_window
from ijules.env.trading_env import TradingEnv
from ijules.errors import RegistryError
from ijules.io import md5_file
from ijules.registry.aliases import promote, rollback
from ijules.registry.audit import verify
from ijules.registry.register import run_register
from ijules.training.policy import RecurrentPolicy, input_columns

pytestmark = pytest.mark.slow

LENIENT = {
    "gate": {
        "min_sharpe": -100.0,
        "max_drawdown": 1.0,
        "max_daily_turnover": 100.0,
        "min_trades": 0,
        "min_walk_forward_pass_rate": 0.0,
        "require_stress_survival": False,
        "beat_passive_buy_and_hold": False,
        "beat_best_rule": False,
        "max_full_capital_fill_cost_bps": 1e6,
    },
    "seeds": {"count": 1},  # one policy per registration here: the spread is tested elsewhere
}
NAME = "ijules-policy"


TRAIL = "var/audit/trail.jsonl"


def register(ws, model_dir: str, metrics: str, config=None):
    return run_register(
        config or ws.config,
        model_dir=ws.root / model_dir,
        metrics=ws.root / metrics,
        features=ws.path("features"),
        meta=ws.path("feature_meta"),
        output=ws.root / "reports" / "registry.json",
        audit=ws.root / TRAIL,
    )


def set_sharpe(path: Path, sharpe: float) -> None:
    report = MetricsReport.read(path)
    agent = report.agent.model_copy(update={"sharpe": sharpe})
    report.model_copy(update={"agent": agent}).write(path)


def alias(client: MlflowClient, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(NAME, name).version)
    except mlflow.exceptions.MlflowException:
        return None


def test_training_run_records_its_lineage(workspace) -> None:
    ws = workspace()
    ws.prepare_data()
    result = ws.train()
    ws.evaluate()
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["dvc.md5.features"] == md5_file(ws.path("features"))
    assert run.data.tags["params.md5"] == ws.config.policy_digest()
    assert len(run.data.tags["git.revision"]) >= 40 or run.data.tags["git.revision"] == "unknown"
    assert run.data.params["training.total_timesteps"] == "256"
    assert (
        "test_sharpe" in run.data.metrics and "test_passive_buy_and_hold_sharpe" in run.data.metrics
    )
    assert "train_entropy_loss" in run.data.metrics  # SB3 diagnostics reach MLflow
    metrics = MetricsReport.read(ws.root / "reports" / "metrics.json")
    assert metrics.model.run_id == result.run_id


def test_pyfunc_model_acts_like_the_policy_and_keeps_its_lstm_state(workspace) -> None:
    ws = workspace(LENIENT)
    ws.prepare_data()
    ws.train()
    ws.evaluate()
    register(ws, "models", "reports/metrics.json")
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")

    # Step the environment with the local policy, recording what it saw and did.
    from ijules.env.safeguards import Safeguards
    from ijules.training.policy import policy_settings

    meta = FeatureSet.read(ws.path("feature_meta"))
    market = load_window(ws.path("features"), meta, "test", ws.config)
    policy = RecurrentPolicy.load(ws.root / "models")
    env = TradingEnv(
        market, policy_settings(ws.config, policy.spec), Safeguards(ws.config.safeguards)
    )
    observation, _ = env.reset()
    seen, actions = [], []
    for _ in range(60):
        seen.append(observation)
        action = policy.act(observation)
        actions.append(float(action[0]))
        observation, *_ = env.step(action)
    # The served model takes raw features plus the portfolio's entries, by name.
    n_features = len(meta.feature_names)
    portfolio = np.asarray(seen)[:, n_features:]
    rows = pd.DataFrame(
        np.column_stack([market.features[:60], portfolio]), columns=input_columns(policy.spec)
    )

    whole = served.predict(rows, params={"reset": True})["action"].to_numpy()
    np.testing.assert_allclose(whole, actions, atol=1e-5)  # same observations, same actions
    first = served.predict(rows.iloc[:30], params={"reset": True})["action"].to_numpy()
    second = served.predict(rows.iloc[30:])["action"].to_numpy()  # state carried over
    np.testing.assert_allclose(np.concatenate([first, second]), whole, atol=1e-6)
    restarted = served.predict(rows.iloc[30:], params={"reset": True})["action"].to_numpy()
    assert not np.allclose(restarted, second, atol=1e-7)


def test_gate_and_aliases_champion_challenger_rejected_and_rollback(workspace) -> None:
    ws = workspace(LENIENT)
    ws.prepare_data()
    client = MlflowClient()
    for index in (1, 2, 3):
        ws.config = ws.config.model_copy(update={"seed": index})
        ws.train(f"m{index}")
        ws.evaluate(f"m{index}", f"reports/m{index}.json")

    first = register(ws, "m1", "reports/m1.json")
    assert (first.version, first.status, first.alias) == ("1", "champion", "champion")
    assert first.reasons == ["passed the gate; no champion yet"]

    set_sharpe(ws.root / "reports/m2.json", -50.0)
    second = register(ws, "m2", "reports/m2.json")
    assert (second.status, second.alias, second.champion_before) == (
        "challenger",
        "challenger",
        "1",
    )
    assert second.champion_sharpe_on_this_window is not None
    assert "does not beat champion v1" in second.reasons[0]
    assert (alias(client, "champion"), alias(client, "challenger")) == ("1", "2")

    set_sharpe(ws.root / "reports/m3.json", 50.0)
    third = register(ws, "m3", "reports/m3.json")
    assert (third.status, third.alias) == ("champion", "champion")
    assert alias(client, "champion") == "3"
    assert client.get_model_version(NAME, "3").tags["ijules.previous_champion"] == "1"

    again = register(ws, "m3", "reports/m3.json")  # a rerun decides nothing new
    assert (again.version, again.status) == ("3", "champion")
    assert len(client.search_model_versions(f"name='{NAME}'")) == 3

    strict = ws.config.model_copy(
        update={"gate": ws.config.gate.model_copy(update={"min_sharpe": 100.0})}
    )
    ws.config = ws.config.model_copy(update={"seed": 4})
    ws.train("m4")
    ws.evaluate("m4", "reports/m4.json")
    rejected = register(ws, "m4", "reports/m4.json", config=strict)
    assert (rejected.status, rejected.alias) == ("rejected", None)
    assert rejected.reasons[0].startswith("sharpe ") and "is not > 100" in rejected.reasons[0]
    version = client.get_model_version(NAME, rejected.version)
    assert (
        version.tags["ijules.status"] == "rejected"
        and "is not > 100" in version.tags["ijules.reasons"]
    )
    assert alias(client, "champion") == "3"  # untouched by a rejected model

    trail = ws.root / TRAIL
    with pytest.raises(RegistryError, match="rejected by the gate"):
        promote(ws.config, rejected.version, "champion", reason="test", force=False, audit=trail)
    assert rollback(ws.config, reason="drawdown alert", audit=trail, actor="risk") == ("3", "1")
    assert alias(client, "champion") == "1"
    with pytest.raises(RegistryError, match="replaced no earlier version"):
        rollback(ws.config, reason="again", audit=trail)

    # A version registered but never gated (no decision recorded) is no candidate either.
    client.delete_model_version_tag(NAME, "2", "ijules.status")
    with pytest.raises(RegistryError, match="never gated"):
        promote(ws.config, "2", "champion", reason="looks fine", force=False, audit=trail)
    # Overriding the gate takes --force and a reason, and both go on the record.
    with pytest.raises(RegistryError, match="--force needs a --reason"):
        promote(ws.config, rejected.version, "champion", reason=" ", force=True, audit=trail)
    assert alias(client, "champion") == "1"
    promote(
        ws.config, rejected.version, "champion", reason="desk override 42", force=True,
        audit=trail, actor="head-of-desk",
    )  # fmt: skip
    entries = verify(trail)
    assert [(e.action, e.version, e.actor) for e in entries[-2:]] == [
        ("rollback", "1", "risk"),
        ("force_promote", rejected.version, "head-of-desk"),
    ]
    assert [e.action for e in entries[:4]] == ["register"] * 4  # a rerun records nothing new
    assert any("is not > 100" in check for check in entries[-1].checks)
    model = client.get_registered_model(NAME)
    assert model.tags["ijules.audit.head"] == f"{entries[-1].seq}:{entries[-1].hash}"
    tags = client.get_model_version(NAME, rejected.version).tags
    assert tags[f"ijules.audit.{entries[-1].seq:06d}.reason"] == "desk override 42"


def test_stale_metrics_are_not_registered(workspace) -> None:
    ws = workspace(LENIENT)
    ws.prepare_data()
    ws.train("m1")
    ws.evaluate("m1", "reports/m1.json")
    ws.train("m2")  # a new model, but its evaluation was never run
    with pytest.raises(RegistryError, match="run `ijules evaluate` first"):
        register(ws, "m2", "reports/m1.json")
