"""The DAGs as the scheduler sees them: they load, and their task graphs are as designed."""

from __future__ import annotations

import ast
import itertools
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DAGS = REPO / "dags"
BIN = Path(sys.executable).parent  # the interpreter folder of the process that parses the DAGs
# What IJULES_PROJECT_DIR says while the DAGs are parsed: no task may carry it.
PARSE_TIME_PROJECT = "/parse-time/ijules-project"
WRITERS = {
    "ingest",
    "validate",
    "features",
    "train",
    "evaluate",
    "seeds",
    "tune",
    "walk_forward",
    "walk_forward_fold",
    "stress_scenario",
    "stress",
    "report",
    "drift",
    "paper",
    "health",
    "risk_report",
    "review",
    "promote",
    "record_rejection",
}
# The tasks a GPU worker should take: the walk-forward folds, not their summary (CPU work).
TRAINERS = {"train", "walk_forward_fold", "seeds", "tune"}
# Workspace tasks that read only what no running task changes and write only their own output.
SHARED = {"walk_forward_fold", "stress_scenario", "risk_report"}
DVC_REPRO = re.compile(r"\bdvc (--wait-for-lock )?repro\b")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # Airflow puts the DAGs folder on sys.path, which makes the shared `wiring` module importable.
    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IJULES_PROJECT_DIR", PARSE_TIME_PROJECT)
        return DagBag(dag_folder=str(DAGS))


def bash_tasks(dagbag) -> list:
    from airflow.providers.standard.operators.bash import BashOperator

    return [
        task for dag in dagbag.dags.values() for task in dag.tasks if isinstance(task, BashOperator)
    ]


def edges(dag) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


def test_dagbag_loads_every_dag_without_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {"ijules_weekly", "ijules_nightly", "ijules_rollback"}


def test_rollback_is_manual_needs_a_reason_and_never_waits_for_the_workspace(dagbag) -> None:
    dag = dagbag.dags["ijules_rollback"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
    reason = dag.params.get_param("reason")
    # A string of 3 or more, or none (the default, so that a failed run's callback context can
    # be built): `ijules rollback` refuses a run without one (tests/e2e, the refused rollback).
    assert reason.schema["type"] == ["null", "string"] and reason.schema["minLength"] >= 3
    assert reason.value is None
    (task,) = dag.tasks
    assert task.pool != "ijules_dvc_workspace" and task.retries == 0
    # The reason reaches the command through the environment, never spliced into the shell line.
    assert "params.reason" not in task.bash_command
    assert task.env["IJULES_ROLLBACK_REASON"] == "{{ params.reason or '' }}"  # none: empty
    assert task.env["IJULES_ACTOR"].startswith("airflow:")


def test_weekly_retrains_reviews_then_waits_for_a_person(dagbag) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = dagbag.dags["ijules_weekly"]
    chain = [
        "ingest",
        "validate",
        "features",
        "train",
        "evaluate",
        "seeds",
        "tune",
        "list_walk_forward_folds",
        "walk_forward_fold",
        "walk_forward",
        "report",
        "review",
        "review_passed",
        "approval",
        "promote",
        "record_rejection",
    ]
    # The stress scenarios need the model only; the risk report not even that.
    beside = {
        ("train", "list_stress_scenarios"),
        ("list_stress_scenarios", "stress_scenario"),
        ("stress_scenario", "stress"),
        ("stress", "report"),
        ("validate", "risk_report"),
        ("risk_report", "report"),
    }
    watcher = "watcher"
    tasks = [*chain, "list_stress_scenarios", "stress_scenario", "stress", "risk_report"]
    assert (
        edges(dag) - {(task, watcher) for task in tasks} == set(itertools.pairwise(chain)) | beside
    )
    # Any failure fails the run, though its last task may be skipped by its trigger rule.
    assert dag.get_task(watcher).upstream_task_ids == set(tasks)
    assert dag.get_task(watcher).trigger_rule == "one_failed"
    approval = dag.get_task("approval")
    assert isinstance(approval, ApprovalOperator)
    assert approval.response_timeout is not None  # unanswered, nothing is promoted
    assert "reason" in approval.params
    # A rejected review skips everything after it, whatever the trigger rules say.
    assert dag.get_task("review_passed").ignore_downstream_trigger_rules is True
    # The rejection is recorded only when the approval skipped the promotion.
    assert dag.get_task("record_rejection").trigger_rule == "all_skipped"
    for task_id in ("promote", "record_rejection"):
        task = dag.get_task(task_id)
        # Who answered and why reach the command through the environment, not the shell line.
        assert "reason" not in task.bash_command.replace("--reason", "")
        assert "key='answer'" in task.env["IJULES_ACTOR"]
        assert "key='answer'" in task.env["IJULES_REASON"]


def test_nightly_monitors_and_paper_trades_then_mails(dagbag) -> None:
    dag = dagbag.dags["ijules_nightly"]
    chain = ["ingest", "validate", "features"]
    after_features = {
        ("features", "drift"),
        ("features", "paper"),
        ("drift", "health"),
        ("paper", "health"),
        ("health", "email_risk_team"),
        ("health", "mail_urgent_alerts"),
        ("health", "adapt"),
        ("adapt", "retrain_early"),
        ("adapt", "rollback_champion"),
    }
    assert edges(dag) == set(itertools.pairwise(chain)) | after_features
    # The registry decides who trades and what drift and health compare with, which DVC does not
    # see: those stages run every night.
    for stage in ("drift", "paper", "health"):
        assert dag.get_task(stage).bash_command.endswith(f"dvc repro --force --single-item {stage}")
    retrain, rollback = dag.get_task("retrain_early"), dag.get_task("rollback_champion")
    assert (retrain.trigger_dag_id, rollback.trigger_dag_id) == ("ijules_weekly", "ijules_rollback")
    # One trigger per night's data, whatever reruns it: the run id is the night's last bar.
    for trigger in (retrain, rollback):
        assert trigger.skip_when_already_exists
        assert "key='night'" in trigger.trigger_run_id
    # The early retraining sees what this night saw: its as-of is this run's data-interval end.
    assert "data_interval_end" in retrain.logical_date


def test_a_failed_run_alerts_once_and_every_failed_task_records_why(dagbag) -> None:
    """The alert is the DAG's callback (once per failed run, not per retry); each task's own
    failure callback records the cause, and each command is told where to write its error."""
    from airflow.sdk import BaseNotifier

    for dag in dagbag.dags.values():
        assert isinstance(dag.on_failure_callback, BaseNotifier), dag.dag_id
        assert type(dag.on_failure_callback).__name__ == "FailureMail"
        for task in dag.tasks:
            assert task.on_failure_callback is not None, task.task_id
            assert [c.__name__ for c in task.on_failure_callback] == ["record_failure"]
    for task in bash_tasks(dagbag):
        assert task.env["IJULES_ERROR_FILE"] == (
            "var/failures/{{ dag.dag_id }}/{{ run_id }}/{{ ti.task_id }}"
            "{% if ti.map_index >= 0 %}[{{ ti.map_index }}]{% endif %}/{{ ti.try_number }}.error"
        ), task.task_id
        assert task.append_env is True, task.task_id  # and the worker's environment besides


def test_a_mapped_tasks_failure_is_recorded_where_its_command_wrote_why(
    dagbag, tmp_path, monkeypatch
) -> None:
    """Each instance of a mapped task has its own record (`walk_forward_fold[2]`), in the folder
    its command was told to write its error line to: the failure e-mail names the fold and why."""
    from types import SimpleNamespace

    import wiring

    dag = dagbag.dags["ijules_weekly"]
    ti = SimpleNamespace(
        task_id="walk_forward_fold", map_index=2, try_number=1, dag_id=dag.dag_id,
        run_id="manual__1", log_url="http://airflow/log",
    )  # fmt: skip
    error_file = dag.get_task("walk_forward_fold").partial_kwargs["env"]["IJULES_ERROR_FILE"]
    rendered = dag.get_task("stress").render_template(
        error_file, {"dag": dag, "run_id": ti.run_id, "ti": ti}, jinja_env=dag.get_template_env()
    )
    assert rendered == "var/failures/ijules_weekly/manual__1/walk_forward_fold[2]/1.error"
    said = tmp_path / rendered
    said.parent.mkdir(parents=True)
    said.write_text("error: fold 2 diverged\n")
    monkeypatch.setenv("IJULES_PROJECT_DIR", str(tmp_path))
    wiring.record_failure({"ti": ti, "exception": RuntimeError("bash exited 1")})
    unmapped = SimpleNamespace(**{**vars(ti), "task_id": "stress", "map_index": -1})
    wiring.record_failure({"ti": unmapped, "exception": RuntimeError("bash exited 1")})
    records = wiring.recorded_failures(tmp_path, dag.dag_id, ti.run_id)
    assert {r["task_id"]: r["error"] for r in records} == {
        "walk_forward_fold[2]": "error: fold 2 diverged",
        "stress": "RuntimeError: bash exited 1",
    }


def test_training_goes_to_the_gpu_queue_and_only_training(dagbag) -> None:
    for dag_id in ("ijules_weekly", "ijules_nightly"):
        for task in dagbag.dags[dag_id].tasks:
            assert (task.queue == "gpu") == (task.task_id in TRAINERS), task.task_id


def test_the_workspace_pool_is_a_readers_writer_lock(dagbag) -> None:
    """A writer takes every slot of the workspace pool, so nothing runs beside it; a shared task
    (a fold, the risk report) takes one, beside the others; every deployment makes the pool."""
    import wiring

    slots = wiring.WORKSPACE_SLOTS
    assert slots > 1
    for dag_id in ("ijules_weekly", "ijules_nightly"):
        for task in dagbag.dags[dag_id].tasks:
            if task.task_id in WRITERS:
                assert task.pool == "ijules_dvc_workspace", task.task_id
                expected = 1 if task.task_id in SHARED else slots
                assert task.pool_slots == expected, task.task_id
    made = f"pools set ijules_dvc_workspace {slots} "
    for script in ("scripts/services.sh", "scripts/run-lifecycle.sh", "docker/compose.yaml"):
        assert made in (REPO / script).read_text(), script
    cluster = (REPO / "scripts" / "cluster.py").read_text()
    assert (
        f"WORKSPACE_SLOTS = {slots}\n" in cluster
        and 'WORKSPACE_POOL = "ijules_dvc_workspace"' in cluster
    )


def test_folds_and_scenarios_are_mapped_one_task_per_dvc_item(dagbag, tmp_path) -> None:
    """The fold task and the stress scenario task are mapped over their foreach stage's items as
    DVC lists them in the project (so the parameters decide how many), each one `dvc repro` of
    one item, waiting for DVC's lock rather than failing when a sibling holds it."""
    import wiring

    dag = dagbag.dags["ijules_weekly"]
    folds = dag.get_task("walk_forward_fold")
    assert type(folds).__name__ == "MappedOperator"
    assert folds.partial_kwargs["pool_slots"] == 1 and folds.queue == "gpu"
    project = REPO
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IJULES_PROJECT_DIR", str(project))
        items = wiring._stage_items("walk_forward")
    fold_ids = yaml.safe_load((REPO / "params.yaml").read_text())["walk_forward"]["fold_ids"]
    assert items == [f"walk_forward@{i}" for i in fold_ids]
    command = wiring._repro_item(items[0])
    assert command.endswith("dvc --wait-for-lock repro --single-item walk_forward@0")
    scenarios = dag.get_task("stress_scenario")
    assert scenarios.partial_kwargs["pool_slots"] == 1 and scenarios.queue == "default"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IJULES_PROJECT_DIR", str(project))
        names = wiring._stage_items("stress_scenario")
    configured = yaml.safe_load((REPO / "params.yaml").read_text())["stress"]["scenarios"]
    assert names == [f"stress_scenario@{name}" for name in configured]
    with pytest.MonkeyPatch.context() as patch, pytest.raises(RuntimeError, match="no_such"):
        patch.setenv("IJULES_PROJECT_DIR", str(project))
        wiring._stage_items("no_such")


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
            if DVC_REPRO.search(command):
                named = command.split("--single-item")[1].split()
                assert named and set(named) <= stages, task.task_id


def test_tasks_carry_nothing_from_the_machine_that_parsed_them(dagbag) -> None:
    """A worker from another image runs the tasks: no parse-time folder may be baked into them."""
    baked = (str(BIN), str(REPO), PARSE_TIME_PROJECT)
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            for field in task.template_fields:
                value = str(getattr(task, field, ""))
                assert not any(path in value for path in baked), (task.task_id, field, value)


def test_bash_tasks_resolve_tools_and_project_on_the_worker(dagbag) -> None:
    tasks = bash_tasks(dagbag)
    assert {task.task_id for task in tasks} >= WRITERS - {"walk_forward_fold", "stress_scenario"}
    for task in tasks:
        command = task.bash_command
        assert str(BIN) not in command and str(REPO) not in command, task.task_id
        assert "$IJULES_PROJECT_DIR" in command or "${IJULES_PROJECT_DIR" in command, task.task_id
        assert task.cwd is None, task.task_id
        assert not task.env or "PATH" not in task.env, task.task_id
        # `dvc` and `ijules` by name, found on the worker's PATH.
        assert DVC_REPRO.search(command) or "ijules " in command, task.task_id


def fake_tool(folder: Path, name: str) -> Path:
    """An executable ``name`` in ``folder`` that records its working directory and arguments."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text('#!/bin/sh\npwd -P > "$0.called"\nprintf "%s\\n" "$@" >> "$0.called"\n')
    script.chmod(0o755)
    return script


def run_bash(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as BashOperator does (``bash -c``), with nothing but ``env``."""
    bash = shutil.which("bash") or "bash"
    return subprocess.run(
        [bash, "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("dag_id", "task_id", "tool", "argv"),
    [
        (
            "ijules_weekly",
            "walk_forward",
            "dvc",
            ["repro", "--single-item", "walk_forward_summary"],
        ),
        (
            "ijules_weekly",
            "risk_report",
            "dvc",
            ["--wait-for-lock", "repro", "--single-item", "risk"],
        ),
        ("ijules_nightly", "drift", "dvc", ["repro", "--force", "--single-item", "drift"]),
        ("ijules_weekly", "review", "ijules", ["register"]),
    ],
)
def test_bash_command_runs_in_the_workers_project_with_its_path(
    dagbag, tmp_path: Path, dag_id: str, task_id: str, tool: str, argv: list[str]
) -> None:
    dag = dagbag.dags[dag_id]
    task = dag.get_task(task_id)
    command = task.render_template(task.bash_command, {}, jinja_env=dag.get_template_env())
    project = tmp_path / "worker-project"
    project.mkdir()
    elsewhere = tmp_path / "elsewhere"  # where Airflow starts the command: a temporary folder
    elsewhere.mkdir()
    script = fake_tool(tmp_path / "worker-bin", tool)

    result = run_bash(
        command,
        cwd=elsewhere,
        IJULES_PROJECT_DIR=str(project),
        PATH=f"{script.parent}{os.pathsep}{os.defpath}",
    )

    assert result.returncode == 0, result.stderr
    cwd, *called_with = Path(f"{script}.called").read_text().splitlines()
    assert Path(cwd) == project.resolve()
    assert called_with == argv


def test_operator_takes_path_and_project_from_the_workers_environment(
    dagbag, tmp_path: Path, monkeypatch
) -> None:
    """The operator itself, as a worker runs it: its environment at run time decides."""
    task = dagbag.dags["ijules_weekly"].get_task("review")
    project = tmp_path / "worker-project"
    project.mkdir()
    script = fake_tool(tmp_path / "worker-bin", "ijules")
    monkeypatch.setenv("IJULES_PROJECT_DIR", str(project))
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.defpath}")
    monkeypatch.chdir(tmp_path)

    task.execute(context={})

    assert Path(f"{script}.called").read_text().splitlines() == [str(project.resolve()), "register"]


@pytest.mark.parametrize("project", [None, ""], ids=["unset", "empty"])
def test_bash_command_names_the_missing_project_variable(
    dagbag, tmp_path: Path, project: str | None
) -> None:
    task = dagbag.dags["ijules_weekly"].get_task("ingest")
    script = fake_tool(tmp_path / "worker-bin", "dvc")
    env = {"PATH": f"{script.parent}{os.pathsep}{os.defpath}"}
    if project is not None:
        env["IJULES_PROJECT_DIR"] = project

    result = run_bash(task.bash_command, cwd=tmp_path, **env)

    assert result.returncode != 0
    assert "IJULES_PROJECT_DIR must name the project folder" in result.stderr
    assert not Path(f"{script}.called").exists()  # dvc never ran, least of all elsewhere


def test_email_task_reads_the_project_when_it_runs(dagbag, monkeypatch) -> None:
    task = dagbag.dags["ijules_nightly"].get_task("email_risk_team")
    monkeypatch.delenv("IJULES_PROJECT_DIR", raising=False)
    with pytest.raises(RuntimeError, match="IJULES_PROJECT_DIR"):
        task.python_callable()


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
