"""Shared wiring for the ijules DAGs: tasks that run `dvc repro` stages or `ijules` commands.

Only Airflow and the standard library are imported here: the scheduler parses DAG files every few
seconds, and the work itself happens in the commands the tasks run.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator

# The project whose DVC workspace the tasks operate on: this checkout unless the deployment says
# otherwise. The tasks run the same venv's `dvc` and `ijules` as the scheduler.
PROJECT_DIR = os.environ.get("IJULES_PROJECT_DIR") or str(Path(__file__).resolve().parents[1])
BIN = Path(sys.executable).parent

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


def dvc_stage(*stages: str, task_id: str | None = None, **kwargs: Any) -> BashOperator:
    """A task that brings DVC stages up to date (a no-op when nothing they depend on changed).

    A ``foreach`` stage's name stands for all of its items.
    """
    return BashOperator(
        task_id=task_id or stages[0],
        bash_command=f'"{BIN}/dvc" repro --single-item {" ".join(stages)}',
        cwd=PROJECT_DIR,
        env={"IJULES_PROJECT_DIR": PROJECT_DIR, "PATH": f"{BIN}:{os.defpath}"},
        append_env=True,
        pool=WORKSPACE_POOL,
        do_xcom_push=False,
        **kwargs,
    )


def ijules_command(command: str, task_id: str, **kwargs: Any) -> BashOperator:
    """A task that runs one `ijules` command in the project; its last output line goes to XCom."""
    return BashOperator(
        task_id=task_id,
        bash_command=f'"{BIN}/ijules" {command}',
        cwd=PROJECT_DIR,
        env={"IJULES_PROJECT_DIR": PROJECT_DIR, "PATH": f"{BIN}:{os.defpath}"},
        append_env=True,
        pool=WORKSPACE_POOL,
        **kwargs,
    )
