"""The `ijules` command line: help, every stage in a project, and one-line errors."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ijules.artifacts import ValidationResult
from ijules.cli import app
from ijules.evaluation.config import StressConfig
from tests.conftest import SAMPLES, make_project, run

COMMANDS = (
    "ingest",
    "validate",
    "features",
    "train",
    "evaluate",
    "seeds",
    "walk-forward-fold",
    "walk-forward",
    "stress-scenario",
    "stress",
    "report",
    "register",
    "drift",
    "paper",
    "promote",
    "card",
    "rollback",
    "audit",
    "summary",
    "config",
    "baseline",
    "phases",
)


def ijules(*args: str, cwd, check: bool = False):
    return run([sys.executable, "-m", "ijules", *args], cwd, check=check)


def test_every_stage_has_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0
    for command in COMMANDS:
        assert command in listing.output
        assert runner.invoke(app, [command, "--help"]).exit_code == 0


@pytest.mark.slow
def test_stages_run_in_order_from_the_command_line(tmp_path, monkeypatch) -> None:
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    monkeypatch.setenv("IJULES_PROJECT_DIR", str(project))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'var' / 'mlflow.db'}")
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
        return result.output

    assert "ingested 2534 of 20111 rows" in invoke("ingest")
    assert "validated 2534 bars" in invoke("validate")
    assert "features; bars per window: train" in invoke("features")
    assert "trained 256 steps on cpu" in invoke("train", "--device", "cpu")
    assert "test window: agent Sharpe" in invoke("evaluate")
    assert "test Sharpe by seed" in invoke("seeds")
    for fold in ("0", "1", "2"):
        assert f"fold {fold}: agent Sharpe" in invoke("walk-forward-fold", "--fold", fold)
    assert "of 3 folds passed" in invoke("walk-forward")
    scenarios = StressConfig().scenarios
    for name in scenarios:
        assert f"stress {name}: " in invoke("stress-scenario", "--scenario", name)
    gathered = invoke("stress")
    assert "stress: survived" in gathered and f"of {len(scenarios)} scenarios" in gathered
    assert "performance report:" in invoke("report")
    assert "ijules-policy v1:" in invoke("register")
    audited = invoke("audit")
    assert "register      ijules-policy v1" in audited and "1 entries, hash chain intact" in audited
    trail = project / "var" / "audit" / "trail.jsonl"
    pristine = trail.read_text()
    edited = pristine.replace('"reason":"automatic review ', '"reason":"review (edited) ')
    assert edited != pristine
    trail.write_text(edited)
    tampered = runner.invoke(app, ["audit"])
    assert tampered.exit_code != 0 and "line 1: its content does not match its hash" in str(
        tampered.exception
    )
    trail.write_text("")  # cut: the registry's head still names line 1
    assert "records line 1" in str(runner.invoke(app, ["audit"]).exception)
    trail.write_text(pristine)
    # A stress report that lacks a configured scenario is no evidence of surviving it.
    report = project / "reports" / "stress.json"
    full = report.read_text()
    stress = json.loads(full)
    stress["scenarios"] = stress["scenarios"][1:]
    report.write_text(json.dumps(stress))
    refused = runner.invoke(app, ["register"])
    assert refused.exit_code != 0 and "but stress.scenarios configures" in str(refused.exception)
    report.write_text(full)
    assert "features drifted" in invoke("drift")
    summary = invoke("summary")
    for expected in (
        "2,534 rows ingested",
        "passive B&H",
        "walk-forward (expanding)",
        "stress:   survived",
        "red flag(s)",
        "ijules-policy v1",
        "features drifted",
    ):
        assert expected in summary
    resolved = yaml.safe_load(invoke("config"))
    assert resolved["training"]["total_timesteps"] == 256
    assert (project / "reports" / "equity.png").stat().st_size > 10_000
    curve = pd.read_csv(project / "reports" / "equity.csv")
    assert list(curve.columns) == [
        "timestamp",
        "agent",
        "passive_buy_and_hold",
        "risk_managed_long",
        "tsmom",
        "macd",
        "flat",
        "random",
        "agent_position",
        "regime",
    ]


def test_unknown_params_key_is_one_line_and_exit_1(tmp_path) -> None:
    project = make_project(tmp_path / "project", {"training": {"epochs": 3}})
    result = ijules("config", cwd=project)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: unknown key 'training.epochs'"
    ]


def test_wrong_source_path_is_one_line_and_leaves_staging_alone(tmp_path) -> None:
    project = make_project(tmp_path / "project")
    result = ijules("ingest", "--source", "nowhere/bars.csv", cwd=project)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: source not found: nowhere/bars.csv"
    assert not (project / "data" / "staging").exists()


def test_a_failing_command_writes_its_error_line_where_ijules_error_file_says(tmp_path) -> None:
    """Where an Airflow task's failure e-mail finds the cause (the shell only says exit 1)."""
    project = make_project(tmp_path / "project")
    argv = [sys.executable, "-m", "ijules", "ingest", "--source", "nowhere/bars.csv"]
    record = project / "var" / "failures" / "dag" / "run" / "ingest" / "1.error"
    result = run(argv, project, check=False, IJULES_ERROR_FILE=str(record.relative_to(project)))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: source not found: nowhere/bars.csv"
    assert record.read_text() == "source not found: nowhere/bars.csv\n"
    # A command that succeeds writes none.
    run([sys.executable, "-m", "ijules", "config"], project, IJULES_ERROR_FILE="var/ok.error")
    assert not (project / "var" / "ok.error").exists()


def test_failed_validation_is_one_line_naming_rules_and_keeps_raw(tmp_path) -> None:
    project = make_project(tmp_path / "project", {"data": {"end": None}})
    ijules("ingest", cwd=project, check=True)
    ijules("validate", cwd=project, check=True)
    good = (project / "data" / "raw" / "bars.parquet").read_bytes()
    dirty = str(SAMPLES / "btcusd_15m.csv.gz")
    ijules("ingest", "--source", dirty, cwd=project, check=True)
    result = ijules("validate", cwd=project)
    assert result.returncode == 1
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "unique_timestamps" in line and "increasing_timestamps" in line and "on_grid" in line
    assert (project / "data" / "raw" / "bars.parquet").read_bytes() == good
    saved = ValidationResult.read(project / "reports" / "validation" / "result.json")
    assert saved.summary.success is False
