"""Weekly retraining and validation, then the promotion gate.

ingest -> validate -> features -> train -> evaluate -> seeds -> tune -> walk-forward -> stress ->
risk report -> performance report -> gate and register.

The data stages are `dvc repro` stages, so a week without new bars or code reruns nothing up to
training. Training, the other training seeds, the hyper-parameter study and the walk-forward folds
go to the `gpu` queue (a
Celery deployment routes them to a GPU worker; the local executor ignores queues). Each worker
runs the tasks with its own `dvc` and `ijules` from its PATH, in the project its IJULES_PROJECT_DIR
names. Seeds trains the same configuration with the next seeds and tests each, for the spread of
the agent's figures; tune runs the Optuna study on the walk-forward folds (its trials count in
the deflated Sharpe ratio); walk-forward trains and tests one model per fold; stress replays
crises and synthetic shocks on the trained model; the risk report backtests the VaR models and
replays the circuit breakers. The last task registers the model in MLflow and lets the gate
decide its alias from the test window over seeds, the walk-forward pass rate and stress
survival: champion, challenger, or rejected with its reasons.
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
    seeds = dvc_stage("seeds", queue=GPU_QUEUE, execution_timeout=timedelta(hours=8))
    tune = dvc_stage("tune", queue=GPU_QUEUE, execution_timeout=timedelta(hours=24))
    walk_forward = dvc_stage(
        "walk_forward",
        "walk_forward_summary",
        task_id="walk_forward",
        queue=GPU_QUEUE,
        execution_timeout=timedelta(hours=12),
    )
    stress = dvc_stage("stress")
    risk = dvc_stage("risk", task_id="risk_report")
    report = dvc_stage("report")
    register = ijules_command("register", task_id="gate_and_register")
    ingest >> validate >> features >> train >> evaluate >> seeds >> tune >> walk_forward
    walk_forward >> stress >> risk >> report >> register


ijules_weekly()
