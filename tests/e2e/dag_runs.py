"""What the end-to-end tests share: the DAGs loaded as a worker sees them, a run's task states,
and the tests' Airflow metadata database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO


def migrate_airflow_db() -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True
    )


def load_dags(project: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    # The tasks read the project (and find `dvc` and `ijules` on PATH) when they run, as a worker
    # would: `dag.test()` runs them in this process's environment.
    monkeypatch.setenv("IJULES_PROJECT_DIR", str(project))
    monkeypatch.syspath_prepend(str(REPO / "dags"))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def states(dag_run: Any) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
        )
        return {ti.task_id: str(ti.state) for ti in rows}
