"""Rollback: the champion back to the version it replaced, on a manual trigger with a reason.

Trigger it from the Airflow UI (or `airflow dags trigger ijules_rollback --conf '{"reason": ...}'`)
with the reason the audit trail will record. It runs `ijules rollback`, which reinstates only the
version the champion replaced, and only if that version's gate passed, and writes the rollback to
the audit trail (actor: this DAG run) before the alias moves. It takes the default pool, not the
DVC workspace's slots: a rollback never waits behind a training run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag
from wiring import DEFAULT_ARGS, FailureMail, ijules_command


@dag(
    dag_id="ijules_rollback",
    schedule=None,  # manual, or triggered by a health breach
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ijules", "governance"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=FailureMail(),  # once per failed run: risk team and on-call
    doc_md=__doc__,
    params={
        # Required, yet with a default: Airflow builds a failed run's callback context from
        # the DAG's params alone, and a param with no default fails that, so the failure e-mail
        # would never go out. A run without a reason is refused by `ijules rollback`.
        "reason": Param(
            None,
            type=["null", "string"],
            minLength=3,
            description="Why the champion is rolled back (written to the audit trail). "
            "Required: a run without one fails, and nothing moves.",
        )
    },
)
def ijules_rollback() -> None:
    ijules_command(
        'rollback --reason "$IJULES_ROLLBACK_REASON"',
        task_id="rollback",
        pool="default_pool",
        env={"IJULES_ROLLBACK_REASON": "{{ params.reason or '' }}"},
        retries=0,  # a refused rollback (nothing to roll back to) is not transient
    )


ijules_rollback()
