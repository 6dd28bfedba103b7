"""`make phases` in a project copy: phase experiments set beside the master plan's criteria."""

from __future__ import annotations

import json

import pytest

from ijules.artifacts import MetricsReport, PhasesSummary, PolicyRecord
from ijules.config import available_phases
from tests.conftest import make_project, run

pytestmark = pytest.mark.slow

CHEAP = "phase1_institutional"  # environment and reward settings only: no curriculum, no costs


def test_phase_experiments_are_reported_beside_the_plans_criteria(tmp_path) -> None:
    project = make_project(tmp_path / "project")
    # Up to the evaluation, which is all the report reads (`make phases` runs every stage).
    exp_run = ["dvc", "exp", "run", "--temp"]
    for phase in ("base", CHEAP):
        named = ["--name", f"phase-{phase}", "--set-param", f"phase={phase}"]
        run([*exp_run, *named, "evaluate"], project)
    # Another parameter besides the phase: not the phase's baseline.
    tweak = ["--set-param", f"phase={CHEAP}", "--set-param", "training.total_timesteps=128"]
    run([*exp_run, "--name", "tweak", *tweak, "train"], project)

    made = run(["bash", "scripts/phases.sh", "phase5_production_optimization"], project)
    assert "== phase5_production_optimization: skipped: " in made.stdout
    assert "'portfolio_optimization' is not implemented yet" in made.stdout

    summary = PhasesSummary.read(project / "reports" / "phases" / "summary.json")
    phases = {row.phase: row for row in summary.phases}
    assert list(phases) == available_phases(project / "config")
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    assert summary.baseline_rev == shown[1]["rev"]
    experiments = {e["revs"][0]["name"]: e["revs"][0] for e in shown[1]["experiments"]}
    for phase in ("base", CHEAP):
        row, experiment = phases[phase], experiments[f"phase-{phase}"]
        assert (row.status, row.experiment, row.rev) == ("run", f"phase-{phase}", experiment["rev"])
        data = experiment["data"]
        shown_metrics = data["metrics"]["reports/metrics.json"]["data"]
        agent = shown_metrics["agent"]
        assert row.figures is not None
        figures = row.figures
        assert (figures.sharpe, figures.max_drawdown, figures.daily_turnover) == (
            agent["sharpe"],
            agent["max_drawdown"],
            agent["daily_turnover"],
        )
        assert (
            figures.passive_buy_and_hold_sharpe
            == (shown_metrics["baselines"]["passive_buy_and_hold"]["sharpe"])
        )
        assert figures.best_rule == shown_metrics["best_rule"]
        assert figures.best_rule_sharpe == shown_metrics["baselines"][figures.best_rule]["sharpe"]
        # The training's figures: the policy record the experiment cached.
        md5 = data["outs"]["models/policy.json"]["hash"]
        cached = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        policy = PolicyRecord.model_validate_json(cached.read_text())
        assert policy.mlflow.run_id == shown_metrics["model"]["run_id"]
        reward = policy.training.diagnostics["rollout_ep_rew_mean"]
        assert figures.episode_reward_mean == reward
        assert figures.curriculum_stage is None

    assert [(c.criterion, c.outcome) for c in phases["base"].criteria] == [
        ("100% reproducibility", "not measured")
    ]
    (episodes,) = phases[CHEAP].criteria
    assert (episodes.criterion, episodes.threshold) == ("Episode rewards 8k-25k", "8,000 to 25,000")
    assert episodes.value == phases[CHEAP].figures.episode_reward_mean  # type: ignore[union-attr]
    assert episodes.outcome == ("met" if 8_000 <= reward <= 25_000 else "not met")
    assert phases[CHEAP].gate == episodes.outcome

    for phase in ("phase2_microstructure", "phase3_risk_framework", "phase4_adaptive_curriculum"):
        assert phases[phase].status == "not run"
    for phase in ("phase5_production_optimization", "phase6_regime_mastery"):
        assert phases[phase].status == "refused"
        assert "is not implemented yet" in phases[phase].reason
        assert {c.outcome for c in phases[phase].criteria} == {"not measured"}
    assert [(e.name, e.reason) for e in summary.left_out] == [
        ("tweak", "sets parameters besides the phase: training.total_timesteps")
    ]

    text = (project / "reports" / "phases" / "summary.md").read_text()
    assert f"| {CHEAP} | 1 | `phase-{CHEAP}` |" in text
    unrun = "| phase3_risk_framework | Risk Management | Sharpe >1.0 | > 1.0 | - | not measured |"
    assert unrun in text
    # The experiments ran in temporary copies: the workspace holds none of their results.
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], project).stdout == ""
    assert not (project / "reports" / "metrics.json").exists()
    assert MetricsReport.read_if_present(project / "reports" / "metrics.json") is None
