"""The nightly DAG paper-trades the champion and the challenger, scores the champion's health,
mails both, and starts a retraining and a rollback when the champion's health breaks down.

Two policies go through the pipeline's own commands (`dvc repro evaluate`, `ijules register`,
`ijules approve`) on bars up to one day; then bars of the following day and a half are
published and the nightly DAG runs through `dag.test()`: real DVC, MLflow on SQLite, Airflow's
SMTP connection to a real SMTP server.
"""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path

import pytest
import yaml

from ijules.artifacts import HealthDay, HealthReport, PaperReport
from ijules.paper.ledger import read_ledger
from tests.conftest import OPEN_GATE, MailSink, make_project, run
from tests.e2e.dag_runs import load_dags, migrate_airflow_db, states

pytestmark = pytest.mark.slow

# A review a tiny budget gets through; tiny policies ask for small changes, so any rebalances.
# Health judges the live record from a dozen bars, so a night of 36 bars is measured.
DESK = {
    "gate": OPEN_GATE,
    "seeds": {"count": 1},
    "environment": {"min_trade_weight": 0.0},
    "health": {"min_live_bars": 12, "min_regime_bars": 6},
}
ALERT = "[ijules] ALERT"
LATER = "2017-10-16T12:00:00Z"  # the bars published after the policies were trained


@pytest.fixture(scope="module")
def airflow_db() -> None:
    migrate_airflow_db()


@pytest.fixture(autouse=True)
def no_earlier_triggers(airflow_db: None) -> None:
    """Each test starts with no run of the DAGs health triggers (the database is the module's;
    a trigger names its run for the night, which the tests share)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(
            DagRun.dag_id.in_(["ijules_weekly", "ijules_rollback"])
        ).delete()


def set_params(project: Path, **changes: object) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            params[section][key] = value
        else:
            params[section] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def trained_and_approved(project: Path, seed: int) -> str:
    """A policy through the pipeline, reviewed, and approved by a person: its version."""
    set_params(project, seed=seed)
    run(["dvc", "repro", "evaluate"], project)
    review = json.loads(run(["ijules", "register"], project).stdout.strip().splitlines()[-1])
    assert review["status"] == "awaiting_approval", review
    run(["ijules", "approve", review["version"], "--reason", "paper desk"], project)
    return str(review["version"])


def html_of(message: Message) -> str:
    part = next(
        p for p in message.walk() if p.get_content_type() == "text/html" and not p.get_filename()
    )
    return str(part.get_payload(decode=True).decode())


def mailed(sink: MailSink) -> tuple[Message, list[Message]]:
    """The night's report, and the alerts mailed at once."""
    messages = sink.messages()
    [report] = [m for m in messages if not str(m["Subject"]).startswith(ALERT)]
    return report, [m for m in messages if str(m["Subject"]).startswith(ALERT)]


def mailed_body(sink: MailSink) -> str:
    return html_of(mailed(sink)[0])


def triggered_runs(dag_id: str) -> dict[str, dict[str, object]]:
    """The runs of ``dag_id`` in Airflow's metadata, by run id: what a trigger task created."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            run.run_id: dict(run.conf or {})
            for run in session.query(DagRun).filter(DagRun.dag_id == dag_id)
        }


def test_a_nightly_run_writes_both_ledgers_and_the_email_shows_them(
    airflow_db, tmp_path, monkeypatch
) -> None:
    project = make_project(tmp_path / "project", DESK)
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}"
    )
    assert trained_and_approved(project, 7) == "1"  # no champion yet: champion
    set_params(project, gate__champion_margin=100.0)  # a margin no model beats: challenger
    assert trained_and_approved(project, 8) == "2"
    set_params(project, data__end=LATER)  # a day and a half of bars arrives
    dags = load_dags(project, monkeypatch)

    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        nightly = dags["ijules_nightly"].test()
        assert str(nightly.state) == "success", states(nightly)
        message, urgent = mailed(sink)
        body = html_of(message)

    ledgers = project / "data" / "paper" / "ledgers"
    report = PaperReport.read(project / "reports" / "paper" / "night.json")
    assert report.data_end == "2017-10-16T12:00:00+00:00"
    by_slot = {book.slot: book for book in report.models}
    assert set(by_slot) == {"champion", "challenger"}
    for slot, version, capital in (("champion", "1", 90_000.0), ("challenger", "2", 10_000.0)):
        book = by_slot[slot]
        assert (book.version, book.alias, book.approved) == (version, slot, True)
        assert book.capital_usd == pytest.approx(capital)
        # From the last bar of the test window (the last bar trained on) to the newest.
        assert (book.first_bar, book.bars) == ("2017-10-15T00:00:00+00:00", 36)
        rows = read_ledger(ledgers / f"{slot}.jsonl")
        assert [row.kind for row in rows] == ["start"] + ["bar"] * 36
        assert rows[-1].equity_usd == pytest.approx(book.equity_usd)
        # The e-mail shows the book: version, alias, bars, P&L tonight and since it started.
        assert (
            f"<tr><td>v{version}</td><td>{slot}</td><td>36</td><td>{book.pnl_usd:+,.2f}</td>"
            f"<td>{book.pnl_cumulative_usd:+,.2f}</td><td>{book.drawdown:.2%}</td>"
        ) in body
    assert "<h3>Paper trading</h3>" in body and "Feature drift" in body

    # Health: the champion's, from its own live record and review evidence, leads the e-mail.
    health = HealthReport.read(project / "reports" / "health" / "night.json")
    assert (health.slot, health.version, health.data_end) == ("champion", "1", report.data_end)
    assert health.score is not None and 0.0 <= health.score <= 1.0
    # Its evaluation's positions and regimes were logged with it: live positions compare.
    assert health.components["action_drift"].score is not None
    assert "36 live bars" in health.components["action_drift"].detail
    assert health.reference == "v1 (champion)'s training window"  # drift against its window
    assert body.index("Health of v1 (champion)") < body.index("<h3>Paper trading</h3>")
    assert f"<b>{health.score:.2f}</b>" in body
    # The charts are inline: each <img> names an attached part by its Content-ID.
    images = {str(part["Content-ID"]).strip("<>") for part in message.walk() if part["Content-ID"]}
    for chart in ("health.png", "drift.png", "pnl.png"):
        assert f"src='cid:{chart}'" in body and chart in images
    # Tonight's line of history holds each book's P&L, as its ledger has it.
    [day] = [
        HealthDay.model_validate_json(line)
        for line in (project / "reports" / "health" / "history.jsonl").read_text().splitlines()
    ]
    assert day.pnl_usd == pytest.approx(
        {f"{slot}:v{by_slot[slot].version}": by_slot[slot].pnl_cumulative_usd for slot in by_slot}
    )
    assert day.score == health.score and day.alerts == [alert.key for alert in health.alerts]
    # What the health report starts is what Airflow's metadata shows, no more.
    assert bool(triggered_runs("ijules_weekly")) == health.actions.retrain
    assert bool(triggered_runs("ijules_rollback")) == health.actions.rollback
    assert len(urgent) == sum(a.new and a.severity == "high" for a in health.alerts)

    # What the DAG ran is in dvc.lock, ledgers and states included: DVC finds nothing to redo.
    again = run(["dvc", "repro", "--single-item", "paper"], project)
    assert "Running stage" not in again.stdout, again.stdout
    assert "Stage 'paper' didn't change" in again.stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["paper"]
    assert {out["path"] for out in lock["outs"]} >= {"data/paper/ledgers", "data/paper/state"}

    # The same night again: nothing new is traded or written, and the e-mail says so.
    books = {path: path.read_bytes() for path in (project / "data" / "paper").rglob("*.json*")}
    with MailSink(tmp_path / "mail-2") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        rerun = dags["ijules_nightly"].test()
        assert str(rerun.state) == "success", states(rerun)
        body = mailed_body(sink)
    assert {path: path.read_bytes() for path in books} == books
    quiet = PaperReport.read(project / "reports" / "paper" / "night.json")
    assert {(book.outcome, book.bars) for book in quiet.models} == {("no new bars", 0)}
    assert "<tr><td>v1</td><td>champion</td><td>0</td><td>+0.00</td>" in body


def test_a_health_breach_of_the_champion_starts_retraining_and_rollback_once(
    airflow_db, tmp_path, monkeypatch
) -> None:
    project = make_project(tmp_path / "project", DESK)
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}"
    )
    assert trained_and_approved(project, 7) == "1"
    # Planted: the score is the live positions' likeness to the test window's alone (one minus
    # their Kolmogorov-Smirnov distance), and anything short of identical breaches it.
    only_actions = {"data_drift": 0.0, "action_drift": 1.0, "performance": 0.0, "regime": 0.0}
    set_params(
        project,
        data__end=LATER,
        health={**DESK["health"], "weights": {**only_actions, "risk": 0.0},
                "retrain_below": 1.0, "rollback_below": 0.9999},
    )  # fmt: skip
    dags = load_dags(project, monkeypatch)
    night = "2017-10-16T12:00:00+00:00"

    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        nightly = dags["ijules_nightly"].test()
        assert str(nightly.state) == "success", states(nightly)
        message, urgent = mailed(sink)

    health = HealthReport.read(project / "reports" / "health" / "night.json")
    assert health.score is not None and health.score < 0.9999, health
    [breach] = [alert for alert in health.alerts if alert.kind == "health_breach"]
    assert (breach.severity, breach.new, breach.slot) == ("high", True, "champion")
    assert health.actions.retrain and health.actions.rollback
    # Both runs are in Airflow's metadata, named for the night, with the report's reasons.
    weekly, rollback = triggered_runs("ijules_weekly"), triggered_runs("ijules_rollback")
    assert set(weekly) == {f"health_retrain__{night}"}
    assert set(rollback) == {f"health_rollback__{night}"}
    for conf in (*weekly.values(), *rollback.values()):
        assert "health_breach:champion:v1" in str(conf["reason"])
    ti_states = states(nightly)
    assert ti_states["retrain_early"] == ti_states["rollback_champion"] == "success"
    # The breach was mailed at once, to the risk team and on-call, apart from the report.
    [alert_mail] = urgent
    assert "health_breach" in str(alert_mail["Subject"])
    assert {"risk-team@example.com", "on-call@example.com"} <= set(
        address.strip() for address in str(alert_mail["To"]).split(",")
    )
    assert "health_breach:champion:v1" in html_of(message)

    # The same night again (a rerun): the same report, but nothing is mailed twice and no second
    # run is started.
    with MailSink(tmp_path / "mail-2") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_connection())
        again = dags["ijules_nightly"].test()
        assert str(again.state) == "success", states(again)
        _, urgent = mailed(sink)
    # A rerun of the night judges against the night before it, as the first run did.
    rerun = HealthReport.read(project / "reports" / "health" / "night.json")
    assert rerun.actions == health.actions and rerun.alerts == health.alerts
    assert urgent == []
    assert set(triggered_runs("ijules_weekly")) == set(weekly)
    assert set(triggered_runs("ijules_rollback")) == set(rollback)
