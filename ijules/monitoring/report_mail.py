"""The nightly e-mail to the risk team: drift headline, data and model health, reports attached.

This module only composes the message; the Airflow task sends it through Airflow's SMTP
connection, so delivery, retries and credentials stay with the orchestrator.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from ijules.artifacts import DriftSummary, MetricsReport, Registration, ValidationResult
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
    interval: str | None = None,
) -> Email:
    """Compose the drift and health e-mail from the reports on disk.

    ``drift_metrics`` and ``drift_html`` must exist; the health sections for validation, the
    latest evaluation and the registry are included when their files exist.
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
    sections = [
        f"<h2>{html.escape(subject)}</h2>",
        _drift_section(drift),
        _validation_section(validation),
        _model_section(metrics, registration),
        "<p>Attached: the Evidently drift report (HTML) and its summary (JSON).</p>",
    ]
    body = "<html><body>" + "\n".join(s for s in sections if s) + "</body></html>"
    return Email(
        to=config.notify.risk_team,
        sender=config.notify.sender,
        subject=subject,
        html=body,
        attachments=(drift_html, drift_metrics),
    )


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
        f"<p>Newest {current.bars} bars ({current.start} to {current.end}) against the "
        f"train window ({reference.start} to {reference.end}). Dataset drift is flagged at "
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
