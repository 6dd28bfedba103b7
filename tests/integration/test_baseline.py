"""`ijules baseline reproduce` in a project copy: a registered version's pipeline rerun at its
commit and parameters gives the registered test metrics exactly, and a difference is named."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from ijules.artifacts import BaselineReproduction
from ijules.registry.baseline import METRICS
from ijules.tracking import DIRTY_TAG, REVISION_TAG
from tests.conftest import make_project, run

pytestmark = pytest.mark.slow

NAME = "ijules-policy"
# A barely trained policy's weights are small: skipped below the default trade size, it would
# trade nothing, and all-zero figures would reproduce whatever the pipeline did.
TRADING = {"environment": {"min_trade_weight": 0.0}}


def test_a_registered_baseline_reproduces_exactly_and_a_difference_is_named(tmp_path) -> None:
    project = make_project(tmp_path / "project", TRADING)
    uri = f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}"
    run(["dvc", "repro", "evaluate"], project, MLFLOW_TRACKING_URI=uri)
    run(["ijules", "register"], project, MLFLOW_TRACKING_URI=uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.get_model_version(NAME, "1").run_id
    assert client.get_run(run_id).data.tags[DIRTY_TAG] == "false"
    runs_before = len(client.search_runs([r.experiment_id for r in client.search_experiments()]))

    same = run(["ijules", "baseline", "reproduce", "1"], project, MLFLOW_TRACKING_URI=uri)
    for stage in ("ingest", "validate", "features", "train", "evaluate"):
        assert f"Running stage '{stage}'" in same.stderr  # rerun, not restored from a cache
    result = BaselineReproduction.read(project / "reports" / "baseline" / "v1.json")
    assert result.reproduced and result.tolerance == 0.0
    assert [row.metric for row in result.metrics] == list(METRICS)
    for row in result.metrics:
        assert row.difference == 0.0 and row.reproduced == row.registered, row
        assert f"{row.metric} " in same.stdout
    assert result.features_md5_reproduced == result.features_md5_registered
    assert result.metrics[-1].registered > 0  # it traded
    # The registry was only read, and the throw-away worktree is gone.
    assert len(client.search_runs([r.experiment_id for r in client.search_experiments()])) == (
        runs_before
    )
    worktrees = run(["git", "worktree", "list"], project).stdout.strip().splitlines()
    assert len(worktrees) == 1, worktrees

    # A registered figure one part in a million off: named, exit 1.
    sharpe = float(client.get_model_version(NAME, "1").tags["test.sharpe"])
    client.set_model_version_tag(NAME, "1", "test.sharpe", str(sharpe + 1e-6))
    off = run(["ijules", "baseline", "reproduce", "1"], project, False, MLFLOW_TRACKING_URI=uri)
    assert off.returncode == 1
    assert "does not reproduce: sharpe differs" in off.stderr
    planted = BaselineReproduction.read(project / "reports" / "baseline" / "v1.json")
    assert [row.metric for row in planted.metrics if not row.within_tolerance] == ["sharpe"]

    # A pipeline that fails there (an unknown phase) leaves no worktree and no folder behind.
    client.set_tag(run_id, "params.phase", "no_such_phase")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    failed = run(
        ["ijules", "baseline", "reproduce", "1"],
        project,
        False,
        MLFLOW_TRACKING_URI=uri,
        TMPDIR=str(scratch),
    )
    assert failed.returncode == 1 and "`dvc repro evaluate` failed" in failed.stderr
    assert list(scratch.iterdir()) == []
    assert len(run(["git", "worktree", "list"], project).stdout.strip().splitlines()) == 1

    # A commit the repository does not hold, and a dirty one, are refused before any work.
    client.set_tag(run_id, REVISION_TAG, "0" * 40)
    absent = run(["ijules", "baseline", "reproduce", "1"], project, False, MLFLOW_TRACKING_URI=uri)
    assert absent.returncode == 1 and "does not hold: fetch it first" in absent.stderr
    client.set_tag(run_id, DIRTY_TAG, "true")
    dirty = run(["ijules", "baseline", "reproduce", "1"], project, False, MLFLOW_TRACKING_URI=uri)
    assert dirty.returncode == 1 and "with uncommitted changes" in dirty.stderr
