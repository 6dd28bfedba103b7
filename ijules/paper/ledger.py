"""A paper book's ledger: one JSON line per bar traded, and one when a version starts or leaves.

The ledger is append-only. Its rows are committed by the book's state
(:class:`ijules.paper.book.BookState`'s ``ledger_rows``), written after them: a night writes its
rows, then the state that counts them. A night that stopped between the two left rows no state
counts; the next run drops them and writes them again (the same bars, the same rows), so no bar
is ever recorded twice. A ledger holding fewer rows than its state counts lost some, and is
refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ijules.artifacts import CostComponent, PaperSlot, Record
from ijules.errors import IjulesError
from ijules.io import write_text

log = logging.getLogger(__name__)

EntryKind = Literal["start", "bar", "retire"]


class LedgerError(IjulesError):
    """A ledger does not hold the rows its book's state counts."""


class LedgerEntry(Record):
    """One row of a paper book's ledger. Money in USD, after costs.

    ``bar``: the decision at bar ``time`` (its close), filled at the next bar's open (or this
    close, per ``environment.fill_at``), marked at ``marked_at``'s close: the policy's action
    (its target before the risk engine and the limits, as a fraction of a unit position) and the
    units traded per
    instrument and their fill prices, the costs by component, the P&L over the bar, the equity,
    the units held and their weights after it, the drawdown from the book's peak, the risk
    engine's trading state, its change of state (``event``) and its refusals, if any.
    ``start``: the version begins under the slot at ``time`` with ``equity_usd`` (flat).
    ``retire``: the version left the slot; its book is closed at its last mark (``time``),
    paying ``cost_usd`` to exit, and ``equity_usd`` is what it ended with.
    """

    kind: EntryKind
    time: str
    slot: PaperSlot
    version: str
    alias: str | None
    approved: bool
    equity_usd: float
    units_held: tuple[float, ...]
    marked_at: str | None = None
    action: tuple[float, ...] | None = None
    units: tuple[float, ...] | None = None
    fill_price: tuple[float, ...] | None = None
    costs_usd: dict[CostComponent, float] | None = None
    cost_usd: float | None = None
    pnl_usd: float | None = None
    weights: tuple[float, ...] | None = None
    drawdown: float | None = None
    trading_state: str | None = None
    event: str | None = None
    refusals: tuple[str, ...] = ()
    note: str | None = None


def read_ledger(path: Path) -> list[LedgerEntry]:
    """Every row of the ledger at ``path`` (none when there is no file)."""
    return [_parse(path, number, line) for number, line in enumerate(_lines(path), start=1)]


def commit(path: Path, committed: int, rows: list[LedgerEntry]) -> int:
    """Append ``rows`` after the first ``committed`` rows, atomically; return the new count.

    Rows past ``committed`` were written by a night that did not commit its state: they are
    dropped (and written again by this one). Fewer than ``committed`` rows is an error.
    """
    lines = _lines(path)
    if len(lines) < committed:
        raise LedgerError(
            f"{path} holds {len(lines)} rows but its book's state counts {committed}: "
            "rows of an append-only ledger were removed"
        )
    if len(lines) > committed:
        log.warning(
            "%s: dropping %d row(s) after row %d that no state committed (a run stopped "
            "before writing its state); this night writes them again",
            path,
            len(lines) - committed,
            committed,
        )
    kept = lines[:committed]
    if rows or len(lines) != committed:
        added = [row.model_dump_json() for row in rows]
        write_text(path, "".join(f"{line}\n" for line in [*kept, *added]))
    return committed + len(rows)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parse(path: Path, number: int, line: str) -> LedgerEntry:
    try:
        return LedgerEntry.model_validate_json(line)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the row"
        raise LedgerError(
            f"{path} row {number} is not a ledger row ({where}: {problem['msg']})"
        ) from None
