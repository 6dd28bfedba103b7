"""Shared wiring for the ijules DAGs: tasks that run `dvc repro` stages or `ijules` commands.

Only Airflow and the standard library are imported here: the scheduler parses DAG files every few
seconds, and the work itself happens in the commands the tasks run.

Nothing about the machine that parses the DAGs is baked into a task. Each task resolves, when it
runs, the worker's own environment: `dvc` and `ijules` come from the worker's PATH, and the
project (the DVC workspace the tasks operate on) from the worker's IJULES_PROJECT_DIR. A task on
a worker without IJULES_PROJECT_DIR fails at once with an error that names it.
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
from airflow.sdk import Param, TriggerRule

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


# The run's as-of file and its key (ijules.config.AS_OF_FILE and AS_OF_KEY; a DAG file imports no
# ijules, and tests/dags checks that the two agree).
AS_OF_FILE = "as_of.yaml"
AS_OF_KEY = "as_of"
# The run's data-interval end as a YAML value: quoted ISO 8601 text, or null for a run that has no
# data interval (triggered without a logical date), which then sees the source's whole history.
AS_OF_VALUE = (
    "{% if data_interval_end is defined and data_interval_end %}"
    "'{{ data_interval_end.isoformat() }}'{% else %}null{% endif %}"
)


def ingest_as_of_interval(**kwargs: Any) -> BashOperator:
    """The ingest stage as of the run's data-interval end, never the wall clock.

    The task writes the run's data-interval end to the project's as_of.yaml (a temporary file
    moved over it, so no reader sees half of one), then brings the ingest stage up to date.
    dvc.yaml lists as_of.yaml under the stage's params: a new date reruns ingest, a rerun of a
    date is a no-op or a restore from DVC's run-cache, the same bytes, and `dvc repro` by hand
    afterwards reproduces the last run. Both happen in one task, in the workspace's slot, so no
    other run's as-of can come between them.
    """
    temporary = f"{AS_OF_FILE}.$$"
    write = (
        f"printf '# Written by an Airflow run: its data-interval end (null: none).\\n"
        f'{AS_OF_KEY}: %s\\n\' "$IJULES_AS_OF" > {temporary} && mv -f {temporary} {AS_OF_FILE}'
    )
    return BashOperator(
        task_id="ingest",
        bash_command=f"{_IN_PROJECT}{write} && dvc repro --single-item ingest",
        env={"IJULES_AS_OF": AS_OF_VALUE},
        append_env=True,
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


# How long an approval waits for a person; unanswered, it fails and nothing is promoted.
APPROVAL_TIMEOUT = timedelta(hours=float(os.environ.get("IJULES_APPROVAL_TIMEOUT_HOURS", "72")))


def _review_passed(review: str, ti: Any) -> bool:
    """Read the review's outcome (the `ijules register` task's last line) for the approval."""
    outcome = json.loads(review)
    ti.xcom_push(key="version", value=outcome["version"])
    ti.xcom_push(key="table", value=outcome["table"])
    return bool(outcome["status"] == "awaiting_approval")


def review_passed(review_task: str) -> ShortCircuitOperator:
    """Go on to the approval only when the automatic review passed; else skip what follows."""
    return ShortCircuitOperator(
        task_id="review_passed",
        python_callable=_review_passed,
        op_kwargs={"review": f"{{{{ ti.xcom_pull(task_ids='{review_task}') }}}}"},
    )


class RecordedApproval(ApprovalOperator):
    """An approval whose answer (choice, who, why) is kept in XCom under ``answer`` either way:
    on Reject, ApprovalOperator skips what follows before it returns, so its return value, the
    one place the answer would be, is never stored, and the rejection could not be recorded."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            context["ti"].xcom_push(
                key="answer",
                value={
                    "choice": event["chosen_options"][0],
                    "by": event["responded_by_user"]["name"],
                    "reason": (event["params_input"] or {}).get("reason", ""),
                },
            )
        return super().execute_complete(context, event)


def approval(subject: str) -> ApprovalOperator:
    """A person approves or rejects the reviewed version; the review table is the body.

    Reject skips the promotion; a reason is asked for either way (the audit trail records it).
    """
    return RecordedApproval(
        task_id="approval",
        subject=subject,
        body=(
            "Version {{ ti.xcom_pull(task_ids='review_passed', key='version') }} passed the "
            "automatic review:\n\n{{ ti.xcom_pull(task_ids='review_passed', key='table') }}"
        ),
        params={
            # A default, or the task fails before it asks; `ijules reject` refuses a blank one.
            "reason": Param(
                "", type="string", description="Why (written to the audit trail with your name)."
            )
        },
        response_timeout=APPROVAL_TIMEOUT,
    )


def answer_env() -> dict[str, str]:
    """The approval's answer, for the command that records it: who, and why."""
    answer = "ti.xcom_pull(task_ids='approval', key='answer')"
    return {
        "IJULES_ACTOR": f"{{{{ {answer}['by'] }}}}",
        "IJULES_REASON": f"{{{{ {answer}['reason'] }}}}",
    }


def _a_task_failed() -> None:
    raise RuntimeError("a task of this run failed; see that task's log")


def fail_run_if_any_task_failed(*tasks: Any) -> PythonOperator:
    """A last task that fails the run when any of ``tasks`` failed.

    A run's state comes from its last tasks: when one of them may be skipped by its trigger rule
    (the rejection that runs only after a person rejects), an earlier failure would end as a run
    marked successful. This watcher fails instead, so the failure is seen.
    """
    watcher = PythonOperator(
        task_id="watcher",
        python_callable=_a_task_failed,
        trigger_rule=TriggerRule.ONE_FAILED,
        retries=0,
    )
    for task in tasks:
        task >> watcher
    return watcher
