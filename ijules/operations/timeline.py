"""The operations timeline: what each replayed day ran and left, as the risk team reads it.

After each replayed day, :func:`snapshot_day` reads what the day's runs left in the project (the
registry's aliases, the paper night, the drift summary, the health report, the audit trail's new
lines) into a :class:`TimelineDay`; the replay driver adds the DAG runs it executed. Nothing here
recomputes a figure: each comes from the file or registry its stage wrote, and a figure the day
did not produce (its task failed or does not exist yet) is absent, never carried over from the
day before.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal, TypeVar

from ijules.artifacts import (
    Artifact,
    DriftSummary,
    HealthReport,
    PaperOutcome,
    PaperReport,
    PaperSlot,
    Record,
)
from ijules.config import Config
from ijules.paper.ledger import LedgerEntry, read_ledger
from ijules.registry.audit import Action, verify
from ijules.registry.register import CHALLENGER, CHAMPION, alias_version
from ijules.tracking import configure

NIGHTLY, WEEKLY, ROLLBACK = "ijules_nightly", "ijules_weekly", "ijules_rollback"
SUCCESS = "success"
# The registry events that move an alias: a person's approval gives the version the alias its
# review proposed; a promotion (forced or not) moves the one it names; a rollback, the champion.
PROMOTIONS: tuple[Action, ...] = ("approve", "promote", "force_promote")

# How a run came about: the DAG's schedule, another run's trigger task (the nightly's health
# starting an early retraining or a rollback), or a person at the Airflow UI (the plan's desk).
RunTrigger = Literal["schedule", "triggered", "desk"]
A = TypeVar("A", bound=Artifact)


class ReplayRun(Record):
    """One DAG run the replay executed, and how it ended."""

    dag_id: str
    run_id: str
    logical_date: str | None  # None: triggered without one (no data interval: the whole history)
    trigger: RunTrigger
    triggered_by: str | None  # the run whose task created it (trigger "triggered")
    queued_as: str | None = None  # the run id its trigger gave it (dag.test starts it afresh)
    reason: str | None  # the reason it was given (its conf), if any
    state: str
    seconds: float
    tasks: dict[str, str]  # every task's final state
    error: str | None = None  # Airflow's own error, when it failed to finish the run


class DeskCommand(Record):
    """A command a person ran from a shell on the day (the plan's desk), and what it said."""

    at: str  # the instant, UTC
    command: str | None  # None: there was nothing to run it on (``said`` says why)
    reason: str
    exit_code: int | None
    said: str  # its last line of output


class BookDay(Record):
    """One paper book on one night, from the night's report (``reports/paper/night.json``).

    ``pnl_usd`` is tonight's P&L after costs of the bars traded; ``exit_cost_usd`` what closing
    the book of a version retired tonight cost (its ledger's retire row), else 0.
    """

    slot: PaperSlot
    version: str
    alias: str | None
    approved: bool
    outcome: PaperOutcome
    started: bool
    retired: str | None  # the version this one replaced in the slot tonight
    bars: int
    fills: int
    pnl_usd: float
    costs_usd: float
    pnl_cumulative_usd: float
    equity_usd: float
    drawdown: float
    breaker_events: list[str]
    exit_cost_usd: float
    error: str | None


class RegistryEvent(Record):
    """One line of the audit trail: a registration, an answer, a promotion, a rollback."""

    seq: int
    time: str
    actor: str
    action: Action
    version: str
    alias: str | None
    reason: str


class TimelineDay(Record):
    """One replayed day: its runs, the aliases at its end, the night's books, drift, health and
    the registry events of its runs. ``None`` means the day did not measure it; ``notes`` say why.
    """

    day: str
    as_of: str | None  # the nightly run's data-interval end
    data_end: str | None  # the last published bar the night traded to
    runs: list[ReplayRun]
    desk: list[DeskCommand]
    champion: str | None  # the versions the aliases name at the end of the day
    challenger: str | None
    books: list[BookDay] | None
    drift_share: float | None
    drifted_features: int | None
    features: int | None
    health: HealthReport | None
    events: list[RegistryEvent]
    audit_head: int  # the audit trail's last line at the end of the day
    notes: list[str]

    def runs_of(self, dag_id: str) -> list[ReplayRun]:
        """The day's runs of ``dag_id``, in the order they ran."""
        return [run for run in self.runs if run.dag_id == dag_id]

    def events_of(self, *actions: Action) -> list[RegistryEvent]:
        """The day's registry events of the given kinds."""
        return [event for event in self.events if event.action in actions]


class Timeline(Artifact):
    """A replay's operations timeline (``reports/operations/timeline.json``), a day per entry."""

    written_by = "make replay"

    model_name: str
    sample: str
    shift_weeks: int
    first_day: str
    last_day: str
    approver: str
    days: list[TimelineDay]
    seconds: float  # the replay's wall time so far
    complete: bool  # every planned day replayed


def snapshot_day(
    config: Config,
    project: Path,
    day: date,
    runs: list[ReplayRun],
    desk: list[DeskCommand],
    audit_seen: int,
) -> TimelineDay:
    """Read what ``day``'s ``runs`` and ``desk`` commands left in ``project``; ``audit_seen``:
    the audit trail's last line at the end of the day before (its later lines are this day's)."""
    notes: list[str] = []
    nightly = next((run for run in runs if run.dag_id == NIGHTLY), None)
    if nightly is None:
        notes.append("no nightly run")
    elif nightly.state != SUCCESS:
        failed = [task for task, state in nightly.tasks.items() if state == "failed"]
        notes.append(f"nightly {nightly.state} (failed: {', '.join(failed) or 'none'})")
    paper = _if_ran(nightly, "paper", PaperReport, project / config.paths.paper_report, notes)
    drift = _if_ran(nightly, "drift", DriftSummary, project / config.paths.drift_metrics, notes)
    health = _if_ran(nightly, "health", HealthReport, project / config.paths.health_report, notes)
    champion, challenger = aliases(config)
    entries = verify(project / config.paths.audit)
    events = [
        RegistryEvent(
            seq=entry.seq,
            time=entry.time,
            actor=entry.actor,
            action=entry.action,
            version=entry.version,
            alias=entry.alias,
            reason=entry.reason,
        )
        for entry in entries
        if entry.seq > audit_seen
    ]
    return TimelineDay(
        day=day.isoformat(),
        as_of=None if nightly is None else nightly.logical_date,
        data_end=None if paper is None else paper.data_end,
        runs=runs,
        desk=desk,
        champion=champion,
        challenger=challenger,
        books=None if paper is None else _books(paper, project / config.paths.paper_ledgers),
        drift_share=None if drift is None else drift.drift_share,
        drifted_features=None if drift is None else drift.drifted_features,
        features=None if drift is None else drift.features,
        health=health,
        events=events,
        audit_head=entries[-1].seq if entries else 0,
        notes=notes,
    )


def aliases(config: Config) -> tuple[str | None, str | None]:
    """The versions ``champion`` and ``challenger`` name in the registry now."""
    from mlflow import MlflowClient

    configure(config.registry.experiment)
    client = MlflowClient()
    found = [
        alias_version(client, config.registry.model_name, alias) for alias in (CHAMPION, CHALLENGER)
    ]
    champion, challenger = (None if version is None else str(version.version) for version in found)
    return champion, challenger


def _if_ran(
    nightly: ReplayRun | None, task: str, kind: type[A], path: Path, notes: list[str]
) -> A | None:
    """The artifact ``task`` wrote tonight: only when the nightly has the task and it succeeded
    (a file left by an earlier night is not tonight's)."""
    if nightly is None:
        return None
    state = nightly.tasks.get(task)
    if state is None:
        notes.append(f"{task}: not measured (the nightly DAG has no {task} task)")
        return None
    if state != SUCCESS:
        notes.append(f"{task}: not measured ({task} task {state})")
        return None
    return kind.read(path)


def _books(paper: PaperReport, ledgers: Path) -> list[BookDay]:
    books = []
    for night in paper.models:
        exit_cost = 0.0
        if night.outcome == "retired":  # the slot emptied: this is the retired book itself
            exit_cost = _closed(ledgers / f"{night.slot}.jsonl", night.version)[1].cost_usd or 0.0
        books.append(
            BookDay(
                slot=night.slot,
                version=night.version,
                alias=night.alias,
                approved=night.approved,
                outcome=night.outcome,
                started=night.started,
                retired=night.retired if night.outcome != "retired" else None,
                bars=night.bars,
                fills=night.fills,
                pnl_usd=night.pnl_usd,
                costs_usd=night.costs_usd,
                pnl_cumulative_usd=night.pnl_cumulative_usd,
                equity_usd=night.equity_usd,
                drawdown=night.drawdown,
                breaker_events=night.breaker_events,
                exit_cost_usd=exit_cost,
                error=night.error,
            )
        )
        if night.retired is not None and night.outcome != "retired":
            books.append(_retired_book(night.slot, night.retired, ledgers / f"{night.slot}.jsonl"))
    return books


def _closed(ledger: Path, version: str) -> tuple[LedgerEntry, LedgerEntry]:
    """The rows that opened and last closed ``version``'s book in ``ledger``."""
    rows = read_ledger(ledger)
    end = max(i for i, row in enumerate(rows) if row.kind == "retire" and row.version == version)
    start = max(
        i for i, row in enumerate(rows[:end]) if row.kind == "start" and row.version == version
    )
    return rows[start], rows[end]


def _retired_book(slot: PaperSlot, version: str, ledger: Path) -> BookDay:
    """The book of ``version``, closed tonight in ``slot`` when another version took it."""
    start, retire = _closed(ledger, version)
    exit_cost = retire.cost_usd or 0.0
    return BookDay(
        slot=slot,
        version=version,
        alias=retire.alias,
        approved=retire.approved,
        outcome="retired",
        started=False,
        retired=None,
        bars=0,
        fills=0,
        pnl_usd=0.0,
        costs_usd=exit_cost,
        pnl_cumulative_usd=retire.equity_usd - start.equity_usd,
        equity_usd=retire.equity_usd,
        drawdown=0.0,
        breaker_events=[],
        exit_cost_usd=exit_cost,
        error=None,
    )
