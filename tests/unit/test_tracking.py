"""Lineage: the commit a training records, and what makes it dirty."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ijules.tracking import AS_OF_TAG, DIRTY_TAG, REVISION_TAG, source_tags


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_only_code_and_data_changes_mark_a_training_dirty(
    make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config()
    project = tmp_path / "project"
    for name in ("params.yaml", "dvc.lock", "reports/metrics.json", "ijules/env.py", "notes.md"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("v1\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    monkeypatch.chdir(project)
    monkeypatch.setenv("IJULES_PROJECT_DIR", str(project))
    head = git(project, "rev-parse", "HEAD")
    params = Path("params.yaml")

    # What a `dvc repro` rewrites before training, and the parameter file logged with the run.
    for name in ("params.yaml", "dvc.lock", "reports/metrics.json"):
        (project / name).write_text("v2\n")
    (project / "untracked.py").write_text("x = 1\n")
    assert source_tags(config, params) == {REVISION_TAG: head, DIRTY_TAG: "false"}
    # Without the parameter file logged, a change to it is a change.
    assert source_tags(config, None)[DIRTY_TAG] == "true"
    (project / "ijules" / "env.py").write_text("v2\n")
    assert source_tags(config, params) == {REVISION_TAG: head, DIRTY_TAG: "true"}


def test_a_new_as_of_is_recorded_and_does_not_mark_a_training_dirty(
    make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each DAG run writes its as-of into the tracked as_of.yaml: a training after it is clean,
    and records the as-of, for a reproduction to stage the same history."""
    config = make_config()
    project = tmp_path / "project"
    project.mkdir()
    (project / "as_of.yaml").write_text("as_of: null\n")
    (project / "code.py").write_text("v1\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    monkeypatch.chdir(project)
    monkeypatch.setenv("IJULES_PROJECT_DIR", str(project))
    head = git(project, "rev-parse", "HEAD")

    assert source_tags(config, None) == {REVISION_TAG: head, DIRTY_TAG: "false", AS_OF_TAG: "null"}
    (project / "as_of.yaml").write_text("as_of: '2026-03-01T01:00:00Z'\n")
    assert source_tags(config, None) == {
        REVISION_TAG: head,
        DIRTY_TAG: "false",
        AS_OF_TAG: "2026-03-01T01:00:00+00:00",
    }
