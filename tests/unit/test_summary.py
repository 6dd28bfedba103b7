"""The run's summary reads each paper book's night and the health back from their reports."""

from __future__ import annotations

from pathlib import Path

from ijules.artifacts import PaperModelNight, PaperReport
from ijules.summary import render_summary


def test_the_summary_shows_each_paper_book(make_config, tmp_path: Path, monkeypatch) -> None:
    config = make_config()
    monkeypatch.chdir(tmp_path)
    assert "paper:" not in render_summary(config)  # no night yet: no line
    shadow = PaperModelNight(
        slot="shadow", version="4", alias=None, status="rejected", approved=False,
        allocation=0.0, capital_usd=90_000.0, outcome="traded", started=True, retired=None,
        first_bar="2017-10-15T00:00:00+00:00", last_bar="2017-10-15T23:00:00+00:00",
        standing_at="2017-10-16T00:00:00+00:00", bars=24, fills=3, pnl_usd=-12.5,
        costs_usd=2.0, pnl_cumulative_usd=-12.5, equity_usd=89_987.5, drawdown=0.0002,
        breaker_events=[], error=None, ledger="data/paper/ledgers/shadow.jsonl",
    )  # fmt: skip
    PaperReport(
        model_name="ijules-policy",
        data_end="2017-10-16T00:00:00+00:00",
        capital_usd=100_000.0,
        challenger_allocation=0.1,
        models=[shadow],
        note=None,
    ).write(Path(config.paths.paper_report))
    assert (
        "paper:    shadow v4 (shadow, unapproved): traded, 24 bar(s) to "
        "2017-10-16T00:00:00+00:00; P&L -12.50 USD tonight, -12.50 since it started; "
        "drawdown 0.02%"
    ) in render_summary(config)


def test_the_summary_says_why_nothing_traded(make_config, tmp_path, monkeypatch) -> None:
    note = "no version of ijules-policy is registered: nothing trades"
    config = make_config()
    monkeypatch.chdir(tmp_path)
    PaperReport(
        model_name="ijules-policy",
        data_end=None,
        capital_usd=100_000.0,
        challenger_allocation=0.1,
        models=[],
        note=note,
    ).write(Path(config.paths.paper_report))
    assert f"paper:    {note}" in render_summary(config)


def test_the_summary_shows_health_its_alerts_and_what_they_started(
    make_config, tmp_path, monkeypatch
) -> None:
    from tests.unit.monitoring.test_report_mail import health_report

    config = make_config()
    monkeypatch.chdir(tmp_path)
    assert "health:" not in render_summary(config)
    report = health_report(tmp_path)
    target = Path(config.paths.health_report)
    target.parent.mkdir(parents=True)
    report.replace(target)
    text = render_summary(config)
    assert (
        "health:   v3 (champion): 0.31; 2 alert(s), 1 new; started retrain_early, rollback_champion"
    ) in text
    assert "NEW high: health_breach:champion:v3: roll back the champion" in text
    assert "medium: data_drift:champion:v3: retrain" in text
