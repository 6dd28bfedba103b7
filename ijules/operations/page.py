"""The operations timeline's files: ``timeline.json`` and ``timeline.html``.

The page is what a risk team reads to see the cadence at work: the paper P&L of every book, the
drift share and the health score day by day, with the retrainings, promotions and rollbacks
marked, and a row per day with everything the day ran and decided.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ijules.io import write_text
from ijules.operations.timeline import (
    PROMOTIONS,
    ROLLBACK,
    SUCCESS,
    WEEKLY,
    BookDay,
    DeskCommand,
    RegistryEvent,
    ReplayRun,
    Timeline,
    TimelineDay,
)

TIMELINE_JSON = "timeline.json"
TIMELINE_HTML = "timeline.html"
NOT_MEASURED = "not measured"
# How the plots mark a day: colour, line style, what happened.
_Mark = tuple[str, Literal["-", "--"], str]
_RETRAINING: _Mark = ("tab:blue", "--", "retraining")
_PROMOTION: _Mark = ("tab:green", "-", "promotion")
_ROLLBACK: _Mark = ("tab:red", "-", "rollback")

_STYLE = (
    "body{font-family:sans-serif;max-width:1400px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:0.6em 0 1.4em;font-size:0.85em}"
    "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}"
    "th{background:#f2f2f2}td.num{text-align:right;white-space:nowrap}"
    "tr.weekly td:first-child{border-left:4px solid #1f77b4}"
    ".failed{color:#b00020;font-weight:bold}.note{color:#666}"
    ".rollback{color:#b00020}.promote{color:#2a7d2a}.summary{background:#f6f8fa;padding:0.8em}"
)


def write_timeline(timeline: Timeline, folder: Path) -> None:
    """Write the timeline's JSON and its page into ``folder``, each atomically."""
    timeline.write(folder / TIMELINE_JSON)
    write_text(folder / TIMELINE_HTML, render(timeline))


@dataclass
class _Series:
    """One paper book over the days it traded: a version's run in a slot, from its start."""

    label: str
    days: list[int] = field(default_factory=list)
    pnl_usd: list[float] = field(default_factory=list)


def book_series(days: list[TimelineDay]) -> list[_Series]:
    """Each book's cumulative P&L by day index; a version that starts again in a slot (after a
    rollback, say) is a new book, as its ledger says."""
    series: list[_Series] = []
    current: dict[tuple[str, str], _Series] = {}
    for index, day in enumerate(days):
        for book in day.books or []:
            key = (book.slot, book.version)
            if book.started or key not in current:
                current[key] = _Series(f"{book.slot} v{book.version} (from {day.day})")
                series.append(current[key])
            current[key].days.append(index)
            current[key].pnl_usd.append(book.pnl_cumulative_usd)
            if book.outcome == "retired":
                del current[key]
    return series


def retrain_days(days: list[TimelineDay]) -> list[int]:
    """The days a weekly run (scheduled, triggered or asked for) ran."""
    return [i for i, day in enumerate(days) if day.runs_of(WEEKLY)]


def event_days(days: list[TimelineDay], *actions: str) -> list[int]:
    """The days the audit trail recorded one of ``actions``."""
    return [i for i, day in enumerate(days) if any(e.action in actions for e in day.events)]


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=85)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(timeline: Timeline) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    days = timeline.days
    labels = [day.day[5:] for day in days]
    figure, axes = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    pnl, drift, health = axes
    for series in book_series(days):
        pnl.plot(series.days, series.pnl_usd, marker="o", markersize=3, label=series.label)
    pnl.set_title("Paper P&L of each book since it started (USD, after costs)")
    pnl.axhline(0, color="grey", linewidth=0.6)
    if pnl.get_legend_handles_labels()[0]:
        pnl.legend(fontsize=7, loc="best")
    _measured_line(drift, [day.drift_share for day in days], "drift share")
    drift.set_title("Share of features drifted (Evidently, newest bars against the reference)")
    drift.set_ylim(-0.02, 1.02)
    _measured_line(health, [_score(day) for day in days], "health score")
    health.set_title("Health score of the judged model (0 to 1)")
    health.set_ylim(-0.02, 1.02)
    marked: dict[_Mark, list[int]] = {
        _RETRAINING: retrain_days(days),
        _PROMOTION: event_days(days, *PROMOTIONS),
        _ROLLBACK: event_days(days, "rollback"),
    }
    for axis in axes:
        # Side by side within the day, so that a retraining and its promotion both show.
        offsets = (-0.12, 0.0, 0.12)
        for offset, ((colour, style, _), indices) in zip(offsets, marked.items(), strict=True):
            for index in indices:
                axis.axvline(index + offset, color=colour, linestyle=style, linewidth=1.0)
        axis.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=colour, linestyle=style, label=label)
        for colour, style, label in marked
    ]
    health.legend(handles=handles, fontsize=7, loc="lower right")
    health.set_xticks(range(len(days)), labels, rotation=60, fontsize=7)
    figure.tight_layout()
    return _png(figure)


def _measured_line(axis: Any, values: list[float | None], label: str) -> None:
    measured = [(i, v) for i, v in enumerate(values) if v is not None]
    if measured:
        axis.plot(*zip(*measured, strict=True), marker="o", markersize=3, label=label)
    else:
        axis.text(0.5, 0.5, NOT_MEASURED, transform=axis.transAxes, ha="center", color="grey")


def _score(day: TimelineDay) -> float | None:
    return None if day.health is None else day.health.score


def _money(value: float) -> str:
    return f"{value:+,.2f}"


def _run_cell(run: ReplayRun, day: str) -> str:
    failed = [task for task, state in run.tasks.items() if state == "failed"]
    state = (
        html.escape(run.state)
        if run.state == SUCCESS
        else f"<span class='failed'>{html.escape(run.state)}</span>"
        + (f" at {html.escape(', '.join(failed))}" if failed else "")
    )
    how = {"schedule": "scheduled", "triggered": "triggered", "desk": "by the desk"}[run.trigger]
    reason = f": {html.escape(run.reason)}" if run.reason else ""
    # The hour on the day's own date; a triggered run may carry another date, or none.
    when = (
        "no logical date"
        if run.logical_date is None
        else run.logical_date[11:16]
        if run.logical_date.startswith(day)
        else run.logical_date
    )
    error = f" <span class='failed'>({html.escape(run.error)})</span>" if run.error else ""
    return (
        f"{html.escape(run.dag_id.removeprefix('ijules_'))} {when} ({how}{reason}) {state}{error}"
    )


def _desk_cell(command: DeskCommand) -> str:
    when = command.at[11:16]
    if command.command is None:
        return f"desk {when}: <span class='note'>{html.escape(command.said)}</span>"
    state = (
        "" if command.exit_code == 0 else f" <span class='failed'>exit {command.exit_code}</span>"
    )
    return (
        f"desk {when}: <code>{html.escape(command.command)}</code> "
        f"({html.escape(command.reason)}){state}: {html.escape(command.said)}"
    )


def _book_cell(book: BookDay) -> str:
    name = f"{html.escape(book.slot)} v{html.escape(book.version)}"
    if book.outcome == "retired":
        return (
            f"{name} retired, its positions closed (exit cost {book.exit_cost_usd:,.2f}; "
            f"{_money(book.pnl_cumulative_usd)} in all)"
        )
    flags = " started" if book.started else ""
    error = f" <span class='failed'>{html.escape(book.error)}</span>" if book.error else ""
    breakers = (
        f"; breakers: {html.escape(', '.join(book.breaker_events))}" if book.breaker_events else ""
    )
    return (
        f"{name}{flags}: {book.bars} bars, {_money(book.pnl_usd)} tonight, "
        f"{_money(book.pnl_cumulative_usd)} since start, drawdown {book.drawdown:.2%}"
        f"{breakers}{error}"
    )


def _event_cell(event: RegistryEvent) -> str:
    kind = (
        "rollback"
        if event.action == "rollback"
        else "promote"
        if event.action in PROMOTIONS
        else ""
    )
    alias = (
        f" &rarr; {html.escape(event.alias)}" if event.alias and event.action != "register" else ""
    )
    return (
        f"<span class='{kind}'>#{event.seq} {html.escape(event.action)} "
        f"v{html.escape(event.version)}{alias}</span> by {html.escape(event.actor)}: "
        f"{html.escape(event.reason)}"
    )


def _health_cell(day: TimelineDay) -> str:
    if day.health is None:
        return f"<span class='note'>{NOT_MEASURED}</span>"
    report = day.health
    score = "n/a" if report.score is None else f"{report.score:.2f}"
    alerts = "; ".join(
        f"{'NEW ' if alert.new else ''}{html.escape(alert.severity)}: {html.escape(alert.message)}"
        for alert in report.alerts
    )
    wanted = {"retrain": report.actions.retrain, "rollback": report.actions.rollback}
    actions = [name for name, on in wanted.items() if on]
    return (
        f"{score}"
        + (f"<br>alerts: {alerts}" if alerts else "")
        + (f"<br>starts: {', '.join(actions)}" if actions else "")
    )


def _day_row(day: TimelineDay) -> str:
    drift = (
        f"<span class='note'>{NOT_MEASURED}</span>"
        if day.drift_share is None
        else f"{day.drift_share:.0%} ({day.drifted_features} of {day.features})"
    )
    books = (
        f"<span class='note'>{NOT_MEASURED}</span>"
        if day.books is None
        else "<br>".join(_book_cell(book) for book in day.books) or "no book"
    )
    cells = [
        html.escape(day.day),
        "<br>".join([*(_run_cell(run, day.day) for run in day.runs), *map(_desk_cell, day.desk)])
        or "no runs",
        html.escape(f"v{day.champion}" if day.champion else "none"),
        html.escape(f"v{day.challenger}" if day.challenger else "none"),
        books,
        drift,
        _health_cell(day),
        "<br>".join(_event_cell(event) for event in day.events),
        "<br>".join(f"<span class='note'>{html.escape(note)}</span>" for note in day.notes),
    ]
    weekly = " class='weekly'" if day.runs_of(WEEKLY) else ""
    return f"<tr{weekly}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _summary(timeline: Timeline) -> str:
    days = timeline.days
    runs = [run for day in days for run in day.runs]
    weekly = [run for run in runs if run.dag_id == WEEKLY]
    rollbacks = [run for run in runs if run.dag_id == ROLLBACK]
    failed = [run for run in runs if run.state != SUCCESS]
    commands = [command for day in days for command in day.desk]
    events = [event for day in days for event in day.events]
    promotions = [e for e in events if e.action in PROMOTIONS]
    rolled = [e for e in events if e.action == "rollback"]
    by_trigger = ", ".join(
        f"{sum(1 for run in weekly if run.trigger == kind)} {label}"
        for kind, label in (("schedule", "scheduled"), ("triggered", "triggered"),
                            ("desk", "by the desk"))
    )  # fmt: skip
    status = "complete" if timeline.complete else "in progress"
    return (
        f"<p class='summary'>{len(days)} day(s) replayed ({status}), "
        f"{html.escape(timeline.first_day)} to {html.escape(timeline.last_day)}, "
        f"{len(runs)} DAG runs in {timeline.seconds / 60:.1f} min: {len(weekly)} retraining(s) "
        f"({by_trigger}), {len(promotions)} promotion(s), {len(rolled)} rollback(s) "
        f"({len(rollbacks)} rollback run(s)), {len(failed)} failed run(s), "
        f"{len(commands)} desk command(s). "
        f"At the end: champion {_version(days[-1].champion) if days else 'none'}, challenger "
        f"{_version(days[-1].challenger) if days else 'none'}.</p>"
    )


def _version(version: str | None) -> str:
    return "none" if version is None else f"v{html.escape(version)}"


def render(timeline: Timeline) -> str:
    """The page."""
    parts = [
        "<html><head><meta charset='utf-8'><title>IntradayJules operations timeline</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Operations timeline: {html.escape(timeline.model_name)}</h1>",
        f"<p>The real DAGs replayed a logical date at a time over "
        f"<code>{html.escape(timeline.sample)}</code>'s history, its bars stamped "
        f"{timeline.shift_weeks} weeks later and delivered one day at a time: the nightly every "
        "day, the weekly on its day, and every run those started, each as of its own date. "
        f"Approvals were answered by <code>{html.escape(timeline.approver)}</code> over the "
        "HITL REST API. P&amp;L is the paper books' (after costs); figures a day did not "
        f"produce read &laquo;{NOT_MEASURED}&raquo;.</p>",
        _summary(timeline),
    ]
    if timeline.days:
        parts += [
            f"<img src='data:image/png;base64,{_plots(timeline)}' alt='paper P&amp;L, drift "
            "and health by day'>",
        ]
    parts += [
        "<h2>Day by day</h2>",
        "<table><tr>"
        + "".join(
            f"<th>{name}</th>"
            for name in (
                "day",
                "runs (UTC)",
                "champion",
                "challenger",
                "paper books",
                "drift",
                "health",
                "registry events",
                "notes",
            )
        )
        + "</tr>"
        + "".join(_day_row(day) for day in timeline.days)
        + "</table>",
        "</body></html>",
    ]
    return "".join(parts)
