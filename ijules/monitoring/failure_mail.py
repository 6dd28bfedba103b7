"""The failure alert: a DAG run failed; which task, why (the error's one line), where its log is.

Airflow calls the DAGs' failure notifier once per failed run (dags/wiring.py); it gathers what
failed and this module composes the message to the risk team and the on-call list. Like the
nightly report, it goes out through Airflow's SMTP connection.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from ijules.config import Config
from ijules.monitoring.report_mail import Email


@dataclass(frozen=True)
class TaskFailure:
    """One failed task of the run.

    ``error`` is the failure's one line (None when the task recorded none, e.g. a worker that
    died); ``log`` is where its log is (the task instance's page in the Airflow UI).
    """

    task_id: str
    error: str | None
    log: str | None
    try_number: int | None = None


def failure_recipients(config: Config) -> tuple[str, ...]:
    """The risk team and the on-call list, each address once, in that order."""
    return tuple(dict.fromkeys((*config.notify.risk_team, *config.notify.on_call)))


def build_failure_email(
    config: Config,
    *,
    dag_id: str,
    run_id: str,
    logical_date: str | None,
    failures: Sequence[TaskFailure],
    reason: str | None = None,
) -> Email:
    """Compose the alert for a failed DAG run: its id, logical date, and each failed task.

    ``failures`` lists the failed tasks, first failure first. It is empty when the run failed
    without a failed task (it timed out, say); ``reason`` is then the run's reason from Airflow.
    """
    tasks = ", ".join(failure.task_id for failure in failures)
    when = f" for {logical_date}" if logical_date else ""
    if failures:
        first = failures[0].error
        subject = f"[ijules] {dag_id} FAILED at {tasks}{when}" + (
            f": {_shorten(first)}" if first else ""
        )
        items = "".join(_failure_item(failure) for failure in failures)
    else:
        why = reason or "no reason given"
        subject = f"[ijules] {dag_id} FAILED{when}: {why}"
        items = f"<li>No task failed; Airflow failed the run: {html.escape(why)}</li>"
    facts = (
        ("DAG", dag_id),
        ("run", run_id),
        ("logical date", logical_date or "none (a run without one)"),
        ("failed task(s)", tasks or "none"),
    )
    rows = "".join(
        f"<tr><th align='left'>{name}</th><td>{html.escape(value)}</td></tr>"
        for name, value in facts
    )
    body = (
        f"<html><body><h2>{html.escape(f'{dag_id} failed{when}')}</h2>"
        f"<table border='1' cellpadding='4'>{rows}</table>"
        f"<h3>What failed</h3><ul>{items}</ul>"
        "<p>Tasks that depend on a failed one did not run; the run's page in the Airflow UI "
        "shows every task's state.</p>"
        "</body></html>"
    )
    return Email(
        to=failure_recipients(config),
        sender=config.notify.sender,
        subject=subject,
        html=body,
        attachments=(),
    )


def _failure_item(failure: TaskFailure) -> str:
    attempt = f" (try {failure.try_number})" if failure.try_number else ""
    error = (
        f"<pre style='white-space: pre-wrap'>{html.escape(failure.error)}</pre>"
        if failure.error
        else "<p>No error line was recorded (the task stopped before it could record one): "
        "read its log.</p>"
    )
    log = (
        f"<p>Log: <a href='{html.escape(failure.log, quote=True)}'>"
        f"{html.escape(failure.log)}</a></p>"
        if failure.log
        else ""
    )
    return f"<li><b>{html.escape(failure.task_id)}</b>{attempt}{error}{log}</li>"


def _shorten(line: str, limit: int = 120) -> str:
    """A subject-sized head of ``line``; the body has all of it."""
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."
