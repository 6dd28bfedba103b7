"""The DVC pipeline in a fresh project copy: full run, no-op rerun, remote, phases, failure."""

from __future__ import annotations

import json

import pytest
import yaml

from ijules.artifacts import POLICY_SPEC, POLICY_ZIP, PolicyRecord
from ijules.evaluation.config import StressConfig
from tests.conftest import SAMPLES, make_project, run

pytestmark = pytest.mark.slow

STAGES = (
    "ingest",
    "validate",
    "features",
    "train",
    "evaluate",
    "seeds",
    "tune",
    "drift",
    "risk",
    "walk_forward@0",
    "walk_forward@1",
    "walk_forward@2",
    "walk_forward_summary",
    *(f"stress_scenario@{name}" for name in StressConfig().scenarios),
    "stress",
    "report",
    "paper",  # with nothing registered yet: no book opens, the report says so
    "health",  # no model to score: the data's drift only
)


def test_repro_runs_every_stage_once_then_nothing(tmp_path) -> None:
    project = make_project(tmp_path / "project")
    first = run(["dvc", "repro"], project)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)

    second = run(["dvc", "repro"], project)
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in second.stdout

    run(["dvc", "push"], project)
    assert any((project / "var" / "dvc-remote").rglob("*")), "the local remote received nothing"
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    assert metrics, "dvc metrics show found no metrics"

    # A dirty delivery stops the pipeline at validation and leaves every later artifact alone.
    kept = {
        p: (project / p).read_bytes()
        for p in ("data/raw/bars.parquet", f"models/{POLICY_ZIP}", "reports/metrics.json")
    }
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(
        {"source": str(SAMPLES / "btcusd_15m.csv.gz"), "frequency": "15min", "end": None}
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = run(["dvc", "repro"], project, check=False)
    assert failed.returncode != 0
    assert "error: validation failed" in failed.stderr
    assert "Running stage 'features'" not in failed.stdout
    for path, content in kept.items():
        assert (project / path).read_bytes() == content, path


def test_phases_are_selected_with_dvc_exp_set_param(tmp_path) -> None:
    project = make_project(tmp_path / "project")
    (project / "config" / "quick.yaml").write_text(
        yaml.safe_dump({"training": {"total_timesteps": 128}})
    )
    run(["git", "add", "-A"], project)
    run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "quick phase"],
        project,
    )

    # Only the stages up to training: they are what the phase changes here.
    run(["dvc", "exp", "run", "--set-param", "phase=quick", "train"], project)
    policy = PolicyRecord.read(project / "models" / POLICY_SPEC)
    assert policy.training.timesteps == 128

    refused = run(
        ["dvc", "exp", "run", "--set-param", "phase=phase5_production_optimization", "train"],
        project,
        check=False,
    )
    assert refused.returncode != 0
    assert "'portfolio_optimization' is not implemented yet" in refused.stderr
