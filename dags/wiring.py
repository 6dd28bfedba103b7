"""Shared wiring for the ijules DAGs: tasks that run `dvc repro` stages or `ijules` commands.

Only Airflow and the standard library are imported here: the scheduler parses DAG files every few
seconds, and the work itself happens in the commands the tasks run.

Nothing about the machine that parses the DAGs is baked into a task. Each task resolves, when it
runs, the worker's own environment: `dvc` and `ijules` come from the worker's PATH, and the
project (the DVC workspace the tasks operate on) from the worker's IJULES_PROJECT_DIR. A task on
a worker without IJULES_PROJECT_DIR fails at once with an error that names it.
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator

PROJECT_ENV = "IJULES_PROJECT_DIR"
_MISSING_PROJECT = f"{PROJECT_ENV} must name the project folder on this worker"
# Bash expands this when the task runs; `:?` stops the command with the message if it is unset.
_IN_PROJECT = f'cd "${{{PROJECT_ENV}:?{_MISSING_PROJECT}}}" && '

# Tasks that write to the DVC workspace hold its only slot, so two runs never interleave there.
WORKSPACE_POOL = "ijules_dvc_workspace"
GPU_QUEUE = "gpu"

# IJULES_TASK_RETRIES=0 suits one-shot runs (`make run`), where a failure should surface at once.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "ijules",
    "retries": int(os.environ.get("IJULES_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(hours=2),
}


def project_dir() -> Path:
    """The project folder on the worker running the task, from its IJULES_PROJECT_DIR.

    Call it inside a task, at run time, never while the DAG is parsed.
    """
    folder = os.environ.get(PROJECT_ENV)
    if not folder:
        raise RuntimeError(_MISSING_PROJECT)
    return Path(folder)


def dvc_stage(*stages: str, task_id: str | None = None, **kwargs: Any) -> BashOperator:
    """A task that brings DVC stages up to date (a no-op when nothing they depend on changed).

    A ``foreach`` stage's name stands for all of its items.
    """
    return BashOperator(
        task_id=task_id or stages[0],
        bash_command=f"{_IN_PROJECT}dvc repro --single-item {shlex.join(stages)}",
        pool=WORKSPACE_POOL,
        do_xcom_push=False,
        **kwargs,
    )


def ijules_command(
    command: str,
    task_id: str,
    *,
    pool: str = WORKSPACE_POOL,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> BashOperator:
    """A task that runs one `ijules` command in the project; its last output line goes to XCom.

    ``env`` adds variables (templated) for the command to read: a value typed by a person goes
    through the environment, never into the command line, so no quoting can turn it into shell.
    """
    return BashOperator(
        task_id=task_id,
        bash_command=f"{_IN_PROJECT}ijules {command}",
        pool=pool,
        # Who acts, in the registry's audit trail: this DAG run.
        env={"IJULES_ACTOR": "airflow:{{ dag.dag_id }}:{{ run_id }}", **(env or {})},
        append_env=True,
        **kwargs,
    )
