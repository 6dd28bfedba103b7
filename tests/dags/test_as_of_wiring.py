"""Each run's ingest sees the market as of the run's data-interval end, never the wall clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ijules.config import AS_OF_FILE, AS_OF_KEY, load_as_of
from tests.conftest import REPO

DAGS = REPO / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IJULES_PROJECT_DIR", "/parse-time/ijules-project")
        return DagBag(dag_folder=str(DAGS))


def run_ingest_task(dagbag, dag_id: str, context: dict, tmp_path: Path) -> tuple[Path, list[str]]:
    """Run the rendered ingest task as a worker would, with a `dvc` that notes the as-of file it
    found when it was called and its arguments; return the project and those notes."""
    dag = dagbag.dags[dag_id]
    task = dag.get_task("ingest")
    jinja = dag.get_template_env()
    # What the failure record's path is rendered from (wiring's IJULES_ERROR_FILE).
    ti = SimpleNamespace(task_id="ingest", try_number=1, map_index=-1)
    context = {"dag": dag, "run_id": "test_run", "ti": ti, **context}
    command = task.render_template(task.bash_command, context, jinja_env=jinja)
    env = task.render_template(task.env, context, jinja_env=jinja)
    project = tmp_path / "project"
    project.mkdir()
    (project / AS_OF_FILE).write_text(f"{AS_OF_KEY}: null\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    dvc = tools / "dvc"
    dvc.write_text(
        f'#!/bin/sh\ncat {AS_OF_FILE} > "$0.called"\nprintf "%s\\n" "$@" >> "$0.called"\n'
    )
    dvc.chmod(0o755)
    bash = shutil.which("bash") or "bash"
    done = subprocess.run(
        [bash, "-c", command],
        cwd=tmp_path,
        env={**env, "IJULES_PROJECT_DIR": str(project), "PATH": f"{tools}{os.pathsep}{os.defpath}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return project, Path(f"{dvc}.called").read_text().splitlines()


@pytest.mark.parametrize("dag_id", ["ijules_nightly", "ijules_weekly"])
def test_ingest_writes_the_runs_data_interval_end_before_dvc_repro_ingest(
    dagbag, tmp_path, dag_id: str
) -> None:
    import pendulum

    end = pendulum.datetime(2026, 3, 1, 1, tz="UTC")
    project, called = run_ingest_task(dagbag, dag_id, {"data_interval_end": end}, tmp_path)
    # dvc found the run's as-of in place when it started, and brought the ingest stage up to date.
    *seen, repro, single, stage = called
    assert (repro, single, stage) == ("repro", "--single-item", "ingest")
    assert yaml.safe_load("\n".join(seen)) == {AS_OF_KEY: "2026-03-01T01:00:00+00:00"}
    assert load_as_of(project / AS_OF_FILE) == datetime(2026, 3, 1, 1, tzinfo=UTC)
    # Written to a temporary file and moved over the old one: nothing half-written is left.
    assert [path.name for path in project.iterdir()] == [AS_OF_FILE]


def test_a_run_without_a_data_interval_sees_the_whole_history(dagbag, tmp_path) -> None:
    """A manual run triggered without a logical date has no data interval: it says so (null),
    rather than taking the wall clock for one."""
    project, _ = run_ingest_task(dagbag, "ijules_nightly", {}, tmp_path)
    assert load_as_of(project / AS_OF_FILE) is None


def test_the_dags_the_pipeline_and_the_package_name_one_as_of_file(dagbag) -> None:
    import wiring

    assert (wiring.AS_OF_FILE, wiring.AS_OF_KEY) == (AS_OF_FILE, AS_OF_KEY)
    for dag_id in ("ijules_nightly", "ijules_weekly"):
        task = dagbag.dags[dag_id].get_task("ingest")
        assert "data_interval_end" in task.env["IJULES_AS_OF"]
        assert "now" not in task.env["IJULES_AS_OF"] + task.bash_command
    ingest = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["ingest"]
    # The stage reads the file DVC tracks as its params: a new as-of reruns it.
    assert f"--as-of-file {AS_OF_FILE}" in ingest["cmd"]
    assert {AS_OF_FILE: [AS_OF_KEY]} in ingest["params"]
    # Committed, so that `dvc repro` works on a fresh clone (DVC refuses a missing params file).
    load_as_of(REPO / AS_OF_FILE)
