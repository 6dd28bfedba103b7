"""Training that can be trusted: reproducible, observable, NaN-intolerant and resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from ijules.artifacts import POLICY_SPEC, POLICY_ZIP, PolicyRecord
from ijules.errors import TrainingError
from tests.conftest import make_project

pytestmark = pytest.mark.slow


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from sb3_contrib import RecurrentPPO

    return dict(RecurrentPPO.load(model_dir / POLICY_ZIP, device="cpu").policy.state_dict())


def test_one_seed_gives_identical_models_and_metrics(workspace) -> None:
    ws = workspace()
    ws.prepare_data()
    ws.train("a")
    ws.train("b")
    first, second = weights(ws.root / "a"), weights(ws.root / "b")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    metrics_a = ws.evaluate("a", "reports/a.json")
    metrics_b = ws.evaluate("b", "reports/b.json")
    # Everything but the MLflow run the report names.
    assert metrics_a.model_dump(exclude={"model"}) == metrics_b.model_dump(exclude={"model"})
    # A different seed is a different model: the comparison above can fail.
    ws.config = ws.config.model_copy(update={"seed": ws.config.seed + 1})
    ws.train("c")
    third = weights(ws.root / "c")
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_the_other_seeds_are_trained_tested_and_not_counted_as_trials(workspace) -> None:
    from ijules.evaluation.seeds import run_seeds

    # Discrete actions: an untrained policy's choice depends on its seed (near-zero continuous
    # targets would all fall under the smallest trade and leave every seed flat).
    ws = workspace({"seeds": {"count": 3}, "environment": {"action_space": "discrete"}})
    ws.prepare_data()
    ws.train()
    evaluation = ws.evaluate()
    spread = run_seeds(
        ws.config,
        features=ws.path("features"),
        meta=ws.path("feature_meta"),
        model_dir=ws.root / "models",
        metrics=ws.path("metrics"),
        output=ws.path("seeds"),
        checkpoints=ws.root / "var" / "checkpoints",
    )
    seed = ws.config.seed
    assert [run.seed for run in spread.runs] == [seed, seed + 1, seed + 2]
    # The registered policy is the first seed, with its own evaluation's figures.
    assert spread.runs[0].run_id == evaluation.model.run_id
    assert spread.runs[0].sharpe == evaluation.agent.sharpe
    # The other seeds are other models: their figures differ, and each is one MLflow run.
    assert len({run.sharpe for run in spread.runs}) == 3
    client = MlflowClient()
    for run in spread.runs[1:]:
        logged = client.get_run(run.run_id)
        assert logged.data.tags["ijules.stage"] == "seeds"
        assert logged.data.metrics["test_sharpe"] == run.sharpe
    # Another draw of the same configuration, not a trial: the ledger is the walk-forward's.
    assert not ws.path("trials").exists()
    assert spread.sharpe <= min(spread.sharpe_lower_bound, spread.runs[0].sharpe)
    assert not any((ws.root / "var" / "checkpoints").rglob("*.zip"))  # nothing left behind


def test_every_update_logs_its_diagnostics(workspace) -> None:
    ws = workspace()
    ws.prepare_data()
    result = ws.train()
    client = MlflowClient()
    run = client.get_run(result.run_id)
    updates = int(run.data.metrics["updates"])
    assert updates >= 1
    for key in (
        "train_entropy",
        "train_explained_variance",
        "train_approx_kl",
        "train_clip_fraction",
        "train_grad_norm",
        "rollout_ep_rew_min",
        "rollout_ep_rew_max",
    ):
        assert key in run.data.metrics, key
    norms = client.get_metric_history(result.run_id, "train_grad_norm")
    assert len(norms) == updates and all(np.isfinite(m.value) and m.value > 0 for m in norms)
    low, high = run.data.metrics["rollout_ep_rew_min"], run.data.metrics["rollout_ep_rew_max"]
    assert low <= run.data.metrics["rollout_ep_rew_mean"] <= high
    record = PolicyRecord.read(ws.root / "models" / POLICY_SPEC)
    assert record.training.diagnostics["nan_incidents"] == 0


def test_a_nan_in_the_data_aborts_training_fails_the_run_and_registers_nothing(workspace) -> None:
    ws = workspace()
    ws.prepare_data()
    ws.train()  # the last good model
    good = (ws.root / "models" / POLICY_ZIP).read_bytes()
    features = ws.path("features")
    table = pd.read_parquet(features)
    train_rows = np.flatnonzero((table["split"] == "train").to_numpy())
    table.loc[train_rows[::7], "ret_1"] = np.nan
    table.to_parquet(features)

    with pytest.raises(TrainingError, match="not finite"):
        ws.train()
    client = MlflowClient()
    runs = client.search_runs(
        [mlflow.get_experiment_by_name("ijules").experiment_id], order_by=["start_time DESC"]
    )
    failed = runs[0]
    assert failed.info.status == "FAILED"
    assert failed.data.metrics["nan_incidents"] == 1
    assert not client.search_logged_models(
        [failed.info.experiment_id], filter_string=f"source_run_id = '{failed.info.run_id}'"
    )
    assert client.search_registered_models() == []
    assert (ws.root / "models" / POLICY_ZIP).read_bytes() == good  # untouched


def test_an_interrupted_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project",
        {"training": {"total_timesteps": 4096, "checkpoint_every": 256, "n_steps": 64}},
    )
    tracking = f"sqlite:///{project / 'var' / 'mlflow.db'}"
    env = {**os.environ, "IJULES_PROJECT_DIR": str(project), "MLFLOW_TRACKING_URI": tracking}
    for stage in ("ingest", "validate", "features"):
        subprocess.run([sys.executable, "-m", "ijules", stage], cwd=project, env=env, check=True,
                       capture_output=True)  # fmt: skip
    interrupted = subprocess.Popen(
        [sys.executable, "-m", "ijules", "train", "--device", "cpu"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    states: list[Path] = []
    while not states and time.monotonic() < deadline and interrupted.poll() is None:
        states = list((project / "var" / "checkpoints").glob("*/checkpoint.json"))
        time.sleep(0.05)
    assert states, "no checkpoint was written"
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (project / "models" / POLICY_ZIP).exists()
    saved = json.loads(states[0].read_text())
    assert 0 < saved["timesteps"] < 4096

    resumed = subprocess.run(
        [sys.executable, "-m", "ijules", "train", "--device", "cpu"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "resuming from the checkpoint at" in resumed.stderr
    record = PolicyRecord.read(project / "models" / POLICY_SPEC)
    assert record.training.timesteps == 4096
    assert record.training.resumed_from >= saved["timesteps"]
    assert record.mlflow.run_id == saved["run_id"]  # the same MLflow run, continued
    run = MlflowClient(tracking_uri=tracking).get_run(saved["run_id"])
    assert run.info.status == "FINISHED"
    assert not list((project / "var" / "checkpoints").glob("*/checkpoint.json"))
