"""Which of a commit's DVC experiments is each phase's baseline, and which are left out."""

from __future__ import annotations

from typing import Any

import pytest

from ijules.artifacts import MetricsReport, PolicyRecord
from ijules.config import load_config
from ijules.evaluation.experiments import Experiments, select
from tests.conftest import REPO
from tests.unit.test_artifacts import built

METRICS = (REPO / "reports" / "metrics.json").read_text()
RUN_ID = MetricsReport.model_validate_json(METRICS).model.run_id
PARAMS = {"seed": 7, "phase": "base", "training": {"total_timesteps": 65536}}


def policy(run_id: str, stage: str | None = None) -> str:
    record = built()["policy, logged"]
    assert isinstance(record, PolicyRecord)
    training = record.training.model_copy(
        update={"diagnostics": {"rollout_ep_rew_mean": 9_500.0}, "curriculum_stage": stage}
    )
    mlflow = record.mlflow.model_copy(update={"run_id": run_id})
    return record.model_copy(update={"mlflow": mlflow, "training": training}).model_dump_json()


def rev(name: str) -> str:
    return f"{name:0<40}"[:40]


def experiment(
    name: str, when: str, params: dict[str, Any], *, metrics: bool = True, error: bool = False
) -> dict[str, Any]:
    shown = {"data": {"agent": {"sharpe": 1.0}}} if metrics else {"error": {"type": "X"}}
    head = {
        "rev": rev(name),
        "name": name,
        "data": {
            "rev": name,
            "timestamp": when,
            "params": {"params.yaml": {"data": params}},
            "metrics": {"reports/metrics.json": shown},
        },
        "error": {"type": "Failed", "msg": "stage failed"} if error else None,
        "experiments": None,
    }
    return {"revs": [head], "executor": None, "name": name}


@pytest.fixture
def found() -> Experiments:
    """The experiments `dvc exp show --json` would list, and the files each commit holds."""
    rows: list[dict[str, Any]] = [
        {"rev": "workspace", "data": {"params": {"params.yaml": {"data": PARAMS}}}},
        {"rev": "c" * 40, "name": "main", "data": {}, "experiments": []},
    ]
    files: dict[tuple[str, str], str] = {}

    def add(name: str, when: str, phase: str, *, run_id: str = RUN_ID, **kwargs: Any) -> None:
        params = {**PARAMS, "phase": phase, **kwargs.pop("params", {})}
        rows[1]["experiments"].append(experiment(name, when, params, **kwargs))
        files[("reports/metrics.json", rev(name))] = METRICS
        files[("models/policy.json", rev(name))] = policy(run_id)

    add("phase-base", "2026-01-02T10:00:00", "base")
    add("newer-p1", "2026-01-03T10:00:00", "phase1_institutional")
    add("older-p1", "2026-01-01T10:00:00", "phase1_institutional")
    add("tweak", "2026-01-04T10:00:00", "phase3_risk_framework", params={"seed": 8})
    add("partial", "2026-01-04T10:00:00", "phase2_microstructure", metrics=False)
    add("stale", "2026-01-04T10:00:00", "phase4_adaptive_curriculum", run_id="another")
    add("broken", "2026-01-04T10:00:00", "phase3_risk_framework", error=True)
    config = load_config(REPO / "params.yaml")
    return select(config, rows, lambda path, commit: files.get((path, commit)))


def test_each_phase_takes_its_newest_experiment_that_set_only_the_phase(found) -> None:
    assert found.baseline_rev == "c" * 40
    assert sorted(found.runs) == ["base", "phase1_institutional"]
    assert found.runs["phase1_institutional"].name == "newer-p1"
    report = MetricsReport.model_validate_json(METRICS)
    base = found.runs["base"].figures
    assert base.sharpe == report.agent.sharpe
    assert base.max_drawdown == report.agent.max_drawdown
    assert base.daily_turnover == report.agent.daily_turnover
    assert base.passive_buy_and_hold_sharpe == report.baselines.passive_buy_and_hold.sharpe
    assert base.best_rule == report.best_rule
    assert base.episode_reward_mean == 9_500.0


def test_other_experiments_are_left_out_with_the_reason(found) -> None:
    reasons = {e.name: e.reason for e in found.left_out}
    assert sorted(reasons) == ["broken", "older-p1", "partial", "stale", "tweak"]
    assert reasons["older-p1"] == "an older run of phase1_institutional (the newer is newer-p1)"
    assert reasons["tweak"] == "sets parameters besides the phase: seed"
    assert "holds no reports/metrics.json" in reasons["partial"]
    assert "describes run" in reasons["stale"] and "another" in reasons["stale"]
    assert "stage failed" in reasons["broken"]
