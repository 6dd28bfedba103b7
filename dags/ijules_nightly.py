"""Nightly monitoring and paper trading: ingest, validate, features, then drift and paper
trading, then the model's health, then e-mail the risk team; a breach starts a retraining or a
rollback.

Each run sees the market as of its data-interval end (the scheduled instant): ingest stages no
bar that closes after it, so a backfill or a rerun of a date gives what a run on that date gave.
A failed data check stops the run before anything downstream reads the bars; the last good data
stays in place, and the risk team and on-call get one failure e-mail naming the task and the
broken rules (wiring.FailureMail, as for any failed run). Paper trading (`ijules paper`, the
`paper` stage) trades the bars published since each book's last night: the champion and the
challenger (or, with no champion, the latest version in shadow). It runs every night, forced: the
registry decides who trades and DVC does not see it; a night without new bars trades nothing. The
nightly report goes through Airflow's SMTP connection (`smtp_default`) to the addresses in
params.yaml (`notify.risk_team`); it leads with the health score, the alerts and charts of the
last nights, shows each paper book's night and has the Evidently report attached. Health
(`ijules health`) scores the trading model (the champion; with none, the shadow) against its own
review evidence; a new high-severity alert is mailed at once (risk team and on-call), a new alert
that recommends it starts `ijules_weekly` early (retrain_early, as of this run's data interval),
and a new breach of the champion's health starts `ijules_rollback` (rollback_champion). Like the
stages, the tasks read the project from the worker's IJULES_PROJECT_DIR when they run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, get_current_context, task
from wiring import (
    DEFAULT_ARGS,
    FailureMail,
    adapt_to_health,
    dvc_stage,
    ingest_as_of_interval,
    mail_urgent_alerts,
    project_dir,
    retrain_early,
    rollback_champion,
    send_email,
)


@task
def email_risk_team() -> str:
    """Send the drift and health report; return the path of the attached drift report."""
    root = project_dir()  # the worker's IJULES_PROJECT_DIR, read now rather than at parse time

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
        health=root / paths.health_report,
        charts=root / paths.health_charts,
        interval=None if interval_end is None else interval_end.date().isoformat(),
    )
    send_email(email)
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
    # Drift, paper and health read the registry (the trading model), which DVC does not see.
    drift = dvc_stage("drift", force=True)
    paper = dvc_stage("paper", force=True)
    health = dvc_stage("health", force=True)
    adapt = adapt_to_health()
    ingest >> validate >> features >> [drift, paper] >> health
    health >> [mail_urgent_alerts(), adapt, email_risk_team()]
    adapt >> [retrain_early(), rollback_champion()]


ijules_nightly()
