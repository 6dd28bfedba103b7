"""The MLflow flow on a real SQLite store: lineage, the pyfunc model, the review, the approval,
the aliases and the model card."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from ijules.artifacts import FeatureSet, MetricsReport
from ijules.cli import app
from ijules.env.market_data import load_window
from ijules.env.trading_env import TradingEnv
from ijules.errors import RegistryError
from ijules.io import md5_file
from ijules.registry.aliases import promote, rollback
from ijules.registry.approval import approve, reject
from ijules.registry.audit import verify
from ijules.registry.register import run_register
from ijules.training.policy import RecurrentPolicy, input_columns
from tests.conftest import OPEN_GATE

pytestmark = pytest.mark.slow

LENIENT = {
    # Any better Sharpe ratio replaces the champion here: the challenge's rule is tested in units.
    "gate": OPEN_GATE | {"champion_margin": 0.0, "champion_max_p_value": 1.0},
    "seeds": {"count": 1},  # one policy per registration here: the spread is tested elsewhere
}
NAME = "ijules-policy"


TRAIL = "var/audit/trail.jsonl"


def register(ws, model_dir: str, metrics: str, config=None, cards: Path | None = None):
    return run_register(
        config or ws.config,
        model_dir=ws.root / model_dir,
        metrics=ws.root / metrics,
        features=ws.path("features"),
        meta=ws.path("feature_meta"),
        output=ws.root / "reports" / "registry.json",
        audit=ws.root / TRAIL,
        cards=cards,
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
    registered = register(ws, "models", "reports/metrics.json")
    served = mlflow.pyfunc.load_model(f"models:/{NAME}/{registered.version}")

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
    seen, actions, equity, allowed = [], [], [], []
    for _ in range(60):
        seen.append(observation)
        equity.append(float(env.engine.equity()[0]))
        action = policy.act(observation)
        actions.append(float(action[0]))
        observation, *_ = env.step(action)
        allowed.append(float(env.engine.sim.account("wanted")[0, 0]))
    # The served model takes raw features plus the portfolio's entries, by name, and what the
    # risk engine reads of each bar.
    n_features = len(meta.feature_names)
    portfolio = np.asarray(seen)[:, n_features:]
    rows = pd.DataFrame(
        np.column_stack([market.features[:60], portfolio]), columns=input_columns(policy.spec)
    )
    rows["timestamp"] = pd.to_datetime(market.timestamps[:60]).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows["equity"] = equity
    rows["sigma:BTCUSD"] = market.sigma[:60, 0]
    rows["daily_var:BTCUSD"] = market.daily_var[:60, 0]
    rows["volatility_ratio"] = market.volatility_ratio[:60]
    for flag in ("crisis", "recovery", "high_volatility", "correlation_break"):
        rows[flag] = getattr(market, flag)[:60]

    out = served.predict(rows, params={"reset": True})
    whole = out["action"].to_numpy()
    np.testing.assert_allclose(whole, actions, atol=1e-5)  # same observations, same actions
    # ...and what leaves it is what the environment's risk engine allowed.
    np.testing.assert_allclose(out["target"].to_numpy(), allowed, atol=1e-5)
    assert set(out["trading_state"]) <= {"ACTIVE", "REDUCING", "HALTED"}
    first = served.predict(rows.iloc[:30], params={"reset": True})["action"].to_numpy()
    second = served.predict(rows.iloc[30:])["action"].to_numpy()  # state carried over
    np.testing.assert_allclose(np.concatenate([first, second]), whole, atol=1e-6)
    restarted = served.predict(rows.iloc[30:], params={"reset": True})["action"].to_numpy()
    assert not np.allclose(restarted, second, atol=1e-7)


def served_weights(client: MlflowClient, version: str) -> Path:
    """The stored policy.zip the registry serves for ``version`` (a local file store)."""
    source = client.get_model_version(NAME, version).source
    location = mlflow.get_logged_model(source.removeprefix("models:/")).artifact_location
    (path,) = Path(location.removeprefix("file://")).rglob("policy.zip")
    return path


def test_review_then_approval_moves_aliases_and_nothing_else_does(workspace) -> None:
    """Register and review, then a person's answer: approve (aliases move), reject (nothing
    moves); an edited report or swapped weights fail; rollback verifies the weights."""
    ws = workspace(LENIENT)
    ws.prepare_data()
    client = MlflowClient()
    trail = ws.root / TRAIL
    for index in (1, 2, 3, 4):
        ws.config = ws.config.model_copy(update={"seed": index})
        ws.train(f"m{index}")
        ws.evaluate(f"m{index}", f"reports/m{index}.json")

    first = register(ws, "m1", "reports/m1.json")
    assert (first.version, first.status, first.alias) == ("1", "awaiting_approval", None)
    assert (first.proposed_alias, first.reasons) == (
        "champion",
        ["passed the review; no champion yet"],
    )
    assert first.gate is not None and first.gate.passed
    rows = {check.metric for check in first.gate.checks}
    assert {
        "weights_sha256", "compatibility", "metrics_recomputed", "nan_incidents",
        "psr", "dsr", "var_zone", "sharpe", "max_drawdown", "daily_turnover",
    } <= rows  # fmt: skip
    table = (ws.root / "reports" / "registry.md").read_text()
    assert all(f"| {row} |" in table for row in rows)
    assert alias(client, "champion") is None  # the review alone moves nothing

    approved = approve(ws.config, "1", reason="risk committee 12", audit=trail, actor="ro")
    assert (approved.status, approved.alias, approved.decided_by) == ("champion", "champion", "ro")
    assert approved.decision_reason == "risk committee 12"
    with pytest.raises(RegistryError, match="not awaiting approval"):
        approve(ws.config, "1", reason="twice", audit=trail)

    # Against a champion, a margin no model reaches: proposed as challenger. Rejected.
    wide = ws.config.model_copy(
        update={"gate": ws.config.gate.model_copy(update={"champion_margin": 100.0})}
    )
    second = register(ws, "m2", "reports/m2.json", config=wide)
    assert (second.status, second.proposed_alias) == ("awaiting_approval", "challenger")
    assert second.challenge is not None and second.challenge.champion == "1"
    assert not second.challenge.better and "does not beat the champion" in second.reasons[0]
    with pytest.raises(RegistryError, match="needs a reason"):
        reject(ws.config, "2", reason=" ", audit=trail)
    declined = reject(ws.config, "2", reason="turnover too high", audit=trail, actor="ro")
    assert (declined.status, declined.alias) == ("declined", None)
    assert (alias(client, "champion"), alias(client, "challenger")) == ("1", None)
    with pytest.raises(RegistryError, match="declined at approval"):
        promote(ws.config, "2", "champion", reason="test", force=False, audit=trail)

    # A report edited after the evaluation: the figures recomputed from the served model differ.
    set_sharpe(ws.root / "reports/m3.json", 5.0)
    edited = register(ws, "m3", "reports/m3.json")
    assert edited.status == "rejected" and edited.gate is not None
    failed = [check.metric for check in edited.gate.checks if not check.passed]
    assert failed == ["metrics_recomputed"]
    assert client.get_model_version(NAME, "3").tags["ijules.status"] == "rejected"
    with pytest.raises(RegistryError, match="rejected by the automatic review"):
        promote(ws.config, "3", "champion", reason="test", force=False, audit=trail)
    with pytest.raises(RegistryError, match="not awaiting approval"):
        approve(ws.config, "3", reason="ok", audit=trail)

    fourth = register(ws, "m4", "reports/m4.json")
    assert fourth.challenge is not None
    expected = "champion" if fourth.challenge.better else "challenger"
    assert fourth.proposed_alias == expected
    assert (
        fourth.challenge.candidate_sharpe
        == MetricsReport.read(ws.root / "reports/m4.json").agent.sharpe
    )
    approve(ws.config, "4", reason="weekly review", audit=trail, actor="ro")
    assert alias(client, expected) == "4"
    if expected == "challenger":  # an approved challenger may be promoted by hand
        promote(ws.config, "4", "champion", reason="desk decision", force=False, audit=trail)
    # Either way v4 is champion and holds no other alias: it trades in one book.
    assert (alias(client, "champion"), alias(client, "challenger")) == ("4", None)
    assert client.get_model_version(NAME, "4").tags["ijules.previous_champion"] == "1"
    again = register(ws, "m4", "reports/m4.json")  # a rerun reviews nothing new
    assert (again.version, again.status) == (
        "4",
        "champion" if expected == "champion" else "challenger",
    )
    assert again.gate is not None and again.gate.passed  # the logged review, read back
    assert len(client.search_model_versions(f"name='{NAME}'")) == 4

    assert rollback(ws.config, reason="drawdown alert", audit=trail, actor="risk") == ("4", "1")
    assert alias(client, "champion") == "1"
    # Weights swapped in the store after registration: no rollback to them.
    promote(ws.config, "4", "champion", reason="back again", force=False, audit=trail)
    weights = served_weights(client, "1")
    weights.write_bytes(weights.read_bytes() + b"tampered")
    with pytest.raises(RegistryError, match="artifact was altered"):
        rollback(ws.config, reason="drawdown alert", audit=trail)
    assert alias(client, "champion") == "4"

    # Overriding the review takes --force and a reason, and both go on the record.
    with pytest.raises(RegistryError, match="--force needs a --reason"):
        promote(ws.config, "3", "champion", reason=" ", force=True, audit=trail)
    promote(
        ws.config, "3", "champion", reason="desk override 42", force=True,
        audit=trail, actor="head-of-desk",
    )  # fmt: skip
    entries = verify(trail)
    actions = [(e.action, e.version) for e in entries]
    assert actions[:6] == [
        ("register", "1"), ("approve", "1"), ("register", "2"), ("reject", "2"),
        ("register", "3"), ("register", "4"),
    ]  # fmt: skip
    assert ("rollback", "1") in actions and actions[-1] == ("force_promote", "3")
    assert [e.actor for e in entries if e.action in ("approve", "reject")][:2] == ["ro", "ro"]
    assert any("recomputed sharpe" in check for check in entries[-1].checks)
    model = client.get_registered_model(NAME)
    assert model.tags["ijules.audit.head"] == f"{entries[-1].seq}:{entries[-1].hash}"
    tags = client.get_model_version(NAME, "3").tags
    assert tags[f"ijules.audit.{entries[-1].seq:06d}.reason"] == "desk override 42"


def test_model_card_documents_the_version_and_who_approved_it(workspace, tmp_path) -> None:
    """Registering writes the version's card; approving rewrites it with the approver;
    `ijules card` renders it again, and every card is an artifact of the training run."""
    ws = workspace(LENIENT)
    ws.prepare_data()
    ws.train()
    ws.evaluate()
    cards = ws.path("cards")
    registered = register(ws, "models", "reports/metrics.json", cards=cards)
    reviewed = (cards / f"{NAME}-v1.md").read_text()
    assert "| status | awaiting_approval |" in reviewed
    assert "| decided by | nobody yet |" in reviewed
    trail = ws.root / TRAIL
    approve(ws.config, "1", reason="risk committee 12", audit=trail, actor="ro", cards=cards)
    assert "| decided by | ro |" in (cards / f"{NAME}-v1.md").read_text()

    elsewhere = tmp_path / "printed"
    params = tmp_path / "params" / "params.yaml"
    command = ["--params", str(params), "card", "1", "--output-dir", str(elsewhere)]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    markdown, page = (Path(line) for line in result.output.splitlines())
    assert (markdown, page) == (elsewhere / f"{NAME}-v1.md", elsewhere / f"{NAME}-v1.html")
    for text in (markdown.read_text(), page.read_text()):
        assert registered.weights_sha256 is not None and registered.weights_sha256 in text
        assert "git revision at review" in text and "risk committee 12" in text
    assert "| decided by | ro |" in markdown.read_text()
    assert "<td>decided by</td><td>ro</td>" in page.read_text()
    logged = MlflowClient().list_artifacts(registered.run_id, "card")
    assert sorted(item.path for item in logged) == [f"card/{NAME}-v1.html", f"card/{NAME}-v1.md"]
    review = {item.path for item in MlflowClient().list_artifacts(registered.run_id, "review")}
    assert {"review/registry.json", "review/card_facts.json"} <= review


def test_stale_metrics_are_not_registered(workspace) -> None:
    ws = workspace(LENIENT)
    ws.prepare_data()
    ws.train("m1")
    ws.evaluate("m1", "reports/m1.json")
    ws.train("m2")  # a new model, but its evaluation was never run
    with pytest.raises(RegistryError, match="run `ijules evaluate` first"):
        register(ws, "m2", "reports/m1.json")
