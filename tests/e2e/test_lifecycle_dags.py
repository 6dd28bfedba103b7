"""Each DAG end to end through `dag.test()`, on a slice of real data with a tiny training budget.

The DAGs run their real tasks: `dvc repro` stages in a copy of the project, MLflow on SQLite,
Great Expectations, Evidently, and Airflow's SMTP connection to a real SMTP server.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from email.utils import getaddresses
from html import escape
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from mlflow import MlflowClient

from ijules.artifacts import MetricsReport, Registration, StressReport, WalkForwardSummary
from ijules.evaluation.baselines import BASELINES, RULES
from ijules.registry.audit import verify
from tests.conftest import (
    OPEN_GATE,
    REPO,
    SAMPLES,
    MailSink,
    free_port,
    make_project,
    run,
    stub_registry,
)
from tests.e2e.dag_runs import load_dags, migrate_airflow_db, states

pytestmark = pytest.mark.slow


APPROVER = "test_risk_officer"
OPEN_REVIEW = {"gate": OPEN_GATE}  # a version a tiny budget can get through review


@pytest.fixture(scope="module")
def airflow_db() -> None:
    migrate_airflow_db()


@pytest.fixture(scope="module")
def approvals_api(airflow_db, tmp_path_factory) -> Iterator[str]:
    """An api-server on the tests' metadata database, with one named user who may answer."""
    from ijules.operations.approvals import approvals_api as api_server

    with api_server(APPROVER, tmp_path_factory.mktemp("api") / "api-server.log", 120) as url:
        yield url


def answered(approver: subprocess.Popen[str], project: Path) -> str:
    """What the approver said; it must have answered by the time the DAG run ended."""
    try:
        said, _ = approver.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        approver.kill()
        review = Registration.read(project / "reports" / "registry.json")
        raise AssertionError(f"no approval was asked: {review.status} {review.reasons}") from None
    assert approver.returncode == 0, said
    return said


def answer(api: str, choice: str, reason: str) -> subprocess.Popen[str]:
    """The approver, in the background: waits for the pending approval and answers over HTTP."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "answer_approval.py"), "--api", api,
         "--user", APPROVER, "--choice", choice, "--reason", reason, "--timeout", "1200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


ALERTED = ["risk-team@example.com", "on-call@example.com"]  # params.yaml's notify lists


def recipients(message: Message) -> list[str]:
    return [address for _, address in getaddresses([message["To"]])]


def html_body(message: Message) -> str:
    part = next(
        p for p in message.walk() if p.get_content_type() == "text/html" and not p.get_filename()
    )
    return str(part.get_payload(decode=True).decode())


def unreadable_delivery(project: Path) -> None:
    """Point ingest at a delivery whose columns are no bars: it fails at once, naming them."""
    (project / "delivery.csv").write_text("when,price\n2026-01-02T00:00:00Z,1.0\n")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "delivery.csv"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


# The command's own error line, as the e-mail's HTML shows it.
MISSING_COLUMNS = escape("delivery.csv: missing column 'timestamp' (for timestamp)")


def test_a_failed_run_mails_risk_team_and_on_call_once_after_the_last_try(
    airflow_db, tmp_path, monkeypatch
) -> None:
    """Ingest fails twice (a retry): one e-mail, after the last try, with the command's own
    error line (not the shell's exit code), the task, the run's logical date and the log."""
    project = make_project(tmp_path / "project")
    unreadable_delivery(project)
    nightly = load_dags(project, monkeypatch)["ijules_nightly"]
    ingest = nightly.get_task("ingest")
    ingest.retries, ingest.retry_delay = 1, timedelta(0)  # a retry, at once
    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        failed = nightly.test()
        messages = sink.messages()
    task_states = states(failed)
    assert str(failed.state) == "failed"
    assert task_states["ingest"] == "failed"
    assert {task_states[t] for t in ("validate", "features", "drift", "email_risk_team")} == {
        "upstream_failed"
    }
    # Both tries failed with the command's line; only the last try's failure was the task's.
    tries = project / "var" / "failures" / "ijules_nightly" / failed.run_id / "ingest"
    assert sorted(path.name for path in tries.iterdir()) == ["1.error", "2.error", "2.json"]

    [message] = messages
    assert recipients(message) == ALERTED
    assert message["Subject"].startswith("[ijules] ijules_nightly FAILED at ingest for ")
    body = html_body(message)
    assert "ijules_nightly" in body and failed.run_id in body
    assert failed.logical_date.isoformat() in body
    assert "<b>ingest</b> (try 2)" in body
    assert MISSING_COLUMNS in body
    assert "Bash command failed" not in body
    log_page = f"/dags/ijules_nightly/runs/{quote(failed.run_id)}/tasks/ingest?try_number=2"
    assert log_page in body


def test_a_failed_weekly_names_the_failed_stage_not_the_watcher(
    airflow_db, tmp_path, monkeypatch
) -> None:
    """The watcher fails the run because ingest failed, and fails last: the e-mail names ingest."""
    project = make_project(tmp_path / "project")
    unreadable_delivery(project)
    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        failed = load_dags(project, monkeypatch)["ijules_weekly"].test()
        messages = sink.messages()
    task_states = states(failed)
    assert str(failed.state) == "failed"
    assert (task_states["ingest"], task_states["watcher"]) == ("failed", "failed")
    [message] = messages
    assert recipients(message) == ALERTED
    assert message["Subject"].startswith("[ijules] ijules_weekly FAILED at ingest for ")
    body = html_body(message)
    assert MISSING_COLUMNS in body
    assert "watcher" not in body


def test_a_task_that_fails_before_ijules_speaks_is_reported_with_its_exception_and_log(
    airflow_db, tmp_path, monkeypatch
) -> None:
    """DVC refuses a stage whose source is missing: no ijules error line, so the e-mail gives
    the task's exception and says the output is in the log."""
    project = make_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "nowhere.csv"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        failed = load_dags(project, monkeypatch)["ijules_nightly"].test()
        [message] = sink.messages()
    assert states(failed)["ingest"] == "failed"
    body = html_body(message)
    assert "AirflowException: Bash command failed" in body
    assert "no ijules error line: the command&#x27;s output is in the log" in body
    assert f"/dags/ijules_nightly/runs/{quote(failed.run_id)}/tasks/ingest" in body


def test_a_failure_mail_that_cannot_be_sent_is_logged_and_the_run_stays_failed(
    airflow_db, tmp_path, monkeypatch, caplog
) -> None:
    project = make_project(tmp_path / "project")
    unreadable_delivery(project)
    nobody = {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port()}  # nothing listens
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(nobody))
    with caplog.at_level(logging.ERROR, logger="wiring"):
        failed = load_dags(project, monkeypatch)["ijules_nightly"].test()
    assert str(failed.state) == "failed"
    assert states(failed)["ingest"] == "failed"
    [record] = [r for r in caplog.records if r.name == "wiring"]
    assert record.getMessage() == (
        f"the failure e-mail for ijules_nightly run {failed.run_id} was not sent"
    )
    assert isinstance(record.exc_info[1], ConnectionRefusedError)


def test_weekly_then_nightly_run_the_whole_lifecycle(airflow_db, tmp_path, monkeypatch) -> None:
    project = make_project(tmp_path / "project")
    tracking = f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    dags = load_dags(project, monkeypatch)

    weekly = dags["ijules_weekly"].test()
    assert str(weekly.state) == "success", states(weekly)
    metrics = MetricsReport.read(project / "reports" / "metrics.json")
    assert set(metrics.backtests()) == {"agent", *BASELINES}
    assert metrics.best_rule in RULES
    folds = WalkForwardSummary.read(project / "reports" / "walk_forward" / "summary.json")
    assert len(folds.table) == 3
    stress = StressReport.read(project / "reports" / "stress.json")
    assert stress.scenarios_run == 6
    report = yaml.safe_load((project / "reports" / "performance_report.yaml").read_text())
    assert set(report["baseline_performance"]) >= {"returns", "risk_metrics", "red_flags"}
    registration = Registration.read(project / "reports" / "registry.json")
    # A few hundred training steps earn no approval: the review rejects it, and the approval
    # and what follows it are skipped, not failed.
    assert registration.status == "rejected" and registration.alias is None
    task_states = states(weekly)
    assert (task_states["review"], task_states["review_passed"]) == ("success", "success")
    assert {task_states[t] for t in ("approval", "promote", "record_rejection")} == {"skipped"}
    # The review is on the audit trail, by the DAG run that made it.
    (decided,) = verify(project / "var" / "audit" / "trail.jsonl")
    assert (decided.action, decided.version) == ("register", registration.version)
    assert decided.actor.startswith("airflow:ijules_weekly:")
    # The review read the walk-forward and stress results, not one split alone.
    assert registration.gate is not None
    gated = {check.metric for check in registration.gate.checks}
    assert {"walk_forward_pass_rate", "stress_scenarios_survived", "seeds", "dsr"} <= gated
    version = MlflowClient(tracking_uri=tracking).get_model_version(
        "ijules-policy", registration.version
    )
    assert version.tags["ijules.status"] == registration.status

    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        nightly = dags["ijules_nightly"].test()
        assert str(nightly.state) == "success", states(nightly)
        # The night's report; a new high-severity alert would come apart, at once.
        [message] = [m for m in sink.messages() if not m["Subject"].startswith("[ijules] ALERT")]
    assert message["To"] == "risk-team@example.com"
    assert "features drifted" in message["Subject"]
    attachments = {part.get_filename() for part in message.walk() if part.get_filename()}
    charts = {"health.png", "drift.png", "pnl.png"}  # shown inline
    assert attachments == {"drift.html", "drift_metrics.json"} | charts
    body = next(
        p for p in message.walk() if p.get_content_type() == "text/html" and not p.get_filename()
    )
    assert "Feature drift" in body.get_payload(decode=True).decode()

    # Everything the DAGs produced is recorded in dvc.lock: a plain `dvc repro` has nothing to do.
    again = run(["dvc", "repro"], project)
    assert "Running stage" not in again.stdout
    assert "Data and pipelines are up to date" in again.stdout

    # Now a dirty delivery: the nightly stops at validation and changes nothing downstream; the
    # risk team and on-call get one e-mail, naming the run, the task and the broken rules.
    good_bars = (project / "data" / "raw" / "bars.parquet").read_bytes()
    good_features = (project / "data" / "features" / "features.parquet").read_bytes()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(
        {"source": str(SAMPLES / "btcusd_15m.csv.gz"), "frequency": "15min", "end": None}
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with MailSink(tmp_path / "mail-2") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        failed = dags["ijules_nightly"].test()
        alerts = sink.messages()
    task_states = states(failed)
    assert str(failed.state) == "failed"
    assert task_states["ingest"] == "success" and task_states["validate"] == "failed"
    assert {task_states[t] for t in ("features", "drift", "email_risk_team")} == {"upstream_failed"}
    assert (project / "data" / "raw" / "bars.parquet").read_bytes() == good_bars
    assert (project / "data" / "features" / "features.parquet").read_bytes() == good_features
    result = yaml.safe_load((project / "reports" / "validation" / "result.json").read_text())
    broken = {"unique_timestamps", "increasing_timestamps", "on_grid"}
    assert {f["rule"] for f in result["summary"]["failures"]} == broken
    [alert] = alerts  # no drift report: only the failure alert
    assert recipients(alert) == ALERTED
    assert alert["Subject"].startswith("[ijules] ijules_nightly FAILED at validate for ")
    body = html_body(alert)
    assert "ijules_nightly" in body and failed.logical_date.isoformat() in body
    assert "<b>validate</b> (try 1)" in body
    assert all(rule in body for rule in broken), body  # validate's own error line
    assert f"/dags/ijules_nightly/runs/{quote(failed.run_id)}/tasks/validate" in body


def test_the_rollback_dag_reinstates_the_replaced_champion_with_its_reason(
    airflow_db, tmp_path, monkeypatch
) -> None:
    """Two versions whose gate passed, v2 champion after v1: a manual run with a reason moves
    the alias back, and the trail records the DAG run and the reason, shell characters and all."""
    from ijules.config import load_config
    from ijules.registry.aliases import promote

    project = make_project(tmp_path / "project")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'var' / 'mlflow.db'}")
    config = load_config(project / "params.yaml")
    name, trail = config.registry.model_name, project / config.paths.audit
    client = stub_registry(config, {"1": "champion", "2": "champion"})
    client.set_registered_model_alias(name, "champion", "1")
    promote(config, "2", "champion", reason="weekly gate", force=False, audit=trail)

    reason = 'drawdown alert"; touch hacked #'
    run = load_dags(project, monkeypatch)["ijules_rollback"].test(run_conf={"reason": reason})
    assert str(run.state) == "success", states(run)
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    last = verify(trail)[-1]
    assert (last.action, last.version, last.reason) == ("rollback", "1", reason)
    assert last.actor == f"airflow:ijules_rollback:{run.run_id}"
    assert not (project / "hacked").exists()


def test_a_refused_rollback_fails_its_run_and_mails_the_refusal_once(
    airflow_db, tmp_path, monkeypatch
) -> None:
    """A run with no reason, then a champion that replaced no version: each rollback is
    refused, the alias stays, and the risk team and on-call get one failure e-mail with the
    refusal's line."""
    from ijules.config import load_config

    project = make_project(tmp_path / "project")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'var' / 'mlflow.db'}")
    config = load_config(project / "params.yaml")
    name = config.registry.model_name
    client = stub_registry(config, {"1": "champion"})
    client.set_registered_model_alias(name, "champion", "1")
    dags = load_dags(project, monkeypatch)
    refusals = {
        None: f"{name}: a rollback needs a reason, for the audit trail",
        "the desk's loss comfort": f"{name} champion v1 replaced no earlier version",
    }
    for reason, refusal in refusals.items():
        with MailSink(tmp_path / f"mail-{reason is None}") as sink:
            monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
            conf = {} if reason is None else {"reason": reason}
            run = dags["ijules_rollback"].test(run_conf=conf)
            alerts = sink.messages()
        assert str(run.state) == "failed", states(run)
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
        [alert] = alerts
        assert recipients(alert) == ALERTED
        assert alert["Subject"].startswith("[ijules] ijules_rollback FAILED at rollback for ")
        assert escape(refusal) in html_body(alert)
    assert all(entry.action != "rollback" for entry in verify(project / config.paths.audit))


def test_a_person_approves_then_rejects_through_the_rest_api(
    airflow_db, approvals_api, tmp_path, monkeypatch
) -> None:
    """Week one: the review passes and the approver approves over the HITL REST API: the alias
    moves, under the approver's name. Week two, a new model: the approver rejects it with a
    reason: nothing moves, and the rejection is on the record."""
    project = make_project(tmp_path / "project", OPEN_REVIEW)
    tracking = f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    dags = load_dags(project, monkeypatch)
    client = MlflowClient(tracking_uri=tracking)
    trail = project / "var" / "audit" / "trail.jsonl"

    approver = answer(approvals_api, "Approve", "review passed; desk agrees")
    week_one = dags["ijules_weekly"].test()
    said = answered(approver, project)
    assert str(week_one.state) == "success", states(week_one)
    assert f"Approve (Promote the reviewed ijules policy?) by {APPROVER}" in said
    task_states = states(week_one)
    assert (task_states["approval"], task_states["promote"]) == ("success", "success")
    assert task_states["record_rejection"] == "skipped"
    approved = Registration.read(project / "reports" / "registry.json")
    assert (approved.status, approved.alias, approved.decided_by) == (
        "champion",
        "champion",
        APPROVER,
    )
    assert approved.decision_reason == "review passed; desk agrees"
    assert str(client.get_model_version_by_alias("ijules-policy", "champion").version) == "1"

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["seed"] += 1  # next week's model
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    approver = answer(approvals_api, "Reject", "wait for the quarterly model audit")
    week_two = dags["ijules_weekly"].test()
    answered(approver, project)
    assert str(week_two.state) == "success", states(week_two)
    task_states = states(week_two)
    assert (task_states["promote"], task_states["record_rejection"]) == ("skipped", "success")
    declined = Registration.read(project / "reports" / "registry.json")
    assert (declined.version, declined.status, declined.alias) == ("2", "declined", None)
    assert str(client.get_model_version_by_alias("ijules-policy", "champion").version) == "1"
    with pytest.raises(Exception, match="alias"):
        client.get_model_version_by_alias("ijules-policy", "challenger")
    entries = verify(trail)
    assert [(e.action, e.version) for e in entries] == [
        ("register", "1"), ("approve", "1"), ("register", "2"), ("reject", "2"),
    ]  # fmt: skip
    assert [e.actor for e in entries if e.action in ("approve", "reject")] == [APPROVER] * 2
    assert entries[-1].reason == "wait for the quarterly model audit"
