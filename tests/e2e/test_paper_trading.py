"""The nightly DAG paper-trades the champion and the challenger and mails their books.

Two policies go through the pipeline's own commands (`dvc repro evaluate`, `ijules register`,
`ijules approve`) on bars up to one day; then bars of the following day and a half are
published and the nightly DAG runs through `dag.test()`: real DVC, MLflow on SQLite, Airflow's
SMTP connection to a real SMTP server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ijules.artifacts import PaperReport
from ijules.paper.ledger import read_ledger
from tests.conftest import OPEN_GATE, MailSink, make_project, run
from tests.e2e.dag_runs import load_dags, migrate_airflow_db, states

pytestmark = pytest.mark.slow

# A review a tiny budget gets through; tiny policies ask for small changes, so any rebalances.
DESK = {"gate": OPEN_GATE, "seeds": {"count": 1}, "environment": {"min_trade_weight": 0.0}}
LATER = "2017-10-16T12:00:00Z"  # the bars published after the policies were trained


@pytest.fixture(scope="module")
def airflow_db() -> None:
    migrate_airflow_db()


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


def mailed_body(sink: MailSink) -> str:
    [message] = sink.messages()
    part = next(
        p for p in message.walk() if p.get_content_type() == "text/html" and not p.get_filename()
    )
    return str(part.get_payload(decode=True).decode())


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
        body = mailed_body(sink)

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
