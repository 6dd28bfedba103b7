"""The nightly e-mail to the risk team: drift headline, data and model health, paper trading,
reports attached.

This module only composes the message; the Airflow task sends it through Airflow's SMTP
connection, so delivery, retries and credentials stay with the orchestrator.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from ijules.artifacts import (
    DriftSummary,
    HealthAlert,
    HealthReport,
    MetricsReport,
    PaperModelNight,
    PaperReport,
    Registration,
    ValidationResult,
)
from ijules.config import Config
from ijules.errors import IngestError


@dataclass(frozen=True)
class Email:
    """A composed message."""

    to: tuple[str, ...]
    sender: str
    subject: str
    html: str
    attachments: tuple[Path, ...]


def build_drift_email(
    config: Config,
    *,
    drift_metrics: Path,
    drift_html: Path,
    validation: Path | None = None,
    metrics: Path | None = None,
    registration: Path | None = None,
    paper: Path | None = None,
    health: Path | None = None,
    charts: Path | None = None,
    interval: str | None = None,
) -> Email:
    """Compose the drift and health e-mail from the reports on disk.

    ``drift_metrics`` and ``drift_html`` must exist. The message leads with the night's health
    (score, components, alerts, what they start) and its charts (``charts``: PNGs shown inline,
    by Content-ID), then the sections for drift, validation, the latest evaluation, the registry
    and the paper-trading night, each when its file exists.
    """
    for required in (drift_metrics, drift_html):
        if not required.is_file():
            raise IngestError(f"drift report not found: {required} (run `ijules drift` first)")
    drift = DriftSummary.read(drift_metrics)
    verdict = "DRIFT" if drift.dataset_drift else "no drift"
    label = f" for {interval}" if interval else ""
    subject = (
        f"[ijules] {', '.join(config.data.symbols)} nightly report{label}: {verdict}, "
        f"{drift.drifted_features} of {drift.features} features drifted "
        f"({drift.drift_share:.0%})"
    )
    report = HealthReport.read_if_present(health)
    pictures = sorted(charts.glob("*.png")) if charts is not None and charts.is_dir() else []
    if report is not None:
        score = "not measured" if report.score is None else f"{report.score:.2f}"
        fresh = sum(alert.new for alert in report.alerts)
        subject = f"[ijules] health {score}, {fresh} new alert(s); " + subject.removeprefix(
            "[ijules] "
        )
    sections = [
        f"<h2>{html.escape(subject)}</h2>",
        _health_section(report),
        _charts_section(pictures),
        _drift_section(drift),
        _validation_section(validation),
        _model_section(metrics, registration),
        _paper_section(paper),
        "<p>Attached: the Evidently drift report (HTML) and its summary (JSON)"
        + (", and the charts above" if pictures else "")
        + ".</p>",
    ]
    body = "<html><body>" + "\n".join(s for s in sections if s) + "</body></html>"
    return Email(
        to=config.notify.risk_team,
        sender=config.notify.sender,
        subject=subject,
        html=body,
        attachments=(drift_html, drift_metrics, *pictures),
    )


def build_alert_email(
    config: Config, *, health: Path, already_sent: set[str] | None = None
) -> Email | None:
    """The e-mail sent at once for tonight's new high-severity alerts (None: there are none, or
    all are in ``already_sent``, mailed by an earlier run of the night).

    It goes to the risk team and the on-call list; the rest of the alerts wait for the nightly
    report.
    """
    report = HealthReport.read(health)
    urgent = [
        alert
        for alert in report.alerts
        if alert.new and alert.severity == "high" and alert.key not in (already_sent or set())
    ]
    if not urgent:
        return None
    judged = "no model" if report.version is None else f"v{report.version} ({report.slot})"
    subject = (
        f"[ijules] ALERT: {len(urgent)} high-severity alert(s) on {judged}, data to "
        f"{report.data_end}: " + ", ".join(alert.kind for alert in urgent)
    )
    body = (
        f"<html><body><h2>{html.escape(subject)}</h2>"
        + _alert_table(urgent)
        + _actions_paragraph(report)
        + "<p>The nightly report follows with the health score and every alert.</p>"
        "</body></html>"
    )
    recipients = tuple(dict.fromkeys((*config.notify.risk_team, *config.notify.on_call)))
    return Email(
        to=recipients, sender=config.notify.sender, subject=subject, html=body, attachments=()
    )


def _health_section(report: HealthReport | None) -> str:
    if report is None:
        return "<h3>Model health</h3><p>No health report tonight.</p>"
    judged = (
        "no model is registered"
        if report.version is None
        else f"v{html.escape(report.version)} ({html.escape(str(report.slot))})"
    )
    score = "not measured" if report.score is None else f"<b>{report.score:.2f}</b>"
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>"
        f"{'n/a' if part.score is None else f'{part.score:.2f}'}</td>"
        f"<td>{html.escape(part.detail)}</td></tr>"
        for name, part in report.components.items()
    )
    cleared = (
        f"<p>Cleared since last night: {html.escape(', '.join(report.cleared))}.</p>"
        if report.cleared
        else ""
    )
    alerts = _alert_table(report.alerts) if report.alerts else "<p>No alert is active tonight.</p>"
    return (
        f"<h3>Health of {judged}: {score}</h3>"
        f"<p>Data to {html.escape(str(report.data_end))}; a score in [0, 1], the weighted mean of "
        "the measured components.</p>"
        "<table border='1' cellpadding='4'><tr><th>component</th><th>score</th><th>measured"
        f"</th></tr>{rows}</table><h3>Alerts</h3>{alerts}{cleared}" + _actions_paragraph(report)
    )


def _alert_table(alerts: list[HealthAlert]) -> str:
    rows = "".join(
        f"<tr><td>{alert.severity}</td><td>{'new' if alert.new else 'ongoing'}</td>"
        f"<td>{html.escape(alert.key)}</td><td>{html.escape(alert.message)}</td>"
        f"<td>{html.escape(alert.recommended_action)}</td></tr>"
        for alert in alerts
    )
    return (
        "<table border='1' cellpadding='4'><tr><th>severity</th><th></th><th>condition</th>"
        f"<th>what</th><th>recommended action</th></tr>{rows}</table>"
    )


def _actions_paragraph(report: HealthReport) -> str:
    started = [
        what
        for what, on in (
            ("an early weekly retraining (ijules_weekly)", report.actions.retrain),
            ("the champion's rollback (ijules_rollback)", report.actions.rollback),
        )
        if on
    ]
    if not started:
        return "<p>Tonight's health starts nothing.</p>"
    return f"<p>Tonight's health starts {html.escape(' and '.join(started))}.</p>"


def _charts_section(pictures: list[Path]) -> str:
    if not pictures:
        return ""
    images = "".join(
        f"<img src='cid:{html.escape(path.name)}' alt='{html.escape(path.stem)}'> "
        for path in pictures
    )
    return f"<h3>The last nights</h3><p>{images}</p>"


def _drift_section(drift: DriftSummary) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{entry.score:.3f}</td>"
        f"<td>{html.escape(str(entry.method))}</td>"
        f"<td>{'yes' if entry.drifted else 'no'}</td></tr>"
        for name, entry in drift.per_feature.items()
    )
    current, reference = drift.current, drift.reference
    return (
        "<h3>Feature drift</h3>"
        f"<p>Newest {current.bars} bars ({current.start} to {current.end}) against "
        f"{html.escape(drift.reference_source)} ({reference.start} to {reference.end}). "
        "Dataset drift is flagged at "
        f"{drift.threshold:.0%} of features.</p>"
        "<table border='1' cellpadding='4'><tr><th>feature</th><th>score</th><th>test</th>"
        f"<th>drifted</th></tr>{rows}</table>"
    )


def _validation_section(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    summary = ValidationResult.read(path).summary
    warnings = "".join(
        f"<li>{html.escape(w.rule)}: {w.unexpected_count} row(s)</li>" for w in summary.warnings
    )
    state = "passed" if summary.success else "FAILED"
    return (
        f"<h3>Data quality</h3><p>Great Expectations {state} on {summary.rows} bars "
        f"({summary.successful_expectations} of {summary.evaluated_expectations} "
        "expectations met).</p>" + (f"<p>Warnings:</p><ul>{warnings}</ul>" if warnings else "")
    )


def _model_section(metrics: Path | None, registration: Path | None) -> str:
    parts = []
    if metrics is not None and metrics.is_file():
        evaluation = MetricsReport.read(metrics)
        window = evaluation.window
        shown = (
            ("agent", evaluation.agent),
            ("passive buy-and-hold", evaluation.baselines.passive_buy_and_hold),
            (
                f"best rule ({evaluation.best_rule})",
                evaluation.baselines.by_name()[evaluation.best_rule],
            ),
        )
        rows = "".join(
            f"<tr><td>{name}</td><td>{m.total_return:.2%}</td>"
            f"<td>{m.sharpe:.2f}</td><td>{m.max_drawdown:.2%}</td>"
            f"<td>{m.daily_turnover:.2f}</td><td>{m.num_trades}</td>"
            f"<td>{m.cost_bps:.1f}</td></tr>"
            for name, m in shown
        )
        parts.append(
            f"<h3>Model health</h3><p>Latest out-of-sample test window {window.start} to "
            f"{window.end}, after costs ({window.costs}):</p>"
            "<table border='1' cellpadding='4'><tr><th></th><th>return</th><th>Sharpe</th>"
            f"<th>max drawdown</th><th>daily turnover</th><th>trades</th>"
            f"<th>cost per fill (bps)</th></tr>{rows}</table>"
        )
    if registration is not None and registration.is_file():
        entry = Registration.read(registration)
        reasons = html.escape("; ".join(entry.reasons))
        parts.append(
            f"<p>Registry: {html.escape(entry.model_name)} v{entry.version} is "
            f"<b>{html.escape(entry.status)}</b> ({reasons}).</p>"
        )
    return "".join(parts)


def _paper_section(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    night = PaperReport.read(path)
    champion = 1.0 - night.challenger_allocation
    intro = (
        f"<h3>Paper trading</h3><p>Bars published up to {html.escape(str(night.data_end))}. "
        f"Paper book {night.capital_usd:,.0f} USD: the champion trades {champion:.0%}, the "
        f"challenger {night.challenger_allocation:.0%}; while no version is champion, the latest "
        "trades in shadow on the champion's share as notional capital (unapproved, nothing "
        "allocated). P&amp;L in USD after costs; cumulative since the version started in its "
        "slot.</p>"
    )
    if not night.models:
        return intro + f"<p>{html.escape(night.note or 'Nothing traded.')}</p>"
    rows = "".join(_paper_row(book) for book in night.models)
    return (
        intro + "<table border='1' cellpadding='4'><tr><th>version</th><th>alias</th>"
        "<th>bars tonight</th><th>P&amp;L tonight</th><th>P&amp;L cumulative</th>"
        "<th>drawdown</th><th>breaker events</th><th>tonight</th></tr>"
        f"{rows}</table>"
    )


def _paper_row(book: PaperModelNight) -> str:
    role = book.alias if book.alias is not None else "shadow (unapproved)"
    if book.alias is not None and not book.approved:
        role += " (not approved)"
    events = "<br>".join(html.escape(event) for event in book.breaker_events) or "none"
    notes: list[str] = [book.outcome]
    if book.started:
        notes.append(f"started fresh at {book.first_bar or book.standing_at}")
    if book.retired is not None:
        notes.append(f"replaced v{book.retired}")
    if book.error:
        notes.append(book.error)
    return (
        f"<tr><td>v{html.escape(book.version)}</td><td>{html.escape(role)}</td>"
        f"<td>{book.bars}</td><td>{book.pnl_usd:+,.2f}</td>"
        f"<td>{book.pnl_cumulative_usd:+,.2f}</td><td>{book.drawdown:.2%}</td>"
        f"<td>{events}</td><td>{html.escape('; '.join(notes))}</td></tr>"
    )
