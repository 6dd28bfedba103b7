"""The DAGs as the scheduler sees them: they load, and their task graphs are as designed."""

from __future__ import annotations

import ast
import itertools
import sys
from datetime import UTC
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DAGS = REPO / "dags"
WRITERS = {
    "ingest",
    "validate",
    "features",
    "train",
    "evaluate",
    "walk_forward",
    "stress",
    "report",
    "drift",
    "risk_report",
    "gate_and_register",
}
TRAINERS = {"train", "walk_forward"}  # the tasks a GPU worker should take


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # Airflow puts the DAGs folder on sys.path, which makes the shared `wiring` module importable.
    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    return DagBag(dag_folder=str(DAGS))


def edges(dag) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


def test_dagbag_loads_both_dags_without_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {"ijules_weekly", "ijules_nightly"}


def test_weekly_retrains_then_gates(dagbag) -> None:
    dag = dagbag.dags["ijules_weekly"]
    chain = [
        "ingest",
        "validate",
        "features",
        "train",
        "evaluate",
        "walk_forward",
        "stress",
        "risk_report",
        "report",
        "gate_and_register",
    ]
    assert edges(dag) == set(itertools.pairwise(chain))


def test_nightly_monitors_then_mails(dagbag) -> None:
    dag = dagbag.dags["ijules_nightly"]
    chain = ["ingest", "validate", "features", "drift", "email_risk_team"]
    assert edges(dag) == set(itertools.pairwise(chain))


def test_training_goes_to_the_gpu_queue_and_only_training(dagbag) -> None:
    for dag_id in ("ijules_weekly", "ijules_nightly"):
        for task in dagbag.dags[dag_id].tasks:
            assert (task.queue == "gpu") == (task.task_id in TRAINERS), task.task_id


def test_workspace_writers_share_a_one_slot_pool(dagbag) -> None:
    for dag_id in ("ijules_weekly", "ijules_nightly"):
        for task in dagbag.dags[dag_id].tasks:
            if task.task_id in WRITERS:
                assert task.pool == "ijules_dvc_workspace", task.task_id


def test_data_checks_are_not_retried(dagbag) -> None:
    for dag_id in ("ijules_weekly", "ijules_nightly"):
        assert dagbag.dags[dag_id].get_task("validate").retries == 0


def test_scheduling_follows_house_rules(dagbag) -> None:
    for dag in dagbag.dags.values():
        assert dag.schedule is not None or dag.timetable is not None
        assert dag.catchup is False
        assert dag.start_date.utcoffset() == UTC.utcoffset(None)
        assert dag.tags and "ijules" in dag.tags
        assert dag.max_active_runs == 1
        assert "retries" in dag.default_args


def test_dvc_tasks_name_real_pipeline_stages(dagbag) -> None:
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            command = getattr(task, "bash_command", "")
            if 'dvc" repro' in command:
                named = command.split("--single-item")[1].split()
                assert named and set(named) <= stages, task.task_id


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_only_airflow_and_the_standard_library(path: Path) -> None:
    allowed = set(sys.stdlib_module_names) | {"airflow", "__future__", "wiring"}
    assert _top_level_imports(path) <= allowed
