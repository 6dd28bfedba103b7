"""The failure alert: to whom, and what it says about the failed run."""

from __future__ import annotations

from ijules.monitoring.failure_mail import TaskFailure, build_failure_email

LOG = "http://airflow.example/dags/ijules_nightly/runs/scheduled__2026-12-01T01%3A00%3A00%2B00%3A00/tasks/validate?try_number=1"
RULES = (
    "validation failed for data/staging/bars.parquet (3 rule(s); details in "
    "reports/validation/result.json): unique_timestamps [one bar per time]: 96 row(s) | "
    "increasing_timestamps [time moves forward]: 1 row(s) | on_grid [bars <on> the grid]: 4 row(s)"
)


def alert(config, failures, **facts):
    defaults = {
        "dag_id": "ijules_nightly",
        "run_id": "scheduled__2026-12-01T01:00:00+00:00",
        "logical_date": "2026-12-01T01:00:00+00:00",
    }
    return build_failure_email(config, failures=failures, **{**defaults, **facts})


def test_a_failed_data_check_alerts_risk_team_and_on_call_with_the_rules_and_the_log(
    make_config,
) -> None:
    config = make_config(
        {"notify": {"risk_team": ["desk@bank.test"], "on_call": ["pager@bank.test"]}}
    )
    email = alert(config, [TaskFailure("validate", RULES, LOG, try_number=1)])
    assert email.to == ("desk@bank.test", "pager@bank.test")
    assert email.sender == config.notify.sender
    assert email.subject.startswith(
        "[ijules] ijules_nightly FAILED at validate for 2026-12-01T01:00:00+00:00: validation "
    )
    assert len(email.subject) < 220  # the body has the whole line
    for fact in ("ijules_nightly", "scheduled__2026-12-01T01:00:00+00:00", "2026-12-01T01:00:00"):
        assert fact in email.html
    assert "<b>validate</b> (try 1)" in email.html
    for rule in ("unique_timestamps", "increasing_timestamps", "on_grid"):
        assert rule in email.html
    assert "bars &lt;on&gt; the grid" in email.html  # the error is text, not markup
    assert f"href='{LOG}'" in email.html
    assert email.attachments == ()


def test_an_address_on_both_lists_gets_one_copy(make_config) -> None:
    config = make_config(
        {"notify": {"risk_team": ["a@bank.test", "b@bank.test"], "on_call": ["b@bank.test"]}}
    )
    email = alert(config, [TaskFailure("train", "NaN in the gradient norm at step 64", None)])
    assert email.to == ("a@bank.test", "b@bank.test")


def test_every_failed_task_is_named_first_failure_first(make_config) -> None:
    email = alert(
        make_config(),
        [
            TaskFailure("train", "NaN in the weights", LOG),
            TaskFailure("email_risk_team", None, LOG),
        ],
        dag_id="ijules_weekly",
    )
    assert "FAILED at train, email_risk_team for" in email.subject
    assert email.subject.endswith(": NaN in the weights")
    assert email.html.index("<b>train</b>") < email.html.index("<b>email_risk_team</b>")


def test_a_task_that_recorded_no_error_points_to_its_log(make_config) -> None:
    email = alert(make_config(), [TaskFailure("ingest", None, LOG)])
    assert email.subject == (
        "[ijules] ijules_nightly FAILED at ingest for 2026-12-01T01:00:00+00:00"
    )
    assert "No error line was recorded" in email.html and LOG in email.html


def test_a_run_that_failed_without_a_failed_task_gives_airflows_reason(make_config) -> None:
    email = alert(make_config(), [], reason="timed_out", logical_date=None)
    assert email.subject == "[ijules] ijules_nightly FAILED: timed_out"
    assert "No task failed; Airflow failed the run: timed_out" in email.html
    assert "none (a run without one)" in email.html
