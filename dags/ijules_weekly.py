"""Weekly retraining and validation, then the automatic review and a person's approval.

ingest -> validate -> features -> train -> evaluate -> seeds -> tune -> walk-forward folds (one
mapped task per fold) -> walk-forward summary -> performance report -> review -> approval ->
promote (or record the rejection). Beside them: the stress scenarios (one mapped task each, on the
trained model) and their verdict, from train to the performance report; the risk report, from
validate to the performance report.

The data stages are `dvc repro` stages, so a week without new bars or code reruns nothing up to
training. Training, the other training seeds, the hyper-parameter study and the walk-forward folds
go to the `gpu` queue (the Celery deployment, scripts/cluster.py or docker/, routes them to the GPU
workers; the local executor ignores queues); the folds run side by side, one task each. Each worker
runs the tasks with its own `dvc` and `ijules` from its PATH, in the project its IJULES_PROJECT_DIR
names. Seeds trains the same configuration with the next seeds and tests each, for the spread of the
agent's figures; tune runs the Optuna study on the walk-forward folds (its trials count in the
deflated Sharpe ratio); walk-forward trains and tests one model per fold; stress replays crises and
synthetic shocks on the trained model; the risk report backtests the VaR models and replays the
circuit breakers. Review registers the model in MLflow and checks it, every check a row (the test
window over seeds, walk-forward, stress, significance, VaR, integrity); a rejected version ends
there and the approval shows as skipped. A passed one waits for a risk officer in Airflow's Required
Actions (or the HITL REST API), with the review table: Approve moves the aliases (`ijules approve`),
Reject records the reason (`ijules reject`) and moves nothing, no answer within the timeout promotes
nothing.

Ingest stages the history as of the run's data-interval end, never the wall clock, so a backfill or
a rerun of a week trains on what that week knew.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import TriggerRule, dag
from wiring import (
    DEFAULT_ARGS,
    GPU_QUEUE,
    FailureMail,
    answer_env,
    approval,
    dvc_stage,
    fail_run_if_any_task_failed,
    ijules_command,
    ingest_as_of_interval,
    mapped_stage,
    review_passed,
)


@dag(
    dag_id="ijules_weekly",
    schedule="0 4 * * 6",  # Saturdays 04:00 UTC, after the week's last FX bar
    start_date=datetime(2026, 1, 3, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ijules", "training"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=FailureMail(),  # once per failed run: risk team and on-call
    doc_md=__doc__,
)
def ijules_weekly() -> None:
    ingest = ingest_as_of_interval()
    # A failed data check is deterministic: retrying it only delays the alert.
    validate = dvc_stage("validate", retries=0)
    features = dvc_stage("features")
    train = dvc_stage("train", queue=GPU_QUEUE, execution_timeout=timedelta(hours=8))
    evaluate = dvc_stage("evaluate")
    seeds = dvc_stage("seeds", queue=GPU_QUEUE, execution_timeout=timedelta(hours=8))
    tune = dvc_stage("tune", queue=GPU_QUEUE, execution_timeout=timedelta(hours=24))
    # One task per fold, side by side on the GPU workers, each with its own retries; the summary
    # (the trial ledger, the DSR) is CPU work and waits for them all.
    fold_items, folds = mapped_stage(
        "walk_forward",
        task_id="walk_forward_fold",
        queue=GPU_QUEUE,
        execution_timeout=timedelta(hours=12),
    )
    walk_forward = dvc_stage("walk_forward_summary", task_id="walk_forward")
    # One task per stress scenario on the trained model, side by side (CPU); then their verdict.
    scenario_items, scenarios = mapped_stage("stress_scenario", task_id="stress_scenario")
    stress = dvc_stage("stress")
    # The VaR backtests and breaker replays read the daily index sample, not the model: they run
    # beside the training branch, in a slot of their own.
    risk = dvc_stage("risk", task_id="risk_report", shared=True)
    report = dvc_stage("report")
    review = ijules_command("register", task_id="review")
    passed = review_passed("review")
    ask = approval("Promote the reviewed ijules policy?")
    version = "{{ ti.xcom_pull(task_ids='review_passed', key='version') }}"
    promote = ijules_command(
        f'approve {version} --reason "$IJULES_REASON"', task_id="promote", env=answer_env()
    )
    # Runs only when the approval skipped the promotion, i.e. a person rejected it.
    record_rejection = ijules_command(
        f'reject {version} --reason "$IJULES_REASON"',
        task_id="record_rejection",
        env=answer_env(),
        trigger_rule=TriggerRule.ALL_SKIPPED,
    )
    ingest >> validate >> features >> train >> evaluate >> seeds >> tune >> fold_items >> folds
    folds >> walk_forward >> report >> review >> passed >> ask >> promote
    train >> scenario_items >> scenarios >> stress >> report
    validate >> risk >> report
    promote >> record_rejection
    fail_run_if_any_task_failed(
        ingest, validate, features, train, evaluate, seeds, tune, fold_items, folds, walk_forward,
        scenario_items, scenarios, stress, risk, report, review, passed, ask, promote,
        record_rejection,
    )  # fmt: skip


ijules_weekly()
