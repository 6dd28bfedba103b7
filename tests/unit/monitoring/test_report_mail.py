"""The risk team's nightly e-mail: each paper book's night beside the drift report."""

from __future__ import annotations

from pathlib import Path

import pytest

from ijules.artifacts import DriftSpan, DriftSummary, FeatureDrift, PaperModelNight, PaperReport
from ijules.monitoring.report_mail import build_drift_email


@pytest.fixture
def drift(tmp_path: Path) -> tuple[Path, Path]:
    summary = DriftSummary(
        drift_share=0.25,
        drifted_features=1,
        features=4,
        dataset_drift=False,
        threshold=0.5,
        per_feature={"ret_1": FeatureDrift(method="ks", threshold=0.05, score=0.01, drifted=True)},
        reference=DriftSpan(start="2017-07-01", end="2017-09-01", bars=1500),
        current=DriftSpan(start="2017-10-01", end="2017-10-16", bars=360),
    )
    summary.write(tmp_path / "drift_metrics.json")
    (tmp_path / "drift.html").write_text("<html></html>")
    return tmp_path / "drift_metrics.json", tmp_path / "drift.html"


def book(**changes: object) -> PaperModelNight:
    base = PaperModelNight(
        slot="champion",
        version="3",
        alias="champion",
        status="champion",
        approved=True,
        allocation=0.9,
        capital_usd=90_000.0,
        outcome="traded",
        started=False,
        retired=None,
        first_bar="2017-10-15T00:00:00+00:00",
        last_bar="2017-10-15T23:00:00+00:00",
        standing_at="2017-10-16T00:00:00+00:00",
        bars=24,
        fills=9,
        pnl_usd=-123.456,
        costs_usd=40.0,
        pnl_cumulative_usd=1_234.5,
        equity_usd=91_234.5,
        drawdown=0.0123,
        breaker_events=["2017-10-15T07:00:00+00:00: HALTED (drawdown within the day ...)"],
        error=None,
        ledger="data/paper/ledgers/champion.jsonl",
    )
    return base.model_copy(update=changes)


def night(tmp_path: Path, models: list[PaperModelNight], note: str | None = None) -> Path:
    path = tmp_path / "night.json"
    PaperReport(
        model_name="ijules-policy",
        data_end="2017-10-16T00:00:00+00:00",
        capital_usd=100_000.0,
        challenger_allocation=0.1,
        models=models,
        note=note,
    ).write(path)
    return path


def test_the_email_shows_each_books_night(make_config, drift, tmp_path) -> None:
    shadow = book(
        slot="shadow", version="4", alias=None, status="rejected", approved=False,
        allocation=0.0, pnl_usd=5.0, pnl_cumulative_usd=5.0, breaker_events=[], started=True,
    )  # fmt: skip
    refused = book(
        slot="challenger", version="2", alias="challenger", outcome="refused", bars=0,
        pnl_usd=0.0, breaker_events=[], error="the served weights' sha256 differs",
    )  # fmt: skip
    email = build_drift_email(
        make_config(),
        drift_metrics=drift[0],
        drift_html=drift[1],
        paper=night(tmp_path, [book(), refused, shadow]),
    )
    body = email.html
    assert "<h3>Paper trading</h3>" in body
    assert "the champion trades 90%, the challenger 10%" in body
    assert (
        "<tr><td>v3</td><td>champion</td><td>24</td><td>-123.46</td><td>+1,234.50</td>"
        "<td>1.23%</td><td>2017-10-15T07:00:00+00:00: HALTED" in body
    )
    assert "<td>v2</td><td>challenger</td><td>0</td>" in body
    assert "refused; the served weights&#x27; sha256 differs" in body
    assert "<td>v4</td><td>shadow (unapproved)</td><td>24</td><td>+5.00</td>" in body
    assert "started fresh at 2017-10-15T00:00:00+00:00" in body
    assert email.attachments == drift[::-1]  # the book is in the body, not attached


def test_without_a_paper_night_the_email_has_no_paper_section(make_config, drift, tmp_path):
    config = make_config()
    plain = build_drift_email(config, drift_metrics=drift[0], drift_html=drift[1])
    assert "Paper trading" not in plain.html
    empty = night(tmp_path, [], note="no version of ijules-policy is registered: nothing trades")
    email = build_drift_email(config, drift_metrics=drift[0], drift_html=drift[1], paper=empty)
    assert "<p>no version of ijules-policy is registered: nothing trades</p>" in email.html


def health_report(tmp_path: Path, **changes: object) -> Path:
    from ijules.artifacts import HealthActions, HealthAlert, HealthComponent, HealthReport

    report = HealthReport(
        data_end="2017-10-16T00:00:00+00:00",
        slot="champion",
        version="3",
        reference="v3 (champion)'s training window",
        score=0.3125,
        components={
            "data_drift": HealthComponent(score=0.75, detail="1 of 4 features drifted"),
            "performance": HealthComponent(score=None, detail="not measured: 10 live bar(s)"),
        },
        alerts=[
            HealthAlert(
                key="health_breach:champion:v3", kind="health_breach", severity="high",
                slot="champion", version="3", message="health score 0.31 below 0.35",
                recommended_action="roll back the champion", new=True,
            ),
            HealthAlert(
                key="data_drift:champion:v3", kind="data_drift", severity="medium",
                slot="champion", version="3", message="drifted", recommended_action="retrain",
                new=False,
            ),
        ],
        cleared=["action_drift:champion:v3"],
        actions=HealthActions(retrain=True, rollback=True, reasons=["health_breach"]),
        drift_share=0.25,
        pnl_usd={"champion": 12.0},
    ).model_copy(update=changes)  # fmt: skip
    path = tmp_path / "health.json"
    report.write(path)
    return path


def test_the_email_leads_with_health_alerts_and_inline_charts(make_config, drift, tmp_path):
    metrics, html_path = drift
    charts = tmp_path / "charts"
    charts.mkdir()
    for name in ("health.png", "pnl.png"):
        (charts / name).write_bytes(b"\x89PNG")
    email = build_drift_email(
        make_config(), drift_metrics=metrics, drift_html=html_path,
        paper=night(tmp_path, [book()]), health=health_report(tmp_path), charts=charts,
    )  # fmt: skip
    assert email.subject.startswith("[ijules] health 0.31, 1 new alert(s); ")
    body = email.html
    order = [
        "Health of v3 (champion): <b>0.31</b>", "health_breach:champion:v3",
        "src='cid:health.png'", "<h3>Feature drift</h3>", "<h3>Paper trading</h3>",
    ]  # fmt: skip
    assert [body.index(part) for part in order] == sorted(body.index(part) for part in order)
    assert "<td>high</td><td>new</td>" in body and "<td>medium</td><td>ongoing</td>" in body
    assert "<td>performance</td><td>n/a</td>" in body
    assert "Cleared since last night: action_drift:champion:v3" in body
    assert "early weekly retraining (ijules_weekly) and the champion&#x27;s rollback" in body
    assert {path.name for path in email.attachments} >= {"health.png", "pnl.png", "drift.html"}


def test_only_new_high_alerts_are_mailed_at_once_to_risk_and_on_call(make_config, tmp_path):
    from ijules.monitoring.report_mail import build_alert_email

    config = make_config()
    email = build_alert_email(config, health=health_report(tmp_path))
    assert email is not None
    assert email.to == ("risk-team@example.com", "on-call@example.com")
    assert "health_breach" in email.subject and "data_drift" not in email.subject
    sent = {"health_breach:champion:v3"}
    assert build_alert_email(config, health=health_report(tmp_path), already_sent=sent) is None
    quiet = health_report(tmp_path, alerts=[])
    assert build_alert_email(config, health=quiet) is None
