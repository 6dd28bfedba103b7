"""Shared wiring for the ijules DAGs: tasks that run `dvc repro` stages or `ijules` commands.

Only Airflow and the standard library are imported here: the scheduler parses DAG files every few
seconds, and the work itself happens in the commands the tasks run.

Nothing about the machine that parses the DAGs is baked into a task. Each task resolves, when it
runs, the worker's own environment: `dvc` and `ijules` come from the worker's PATH, and the
project (the DVC workspace the tasks operate on) from the worker's IJULES_PROJECT_DIR. A task on
a worker without IJULES_PROJECT_DIR fails at once with an error that names it.

A failed run e-mails the risk team and the on-call list once (FailureMail, each DAG's
``on_failure_callback``) with the DAG, the failed task, the logical date, the error's one line and
the task's log. The cause travels through the project folder: each task's command writes its
one-line error to the file IJULES_ERROR_FILE names, and each failed task leaves a record beside it
(record_failure), under var/failures/DAG/RUN/TASK/.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
from airflow.sdk import BaseNotifier, Param, TriggerRule

PROJECT_ENV = "IJULES_PROJECT_DIR"
_MISSING_PROJECT = f"{PROJECT_ENV} must name the project folder on this worker"
# Bash expands this when the task runs; `:?` stops the command with the message if it is unset.
_IN_PROJECT = f'cd "${{{PROJECT_ENV}:?{_MISSING_PROJECT}}}" && '

# The DVC workspace is a pool used as a readers-writer lock: a task that may change what others
# read (the data, the model, the registry) takes every slot, so nothing else runs there beside
# it; a mapped fold or stress scenario, or the risk report, reads only what no task of a running
# DAG changes under it and writes only its own output, so those take one slot each and run side
# by side (DVC serialises their dvc.lock updates: `--wait-for-lock`). Every deployment creates
# the pool with WORKSPACE_SLOTS slots (scripts/services.sh, run-lifecycle.sh, cluster.py).
WORKSPACE_POOL = "ijules_dvc_workspace"
WORKSPACE_SLOTS = 4
GPU_QUEUE = "gpu"

log = logging.getLogger(__name__)

# Failures of a DAG run are recorded in the project, one folder per task, one file per try.
FAILURES = Path("var") / "failures"
# `ijules` writes a failing command's one-line error to the file this names (ijules/cli.py);
# relative to the project, where every task runs its command (DVC runs stages there too).
ERROR_FILE_ENV = "IJULES_ERROR_FILE"
# A mapped task's instances each get a folder: `walk_forward_fold[2]`.
_TASK_FOLDER = "{{ ti.task_id }}{% if ti.map_index >= 0 %}[{{ ti.map_index }}]{% endif %}"
_ERROR_FILE = str(
    FAILURES / "{{ dag.dag_id }}/{{ run_id }}" / _TASK_FOLDER / "{{ ti.try_number }}.error"
)
WATCHER = "watcher"


def project_dir() -> Path:
    """The project folder on the worker running the task, from its IJULES_PROJECT_DIR.

    Call it inside a task, at run time, never while the DAG is parsed.
    """
    folder = os.environ.get(PROJECT_ENV)
    if not folder:
        raise RuntimeError(_MISSING_PROJECT)
    return Path(folder)


def send_email(email: Any) -> None:
    """Send a composed message (ijules.monitoring.report_mail.Email) through Airflow's SMTP
    connection ``smtp_default``: delivery, retries and credentials stay with the orchestrator.
    Attachments carry their file name as Content-ID, so the HTML can show PNGs inline."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id="smtp_default") as hook:
        hook.send_email_smtp(
            to=list(email.to),
            from_email=email.sender,
            subject=email.subject,
            html_content=email.html,
            files=[str(path) for path in email.attachments],
        )


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def record_failure(context: Any) -> None:
    """Record a task's final failure in the project: the error's one line and its log's page.

    Every task's ``on_failure_callback`` (a retry does not call it). It runs on the task's worker,
    the one place that knows the cause: a BashOperator's exception only says the shell exited 1,
    so the command's own line (IJULES_ERROR_FILE) comes first, the exception when there is none.
    """
    ti = context["ti"]
    name = task_name(ti)
    folder = project_dir() / FAILURES / ti.dag_id / ti.run_id / name
    said = folder / f"{ti.try_number}.error"
    exception = context.get("exception")
    if said.is_file():
        error: str | None = said.read_text(encoding="utf-8").strip()
    elif exception is None:
        error = None
    else:
        error = _one_line(f"{type(exception).__name__}: {exception}")
        if isinstance(context.get("task"), BashOperator):
            # The shell failed before (or without) an ijules command saying why: dvc, say.
            error += " (no ijules error line: the command's output is in the log)"
    record = {"task_id": name, "try_number": ti.try_number, "error": error, "log": ti.log_url}
    folder.mkdir(parents=True, exist_ok=True)
    # Written whole and renamed into place: the notifier never reads half a record.
    partial = folder / f".{ti.try_number}.json.tmp"
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(folder / f"{ti.try_number}.json")


def task_name(ti: Any) -> str:
    """The task's id, with its map index for an instance of a mapped task (`walk_forward_fold[2]`),
    as its failure record and e-mail name it."""
    index = getattr(ti, "map_index", -1)
    return ti.task_id if index is None or index < 0 else f"{ti.task_id}[{index}]"


def recorded_failures(root: Path, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The failed tasks of a run, from their records: each task's last try, first failure first."""
    folder = root / FAILURES / dag_id / run_id
    if not folder.is_dir():
        return []
    last_tries = []
    for task in folder.iterdir():
        tries = sorted(task.glob("*.json"), key=lambda path: int(path.stem))
        if tries:
            last_tries.append(tries[-1])
    last_tries.sort(key=lambda path: path.stat().st_mtime)
    return [json.loads(path.read_text(encoding="utf-8")) for path in last_tries]


class FailureMail(BaseNotifier):
    """E-mail the risk team and the on-call list (params.yaml ``notify``) that a DAG run failed.

    A DAG's ``on_failure_callback``: Airflow calls it once per failed run, when the run is marked
    failed, so a retried task alerts once, after its last try. It runs where Airflow runs DAG
    callbacks (the DAG processor; in ``dag.test()``, the caller), which needs the project under
    its IJULES_PROJECT_DIR as the workers have it: the addresses and the failure records are there.

    The message names the DAG, the failed task(s), the logical date, each task's error line and
    the task's page in the Airflow UI (its log). The run is already failed when this runs: an
    e-mail that cannot be composed or sent is logged, and the run stays failed.
    """

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render: this notifier has no template fields.

        BaseNotifier asks the context's DAG for a template environment even then, and under
        ``dag.test()`` that DAG is the scheduler's serialized copy, which has none: the callback
        would fail before it sends (apache/airflow#64649; #64993 skips the call in the same way).
        """
        if self.template_fields:
            super().render_template_fields(context, jinja_env)

    def notify(self, context: Any) -> None:
        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        try:
            self._send(context, dag_id, run_id)
        except Exception:
            log.exception("the failure e-mail for %s run %s was not sent", dag_id, run_id)
            raise  # Airflow logs it as a failed callback and counts it (dag.callback_exceptions)

    def _send(self, context: Any, dag_id: str, run_id: str) -> None:
        root = project_dir()

        from ijules.config import load_config
        from ijules.monitoring.failure_mail import TaskFailure, build_failure_email

        recorded = recorded_failures(root, dag_id, run_id)
        # The task Airflow names as the cause; one that died before it could record (its worker
        # was lost) is in no record.
        last = context.get("ti")
        if last is not None and task_name(last) not in {r["task_id"] for r in recorded}:
            recorded.append(
                {"task_id": task_name(last), "try_number": last.try_number, "error": None,
                 "log": last.log_url}
            )  # fmt: skip
        # The watcher fails only because another task did: name that one.
        failed = [r for r in recorded if r["task_id"] != WATCHER] or recorded
        logical_date = context.get("logical_date")
        email = build_failure_email(
            load_config(root / "params.yaml"),
            dag_id=dag_id,
            run_id=run_id,
            logical_date=None if logical_date is None else logical_date.isoformat(),
            failures=[
                TaskFailure(
                    task_id=r["task_id"], error=r["error"], log=r["log"], try_number=r["try_number"]
                )
                for r in failed
            ],
            reason=context.get("reason"),
        )
        send_email(email)
        log.info("failure e-mail for %s run %s sent to %s", dag_id, run_id, ", ".join(email.to))


# IJULES_TASK_RETRIES=0 suits one-shot runs (`make run`), where a failure should surface at once.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "ijules",
    "retries": int(os.environ.get("IJULES_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": record_failure,
}


def dvc_stage(
    *stages: str,
    task_id: str | None = None,
    force: bool = False,
    shared: bool = False,
    **kwargs: Any,
) -> BashOperator:
    """A task that brings DVC stages up to date (a no-op when nothing they depend on changed).

    A ``foreach`` stage's name stands for all of its items. ``force`` runs them every time: for
    a stage that depends on something DVC does not track (the registry), and is idempotent.
    ``shared``: the stage only reads what no task changes while it runs and writes its own
    output, so it takes one slot of the workspace, beside other shared tasks (WORKSPACE_POOL).
    """
    flags = "--force --single-item" if force else "--single-item"
    dvc = "dvc --wait-for-lock" if shared else "dvc"
    return BashOperator(
        task_id=task_id or stages[0],
        bash_command=f"{_IN_PROJECT}{dvc} repro {flags} {shlex.join(stages)}",
        pool=WORKSPACE_POOL,
        pool_slots=1 if shared else WORKSPACE_SLOTS,
        do_xcom_push=False,
        env={ERROR_FILE_ENV: _ERROR_FILE},
        append_env=True,
        **kwargs,
    )


def _stage_items(stage: str) -> list[str]:
    """The items of a ``foreach`` stage (``walk_forward@0``, ...) as DVC resolves the project's
    dvc.yaml and params on this worker, now: the parameters decide how many folds there are."""
    listed = subprocess.run(
        ["dvc", "stage", "list", "--name-only"],
        cwd=project_dir(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    items = [name for name in listed.stdout.split() if name.startswith(f"{stage}@")]
    if not items:
        raise RuntimeError(f"dvc.yaml has no items of the foreach stage {stage!r}")
    return items


def _repro_item(item: str) -> str:
    return f"{_IN_PROJECT}dvc --wait-for-lock repro --single-item {shlex.quote(item)}"


def mapped_stage(stage: str, task_id: str, **kwargs: Any) -> tuple[PythonOperator, Any]:
    """The items of a ``foreach`` stage as a dynamically mapped task: one task instance per item,
    each with its own retries and worker, side by side in the workspace (one slot each).

    Returns the task that lists the items (CPU, no workspace slot) and the mapped task.
    """
    items = PythonOperator(
        task_id=f"list_{task_id}s", python_callable=_stage_items, op_args=[stage]
    )
    mapped = BashOperator.partial(
        task_id=task_id,
        pool=WORKSPACE_POOL,
        pool_slots=1,
        do_xcom_push=False,
        env={ERROR_FILE_ENV: _ERROR_FILE},
        append_env=True,
        map_index_template="{{ task.bash_command.split()[-1] }}",
        **kwargs,
    ).expand(bash_command=items.output.map(_repro_item))
    return items, mapped


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
        env={"IJULES_AS_OF": AS_OF_VALUE, ERROR_FILE_ENV: _ERROR_FILE},
        append_env=True,
        pool=WORKSPACE_POOL,
        pool_slots=WORKSPACE_SLOTS,
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
        pool_slots=WORKSPACE_SLOTS if pool == WORKSPACE_POOL else 1,
        # Who acts, in the registry's audit trail: this DAG run.
        env={
            "IJULES_ACTOR": "airflow:{{ dag.dag_id }}:{{ run_id }}",
            ERROR_FILE_ENV: _ERROR_FILE,
            **(env or {}),
        },
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


# Who may answer the approval: the users (ids) IJULES_APPROVERS lists, comma-separated; a
# deployment with several roles names its risk officers here, so that a quant who may trigger and
# rerun cannot approve a model. Unset (local development, all admins): whoever may edit the DAG.
APPROVERS_ENV = "IJULES_APPROVERS"


def approvers() -> list[dict[str, str]] | None:
    names = [n.strip() for n in os.environ.get(APPROVERS_ENV, "").split(",") if n.strip()]
    return [{"id": name, "name": name} for name in names] or None


def approval(subject: str) -> ApprovalOperator:
    """A person approves or rejects the reviewed version; the review table is the body.

    Reject skips the promotion; a reason is asked for either way (the audit trail records it).
    Only the users IJULES_APPROVERS names may answer, when it names any.
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
        assigned_users=approvers(),  # type: ignore[arg-type]
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
        task_id=WATCHER,
        python_callable=_a_task_failed,
        trigger_rule=TriggerRule.ONE_FAILED,
        retries=0,
    )
    for task in tasks:
        task >> watcher
    return watcher


# --- health: what a night's health report starts ----------------------------------------------

RETRAIN_TASK = "retrain_early"
ROLLBACK_TASK = "rollback_champion"


def _health_report() -> Any:
    from ijules.artifacts import HealthReport
    from ijules.config import load_config

    root = project_dir()
    config = load_config(root / "params.yaml")
    return config, HealthReport.read(root / config.paths.health_report)


def _adapt(ti: Any) -> list[str]:
    """The trigger tasks tonight's health report asks for (none: both are skipped)."""
    _, report = _health_report()
    night = report.data_end or "no-bars"
    ti.xcom_push(key="night", value=night)
    ti.xcom_push(key="reason", value="health: " + "; ".join(report.actions.reasons))
    chosen = []
    if report.actions.retrain:
        chosen.append(RETRAIN_TASK)
    if report.actions.rollback:
        chosen.append(ROLLBACK_TASK)
    return chosen


def adapt_to_health() -> Any:
    """Branch on the health report's actions: retrain early, roll the champion back, or both.

    Actions come only from alerts new tonight (ijules.health.alerts), and each trigger's run id
    is the night's last bar: a rerun of the night, or a night with no new bars, starts nothing
    twice.
    """
    from airflow.providers.standard.operators.python import BranchPythonOperator

    return BranchPythonOperator(task_id="adapt", python_callable=_adapt)


def _triggered(kind: str) -> dict[str, str]:
    return {
        "trigger_run_id": f"health_{kind}__{{{{ ti.xcom_pull(task_ids='adapt', key='night') }}}}",
    }


def retrain_early() -> Any:
    """Start the weekly retraining now, as of this run's data-interval end (the same bars), with
    the health report's reasons; it goes through the same review and approval."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    return TriggerDagRunOperator(
        task_id=RETRAIN_TASK,
        trigger_dag_id="ijules_weekly",
        # A nightly run without a data interval saw every bar up to its start: so does this one.
        logical_date="{{ (data_interval_end or dag_run.run_after).isoformat() }}",
        conf={"reason": "{{ ti.xcom_pull(task_ids='adapt', key='reason') }}"},
        skip_when_already_exists=True,
        **_triggered("retrain"),
    )


def rollback_champion() -> Any:
    """Start the rollback DAG with the health report's reasons (the audit trail records them)."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    return TriggerDagRunOperator(
        task_id=ROLLBACK_TASK,
        trigger_dag_id="ijules_rollback",
        logical_date=None,
        conf={"reason": "{{ ti.xcom_pull(task_ids='adapt', key='reason') }}"},
        skip_when_already_exists=True,
        **_triggered("rollback"),
    )


# The alerts already mailed at once, per night: a rerun of a night does not mail them again.
ALERTS_SENT = Path("var") / "alerts"


def _mail_urgent_alerts() -> str:
    from ijules.monitoring.report_mail import build_alert_email

    config, report = _health_report()
    record = project_dir() / ALERTS_SENT / f"{(report.data_end or 'no-bars').replace(':', '')}.json"
    sent = set(json.loads(record.read_text(encoding="utf-8"))) if record.is_file() else set()
    email = build_alert_email(
        config, health=project_dir() / config.paths.health_report, already_sent=sent
    )
    if email is None:
        return "no new high-severity alert to mail"
    send_email(email)
    keys = sent | {a.key for a in report.alerts if a.new and a.severity == "high"}
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_suffix(".tmp")
    partial.write_text(json.dumps(sorted(keys)), encoding="utf-8")
    partial.replace(record)
    return email.subject


def mail_urgent_alerts() -> PythonOperator:
    """E-mail tonight's new high-severity alerts at once, to the risk team and on-call; each
    once per night (var/alerts/ records what was sent)."""
    return PythonOperator(task_id="mail_urgent_alerts", python_callable=_mail_urgent_alerts)
