"""Weekly retraining: ingest, validate, features, train, evaluate, risk report, gate and register.

The data stages are `dvc repro` stages, so a week without new bars or code reruns nothing up to
training. Training goes to the `gpu` queue (a Celery deployment routes it to a GPU worker; the
local executor ignores queues). The risk report backtests the VaR models and replays the circuit
breakers through historical crises. The last task registers the model in MLflow and lets the gate
decide its alias: champion, challenger, or rejected with its reasons.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag
from wiring import DEFAULT_ARGS, GPU_QUEUE, dvc_stage, ijules_command


@dag(
    dag_id="ijules_weekly",
    schedule="0 4 * * 6",  # Saturdays 04:00 UTC, after the week's last FX bar
    start_date=datetime(2026, 1, 3, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ijules", "training"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
)
def ijules_weekly() -> None:
    ingest = dvc_stage("ingest")
    # A failed data check is deterministic: retrying it only delays the alert.
    validate = dvc_stage("validate", retries=0)
    features = dvc_stage("features")
    train = dvc_stage("train", queue=GPU_QUEUE, execution_timeout=timedelta(hours=8))
    evaluate = dvc_stage("evaluate")
    risk = dvc_stage("risk", task_id="risk_report")
    register = ijules_command("register", task_id="gate_and_register")
    ingest >> validate >> features >> train >> evaluate >> risk >> register


ijules_weekly()
