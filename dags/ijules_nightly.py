"""Nightly monitoring and paper trading: ingest, validate, features, then drift and paper
trading, then e-mail the risk team.

Each run sees the market as of its data-interval end (the scheduled instant): ingest stages no
bar that closes after it, so a backfill or a rerun of a date gives what a run on that date gave.
A failed data check stops the run before anything downstream reads the bars; the last good data
stays in place, and the risk team and on-call get one failure e-mail naming the task and the
broken rules (wiring.FailureMail, as for any failed run). Paper trading (`ijules paper`, the
`paper` stage) trades the bars published since each book's last night: the champion and the
challenger (or, with no champion, the latest version in shadow). It runs every night, forced: the
registry decides who trades and DVC does not see it; a night without new bars trades nothing. The
nightly report goes through Airflow's SMTP connection (`smtp_default`) to the addresses in
params.yaml (`notify.risk_team`); it shows each paper book's night and has the Evidently report
attached. Like the stages, it reads the project from the worker's IJULES_PROJECT_DIR when it runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, get_current_context, task
from wiring import DEFAULT_ARGS, FailureMail, dvc_stage, ingest_as_of_interval, project_dir


@task
def email_risk_team() -> str:
    """Send the drift and health report; return the path of the attached drift report."""
    root = project_dir()  # the worker's IJULES_PROJECT_DIR, read now rather than at parse time

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from ijules.config import load_config
    from ijules.monitoring.report_mail import build_drift_email

    config = load_config(root / "params.yaml")
    paths = config.paths
    interval_end = get_current_context().get("data_interval_end")
    email = build_drift_email(
        config,
        drift_metrics=root / paths.drift_metrics,
        drift_html=root / paths.drift_html,
        validation=root / paths.validation,
        metrics=root / paths.metrics,
        registration=root / paths.registration,
        paper=root / paths.paper_report,
        interval=None if interval_end is None else interval_end.date().isoformat(),
    )
    with SmtpHook(smtp_conn_id="smtp_default") as hook:
        hook.send_email_smtp(
            to=list(email.to),
            from_email=email.sender,
            subject=email.subject,
            html_content=email.html,
            files=[str(path) for path in email.attachments],
        )
    return str(email.attachments[0])


@dag(
    dag_id="ijules_nightly",
    schedule="0 1 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ijules", "monitoring", "paper"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=FailureMail(),  # once per failed run: risk team and on-call
    doc_md=__doc__,
)
def ijules_nightly() -> None:
    ingest = ingest_as_of_interval()
    validate = dvc_stage("validate", retries=0)
    features = dvc_stage("features")
    drift = dvc_stage("drift")
    paper = dvc_stage("paper", force=True)
    ingest >> validate >> features >> [drift, paper] >> email_risk_team()


ijules_nightly()
