"""A short, plain-text account of the last run, read back from the artifacts it left."""

from __future__ import annotations

import mailbox
from email.message import Message
from pathlib import Path
from typing import Any

from ijules.config import Config
from ijules.io import read_json

_ROWS = (
    ("total return", "total_return", "{:+.2%}"),
    ("Sharpe (annualised)", "sharpe", "{:+.2f}"),
    ("P(Sharpe > 0) (PSR)", "sharpe_psr", "{:.2f}"),
    ("max drawdown", "max_drawdown", "{:.2%}"),
    ("daily turnover", "daily_turnover", "{:.2f}x"),
    ("win rate", "win_rate", "{:.1%}"),
    ("trades", "num_trades", "{:d}"),
    ("costs paid (USD)", "total_cost", "{:,.0f}"),
)


def render_summary(config: Config) -> str:
    """Describe rows, out-of-sample metrics, the registry decision, drift and the e-mail."""
    paths = config.paths
    lines = ["IntradayJules: last run", ""]
    lines += _data_lines(Path(paths.ingest_report), Path(paths.validation))
    lines += _metric_lines(Path(paths.metrics))
    lines += _registry_lines(Path(paths.registration))
    lines += _drift_lines(Path(paths.drift_metrics), Path(paths.drift_html))
    lines += _mail_lines(Path(paths.mailbox))
    return "\n".join(lines)


def _load(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.is_file() else None


def _data_lines(ingest: Path, validation: Path) -> list[str]:
    report, result = _load(ingest), _load(validation)
    if report is None:
        return ["data:     no ingest report yet"]
    line = f"data:     {report['rows_written']:,} rows ingested from {report['source']}"
    if result is not None:
        summary = result["summary"]
        state = "validated" if summary["success"] else "FAILED validation"
        line += (
            f"; {summary['rows']:,} {state} ({summary['successful_expectations']} of "
            f"{summary['evaluated_expectations']} expectations met, "
            f"{len(summary['warnings'])} warning(s))"
        )
    return [line]


def _metric_lines(path: Path) -> list[str]:
    metrics = _load(path)
    if metrics is None:
        return ["metrics:  no evaluation yet"]
    window = metrics["window"]
    lines = [
        "",
        f"out of sample: test window {window['start']} to {window['end']} ({window['bars']:,} "
        f"bars, after costs: {window['costs']})",
        f"  {'':22}{'agent':>12}{'buy & hold':>12}{'flat':>12}",
    ]
    for label, key, fmt in _ROWS:
        cells = "".join(
            f"{fmt.format(metrics[who][key]):>12}" for who in ("agent", "buy_and_hold", "flat")
        )
        lines.append(f"  {label:22}{cells}")
    return [*lines, ""]


def _registry_lines(path: Path) -> list[str]:
    entry = _load(path)
    if entry is None:
        return ["model:    not registered yet"]
    alias = f"alias @{entry['alias']}" if entry["alias"] else "no alias"
    reasons = "; ".join(entry["reasons"])
    name = f"{entry['model_name']} v{entry['version']}"
    return [f"model:    {name}: {entry['status']}, {alias} ({reasons})"]


def _drift_lines(path: Path, report: Path) -> list[str]:
    drift = _load(path)
    if drift is None:
        return ["drift:    no drift report yet"]
    flag = "dataset drift" if drift["dataset_drift"] else "no dataset drift"
    return [
        f"drift:    {drift['drifted_features']} of {drift['features']} features drifted "
        f"(share {drift['drift_share']:.2f}, {flag}); report {report}"
    ]


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
