"""A short, plain-text account of the last run, read back from the artifacts it left."""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from email.message import Message
from pathlib import Path

from ijules.artifacts import (
    BacktestMetrics,
    DriftSummary,
    HealthReport,
    IngestReport,
    MetricsReport,
    PaperReport,
    Registration,
    SeedSpread,
    StressReport,
    TuningReport,
    ValidationResult,
    WalkForwardSummary,
)
from ijules.config import Config

_ROWS: tuple[tuple[str, Callable[[BacktestMetrics], float], str], ...] = (
    ("total return", lambda m: m.total_return, "{:+.2%}"),
    ("Sharpe (annualised)", lambda m: m.sharpe, "{:+.2f}"),
    ("P(Sharpe > 0) (PSR)", lambda m: m.sharpe_psr, "{:.2f}"),
    ("max drawdown", lambda m: m.max_drawdown, "{:.2%}"),
    ("daily turnover", lambda m: m.daily_turnover, "{:.2f}x"),
    ("win rate", lambda m: m.win_rate, "{:.1%}"),
    ("trades", lambda m: m.num_trades, "{:d}"),
    ("costs paid (USD)", lambda m: m.total_cost, "{:,.0f}"),
    ("cost per fill (bps)", lambda m: m.cost_bps, "{:.1f}"),
)


def render_summary(config: Config) -> str:
    """Describe rows, out-of-sample metrics, the registry decision, drift, paper trading,
    health and the e-mail."""
    paths = config.paths
    lines = ["IntradayJules: last run", ""]
    lines += _data_lines(Path(paths.ingest_report), Path(paths.validation))
    lines += _metric_lines(Path(paths.metrics))
    lines += _seed_lines(Path(paths.seeds))
    lines += _tuning_lines(Path(paths.tuning))
    lines += _walk_forward_lines(Path(paths.walk_forward))
    lines += _stress_lines(Path(paths.stress))
    lines += _report_lines(Path(paths.performance_report), Path(paths.performance_html))
    lines += _registry_lines(Path(paths.registration), Path(paths.cards))
    lines += _drift_lines(Path(paths.drift_metrics), Path(paths.drift_html))
    lines += _paper_lines(Path(paths.paper_report))
    lines += _health_lines(Path(paths.health_report))
    lines += _mail_lines(Path(paths.mailbox))
    return "\n".join(lines)


def _data_lines(ingest: Path, validation: Path) -> list[str]:
    report, result = (
        IngestReport.read_if_present(ingest),
        ValidationResult.read_if_present(validation),
    )
    if report is None:
        return ["data:     no ingest report yet"]
    line = f"data:     {report.rows_written:,} rows ingested from {report.source}"
    if report.as_of is not None:
        line += f" as of {report.as_of}"
    if result is not None:
        summary = result.summary
        state = "validated" if summary.success else "FAILED validation"
        line += (
            f"; {summary.rows:,} {state} ({summary.successful_expectations} of "
            f"{summary.evaluated_expectations} expectations met, "
            f"{len(summary.warnings)} warning(s))"
        )
    return [line]


def _metric_lines(path: Path) -> list[str]:
    metrics = MetricsReport.read_if_present(path)
    if metrics is None:
        return ["metrics:  no evaluation yet"]
    window = metrics.window
    backtests = metrics.backtests()
    lines = [
        "",
        f"out of sample: test window {window.start} to {window.end} ({window.bars:,} "
        f"bars, after costs: {window.costs})",
        f"  {'':22}" + "".join(f"{_SHORT.get(who, who):>14}" for who in backtests),
    ]
    for label, value, fmt in _ROWS:
        cells = "".join(f"{fmt.format(value(entry)):>14}" for entry in backtests.values())
        lines.append(f"  {label:22}{cells}")
    fill = ", ".join(f"{k} {v:.0f} bps" for k, v in window.full_capital_fill_bps.items())
    lines += [
        f"  best rule: {metrics.best_rule}; passive B&H = one entry fill, no risk engine",
        f"  one fill of the whole capital would cost: {fill}",
    ]
    return [*lines, ""]


_SHORT = {"passive_buy_and_hold": "passive B&H", "risk_managed_long": "risk-mgd long"}


def _seed_lines(path: Path) -> list[str]:
    spread = SeedSpread.read_if_present(path)
    if spread is None:
        return ["seeds:    not run yet", ""]
    sharpes = ", ".join(f"{run.sharpe:+.2f}" for run in spread.runs)
    std = f" (sd {spread.std_sharpe:.2f})" if spread.std_sharpe is not None else ""
    return [
        f"agent over {len(spread.runs)} training seeds (the first registered): test Sharpe "
        f"{sharpes}",
        f"  mean {spread.mean_sharpe:+.2f}{std}; {spread.confidence:.0%} lower bound "
        f"{spread.sharpe_lower_bound:+.2f}; the gate reads {spread.sharpe:+.2f} and the worst "
        f"seed's drawdown {spread.max_drawdown:.2%}",
        "",
    ]


def _tuning_lines(path: Path) -> list[str]:
    report = TuningReport.read_if_present(path)
    if report is None:
        return ["tuning:   not run yet", ""]
    best = (
        "no trial completed"
        if report.best_value is None
        else f"best trial {report.best_number}: mean fold Sharpe {report.best_value:+.2f}"
    )
    line = (
        f"tuning:   {report.trials} trials ({report.complete} complete, {report.pruned} pruned) "
        f"on {report.folds} walk-forward folds x {report.seeds} seed(s); {best}"
    )
    params = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in report.best_params.items()
    )
    return [line, *([f"  {params}"] if params else []), ""]


def _walk_forward_lines(path: Path) -> list[str]:
    summary = WalkForwardSummary.read_if_present(path)
    if summary is None:
        return ["walk-forward: not run yet"]
    lines = [
        f"walk-forward ({summary.scheme}): {summary.folds_passed} of {summary.folds} "
        f"folds passed (required {summary.required_pass_rate:.0%}); trials {summary.trials}",
        f"  {'fold':>4} {'test window':>24} {'Sharpe':>8} {'passive':>8} {'rule':>8} "
        f"{'maxDD':>7} {'pass DD':>7} {'turn':>6} {'PSR':>5} {'DSR':>5}",
    ]
    for row in summary.table:
        lines.append(
            f"  {row.fold:>4} {row.test_first[:10] + '..' + row.test_last[:10]:>24} "
            f"{row.agent_sharpe:>8.2f} {row.passive_sharpe:>8.2f} {row.best_rule_sharpe:>8.2f} "
            f"{row.agent_max_drawdown:>7.2%} {row.passive_max_drawdown:>7.2%} "
            f"{row.agent_daily_turnover:>6.2f} {row.psr:>5.2f} {row.dsr:>5.2f}"
        )
    return [*lines, ""]


def _stress_lines(path: Path) -> list[str]:
    stress = StressReport.read_if_present(path)
    if stress is None:
        return ["stress:   not run yet"]
    cells = ", ".join(
        f"{s.scenario} {'ok' if s.survived else 'FAILED ' + '/'.join(s.checks.unmet)} "
        f"(DD {s.max_drawdown:.1%})"
        for s in stress.scenarios
    )
    return [f"stress:   survived {stress.survived} of {stress.scenarios_run}: {cells}"]


def _report_lines(path: Path, page: Path) -> list[str]:
    if not path.is_file():
        return ["report:   not written yet"]
    import yaml

    report = yaml.safe_load(path.read_text())["baseline_performance"]
    flags = report["red_flags"]
    lines = [f"report:   {page} ({len(flags)} red flag(s))"]
    lines += [f"          - {flag}" for flag in flags]
    return lines


def _registry_lines(path: Path, cards: Path) -> list[str]:
    entry = Registration.read_if_present(path)
    if entry is None:
        return ["model:    not registered yet"]
    alias = f"alias @{entry.alias}" if entry.alias else "no alias"
    reasons = "; ".join(entry.reasons)
    name = f"{entry.model_name} v{entry.version}"
    lines = [f"model:    {name}: {entry.status}, {alias} ({reasons})"]
    if entry.gate is not None:
        failed = sum(not check.passed for check in entry.gate.checks)
        lines.append(
            f"          review: {len(entry.gate.checks)} checks, {failed} failed "
            f"({path.with_suffix('.md')})"
        )
    card = cards / f"{entry.model_name}-v{entry.version}.html"
    if card.is_file():
        lines.append(f"          model card: {card} (and .md)")
    return lines


def _drift_lines(path: Path, report: Path) -> list[str]:
    drift = DriftSummary.read_if_present(path)
    if drift is None:
        return ["drift:    no drift report yet"]
    flag = "dataset drift" if drift.dataset_drift else "no dataset drift"
    return [
        f"drift:    {drift.drifted_features} of {drift.features} features drifted "
        f"(share {drift.drift_share:.2f}, {flag}); report {report}"
    ]


def _paper_lines(path: Path) -> list[str]:
    night = PaperReport.read_if_present(path)
    if night is None:
        return []
    if not night.models:
        return [f"paper:    {night.note}"]
    lines: list[str] = []
    for book in night.models:
        role = book.alias or "shadow, unapproved"
        lines.append(
            f"{'paper:' if not lines else '':10}{book.slot} v{book.version} ({role}): "
            f"{book.outcome}, {book.bars} bar(s) to {night.data_end}; P&L "
            f"{book.pnl_usd:+,.2f} USD tonight, {book.pnl_cumulative_usd:+,.2f} since it "
            f"started; drawdown {book.drawdown:.2%}"
        )
    return lines


def _health_lines(path: Path) -> list[str]:
    report = HealthReport.read_if_present(path)
    if report is None:
        return []
    judged = "no model" if report.version is None else f"v{report.version} ({report.slot})"
    score = "not measured" if report.score is None else f"{report.score:.2f}"
    fresh = sum(alert.new for alert in report.alerts)
    started = [
        what
        for what, on in (("retrain_early", report.actions.retrain),
                         ("rollback_champion", report.actions.rollback))
        if on
    ]  # fmt: skip
    lines = [
        f"health:   {judged}: {score}; {len(report.alerts)} alert(s), {fresh} new; started "
        f"{', '.join(started) or 'nothing'}"
    ]
    lines += [
        f"{'':10}{'NEW ' if alert.new else ''}{alert.severity}: {alert.key}: "
        f"{alert.recommended_action}"
        for alert in report.alerts
    ]
    return lines


def _mail_lines(folder: Path) -> list[str]:
    newest = _newest_message(folder)
    if newest is None:
        return [f"e-mail:   none in {folder}"]
    path, message = newest
    attachments = [part.get_filename() for part in message.walk() if part.get_filename()]
    return [
        f"e-mail:   {path}",
        f"          to {message['To']}: {message['Subject']}",
        f"          attached: {', '.join(a for a in attachments if a)}",
    ]


def _newest_message(folder: Path) -> tuple[Path, Message] | None:
    if not (folder / "new").is_dir():
        return None
    files = [p for sub in ("new", "cur") for p in (folder / sub).glob("*") if p.is_file()]
    if not files:
        return None
    newest = max(files, key=lambda p: p.stat().st_mtime)
    with newest.open("rb") as handle:
        message = mailbox.MaildirMessage(handle.read())
    return newest, message
