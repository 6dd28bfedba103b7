"""The nightly paper-trading stage: every book trades the bars published since its last night.

For each slot (champion, challenger, shadow: :mod:`ijules.paper.served`) the registry names a
version; its served weights are verified, then its book trades the new bars
(:func:`ijules.paper.book.trade_night`), its ledger gets the rows, a run per book and night goes
to MLflow (experiment ``<registry.experiment>-paper``, tagged with the version and alias), and
its state is written last: the state is the commit. A version new under its slot starts a fresh
book (flat, new LSTM state) where the desk's last night ended (the latest bar any book stood at),
or at its test window's last bar if that is later: it trades the bars that arrive from then on,
never bars the desk has already traded past. The version it replaced is retired at its own last
mark, its positions closed there; both are ledger rows.

Nothing here reads the clock: the night's bars follow from the published bars, the books' states
and the registry. A rerun after a night that succeeded trades nothing and writes nothing new;
after one that stopped half-way, it writes what that one would have (see
:mod:`ijules.paper.ledger`). A model whose served weights fail their checksum is refused: its
book and ledger stay as they were, the others trade, and the command fails naming it once the
night's report is written.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ijules.artifacts import (
    PAPER_SLOTS,
    FeatureSet,
    PaperModelNight,
    PaperOutcome,
    PaperReport,
    PaperSlot,
)
from ijules.config import Config
from ijules.env.market_data import MarketData, from_feature_table
from ijules.env.market_data import bars_per_day as measured_bars_per_day
from ijules.errors import IjulesError, IngestError
from ijules.paper.book import BookState, Night, PaperError, anchor_at, iso, trade_night
from ijules.paper.ledger import LedgerEntry, commit
from ijules.paper.served import Assignment, assignments, served_policy, tested_window
from ijules.tracking import configure

log = logging.getLogger(__name__)

EXPERIMENT_SUFFIX = "-paper"
NIGHT_TAG = "ijules.paper.rows"  # slot, version and ledger rows a run logged: one run each


@dataclass(frozen=True)
class BookNight:
    """One book's night: the report's entry, and what the ledger and MLflow get."""

    entry: PaperModelNight
    rows: list[LedgerEntry]
    first_row: int  # the ledger row the night's first row is


def published_bars(features: Path, meta: FeatureSet, config: Config) -> MarketData:
    """Every published bar (the features stage's table), with its market state."""
    if not features.is_file():
        raise IngestError(f"features not found: {features} (run `ijules features` first)")
    return from_feature_table(pd.read_parquet(features), meta, config)


def run_paper(
    config: Config, *, features: Path, meta: Path, ledgers: Path, state: Path, report: Path
) -> PaperReport:
    """Trade tonight's bars in every paper book; write the ledgers, the states and the report.

    Raises :class:`PaperError` after writing the report when a model was refused (its served
    weights failed their checksum, or its book could not continue on the published bars).
    """
    history = published_bars(features, FeatureSet.read(meta), config)
    tonight = {assignment.slot: assignment for assignment in assignments(config)}
    for folder in (ledgers, state):
        folder.mkdir(parents=True, exist_ok=True)  # DVC's outputs, even before a book opens
    nights: list[PaperModelNight] = []
    refused: list[str] = []
    reached = _last_night(state)
    for slot in PAPER_SLOTS:
        path = state / f"{slot}.json"
        before = BookState.read_if_present(path)
        assignment = tonight.get(slot)
        if assignment is None and (before is None or before.version is None):
            continue  # an empty slot that held nothing
        ledger = ledgers / f"{slot}.jsonl"
        try:
            night = _book_night(config, history, slot, before, assignment, ledger, path, reached)
        except IjulesError as error:  # this model cannot trade tonight; the others can
            log.error("paper %s: %s", slot, error)
            refused.append(f"{slot}: {error}")
            nights.append(_refused(slot, before, assignment, str(error), ledger))
            continue
        nights.append(night.entry)
    note = None
    if not nights:
        note = f"no version of {config.registry.model_name} is registered: nothing trades"
    result = PaperReport(
        model_name=config.registry.model_name,
        data_end=iso(history.timestamps[-1]),
        capital_usd=config.paper.capital_usd,
        challenger_allocation=config.paper.challenger_allocation,
        models=nights,
        note=note,
    )
    result.write(report)
    if refused:
        raise PaperError("paper trading refused " + "; ".join(refused))
    return result


def _book_night(
    config: Config,
    history: MarketData,
    slot: PaperSlot,
    before: BookState | None,
    assignment: Assignment | None,
    ledger: Path,
    path: Path,
    reached: str | None,
) -> BookNight:
    # The checksum first: a refused model leaves its book, ledger and MLflow untouched.
    policy = served_policy(config, assignment) if assignment is not None else None
    committed = before.ledger_rows if before is not None else 0
    rows: list[LedgerEntry] = []
    retired = None
    held = before if before is not None and before.version is not None else None
    book = held if held is not None and assignment is not None else None
    if book is not None and assignment is not None and assignment.version != book.version:
        book = None
    if held is not None and book is None:
        rows.append(_retire_row(held, assignment))
        retired = held.version
    if assignment is None or policy is None:
        if before is None:
            raise PaperError(f"the {slot} slot holds no version and none to retire")
        emptied = before.model_copy(
            update={"version": None, "alias": None, "account": None, "memory": None}
        )
        entry = _entry(before, "retired", started=False, retired=retired, night=None)
        return _commit(config, emptied, rows, committed, entry, ledger, path)
    started = book is None
    if book is None:
        book = _fresh_book(history, assignment, committed, reached)
        rows.append(_start_row(book))
    else:  # the registry's word on the version now (a forced promotion approved later, ...)
        book = book.model_copy(
            update={"status": assignment.status, "approved": assignment.approved}
        )
    if book.account is not None and book.account.terminated:
        entry = _entry(book, "stopped", started=started, retired=retired, night=None)
        return _commit(config, book, rows, committed, entry, ledger, path)
    night = trade_night(policy, history, book, config)
    rows.extend(night.rows)
    outcome: PaperOutcome = "traded" if night.rows else "no new bars"
    entry = _entry(night.state, outcome, started=started, retired=retired, night=night)
    return _commit(config, night.state, rows, committed, entry, ledger, path)


def _commit(
    config: Config,
    book: BookState,
    rows: list[LedgerEntry],
    committed: int,
    entry: PaperModelNight,
    ledger: Path,
    path: Path,
) -> BookNight:
    """The ledger's rows, then MLflow, then the state (the commit), in that order."""
    count = commit(ledger, committed, rows)
    night = BookNight(entry.model_copy(update={"ledger": str(ledger)}), rows, committed)
    _log_night(config, night)
    book.model_copy(update={"ledger_rows": count}).write(path)
    return night


def _last_night(state: Path) -> str | None:
    """The latest bar any book stood at before tonight: where the desk's last night ended."""
    stood = [
        pd.Timestamp(book.standing_at)
        for slot in PAPER_SLOTS
        if (book := BookState.read_if_present(state / f"{slot}.json")) is not None
        and book.standing_at is not None
    ]
    return None if not stood else max(stood).isoformat()


def _fresh_book(
    history: MarketData, assignment: Assignment, committed: int, reached: str | None
) -> BookState:
    """A new version's book: flat, from the later of the desk's last night and its test
    window's last bar, with the figures it was tested with (bars per year as evaluated; bars
    per day measured on its test window)."""
    window = tested_window(assignment)
    stamps = pd.DatetimeIndex(history.timestamps)
    start, end = (_naive(window.start), _naive(window.end))
    tested = history.timestamps[(stamps >= start) & (stamps <= end)]
    if len(tested) < 2:
        raise PaperError(
            f"v{assignment.version}'s test window {window.start} to {window.end} is not in the "
            "published bars: its environment's bars per day cannot be measured"
        )
    return BookState(
        slot=assignment.slot,
        version=assignment.version,
        alias=assignment.alias,
        status=assignment.status,
        approved=assignment.approved,
        allocation=assignment.allocation,
        capital_usd=assignment.capital_usd,
        weights_sha256=assignment.weights_sha256,
        anchor=anchor_at(history, _later(window.end, reached)),
        bars_per_year=window.bars_per_year,
        bars_per_day=measured_bars_per_day(tested),
        ledger_rows=committed,
    )


def _later(test_end: str, reached: str | None) -> str:
    if reached is None or pd.Timestamp(reached) <= pd.Timestamp(test_end):
        return test_end
    return reached


def _naive(when: str) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _start_row(book: BookState) -> LedgerEntry:
    share = "in shadow (notional capital)" if book.alias is None else f"as {book.alias}"
    return LedgerEntry(
        kind="start",
        time=str(book.anchor),
        slot=book.slot,
        version=str(book.version),
        alias=book.alias,
        approved=book.approved,
        equity_usd=book.capital_usd,
        units_held=(),
        note=f"v{book.version} starts {share}: a fresh book, flat, new LSTM state, from the "
        "desk's last night or its test window's end, whichever is later",
    )


def _retire_row(book: BookState, successor: Assignment | None) -> LedgerEntry:
    why = (
        f"v{successor.version} now holds the {book.slot} slot"
        if successor is not None
        else f"no version holds the {book.slot} slot"
    )
    return LedgerEntry(
        kind="retire",
        time=str(book.standing_at),
        slot=book.slot,
        version=str(book.version),
        alias=book.alias,
        approved=book.approved,
        equity_usd=book.equity_usd - book.exit_cost_usd,
        units_held=book.units,
        cost_usd=book.exit_cost_usd,
        note=f"v{book.version} retired: {why}; its positions closed at its last mark",
    )


def _entry(
    book: BookState,
    outcome: PaperOutcome,
    *,
    started: bool,
    retired: str | None,
    night: Night | None,
) -> PaperModelNight:
    session = night.session if night is not None else None
    bars = 0 if session is None else len(session.traded)
    return PaperModelNight(
        slot=book.slot,
        version=str(book.version),
        alias=book.alias,
        status=book.status,
        approved=book.approved,
        allocation=book.allocation,
        capital_usd=book.capital_usd,
        outcome=outcome,
        started=started,
        retired=retired,
        first_bar=None if session is None else iso(session.timestamps[0]),
        last_bar=None if session is None else iso(session.timestamps[-2]),
        standing_at=book.standing_at,
        bars=bars,
        fills=0 if session is None else int(np.any(session.traded != 0.0, axis=1).sum()),
        pnl_usd=0.0 if session is None else float(session.equity[-1] - session.equity[0]),
        costs_usd=0.0 if session is None else float(session.costs.sum()),
        pnl_cumulative_usd=book.equity_usd - book.capital_usd,
        equity_usd=book.equity_usd,
        drawdown=book.drawdown,
        breaker_events=[] if night is None else night.breaker_events,
        error=None,
        ledger="",
    )


def _refused(
    slot: PaperSlot,
    before: BookState | None,
    assignment: Assignment | None,
    error: str,
    ledger: Path,
) -> PaperModelNight:
    version = assignment.version if assignment is not None else before.version if before else None
    return PaperModelNight(
        slot=slot,
        version=str(version),
        alias=assignment.alias if assignment is not None else None,
        status=assignment.status if assignment is not None else None,
        approved=assignment.approved if assignment is not None else False,
        allocation=assignment.allocation if assignment is not None else 0.0,
        capital_usd=assignment.capital_usd if assignment is not None else 0.0,
        outcome="refused",
        started=False,
        retired=None,
        first_bar=None,
        last_bar=None,
        standing_at=before.standing_at if before is not None else None,
        bars=0,
        fills=0,
        pnl_usd=0.0,
        costs_usd=0.0,
        pnl_cumulative_usd=0.0 if before is None else before.equity_usd - before.capital_usd,
        equity_usd=0.0 if before is None else before.equity_usd,
        drawdown=0.0 if before is None else before.drawdown,
        breaker_events=[],
        error=error,
        ledger=str(ledger),
    )


def _log_night(config: Config, night: BookNight) -> None:
    """A run per version and night in ``<registry.experiment>-paper``: tonight's figures and
    ledger rows. Idempotent: a run for the same ledger rows is not logged twice."""
    if not night.rows:
        return
    import mlflow

    experiment_id = configure(config.registry.experiment + EXPERIMENT_SUFFIX)
    entry = night.entry
    by_version: dict[str, list[tuple[int, LedgerEntry]]] = {}
    for offset, row in enumerate(night.rows):
        by_version.setdefault(row.version, []).append((night.first_row + offset, row))
    for version, numbered in by_version.items():
        first, last = numbered[0][0], numbered[-1][0]
        key = f"{entry.slot}:v{version}:rows {first}-{last}"
        found = mlflow.search_runs(
            [experiment_id], filter_string=f"tags.`{NIGHT_TAG}` = '{key}'", output_format="list"
        )
        if found:
            continue
        rows = [row for _, row in numbered]
        bars = [row for row in rows if row.kind == "bar"]
        alias = rows[0].alias or "shadow"
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"paper-{entry.slot}-v{version}"
        ):
            mlflow.set_tags(
                {
                    NIGHT_TAG: key,
                    "ijules.paper.slot": entry.slot,
                    "ijules.paper.alias": alias,
                    "ijules.version": version,
                    "ijules.paper.approved": str(rows[0].approved).lower(),
                    "ijules.paper.first_bar": rows[0].time,
                    "ijules.paper.last_bar": rows[-1].time,
                    "ijules.model_name": config.registry.model_name,
                }
            )
            mlflow.log_metrics(
                {
                    "bars": float(len(bars)),
                    "fills": float(sum(1 for row in bars if any(row.units or ()))),
                    "pnl_usd": float(sum(row.pnl_usd or 0.0 for row in bars)),
                    "costs_usd": float(sum(row.cost_usd or 0.0 for row in rows)),
                    "equity_usd": rows[-1].equity_usd,
                    "breaker_events": float(sum(1 for row in bars if row.event)),
                }
            )
            if version == entry.version:
                mlflow.log_metrics(
                    {
                        "pnl_cumulative_usd": entry.pnl_cumulative_usd,
                        "drawdown": entry.drawdown,
                    }
                )
            with tempfile.TemporaryDirectory() as scratch:
                file = Path(scratch) / f"{entry.slot}.jsonl"
                file.write_text("".join(f"{row.model_dump_json()}\n" for row in rows))
                mlflow.log_artifact(str(file), artifact_path="ledger")
