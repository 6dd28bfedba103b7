"""The trial ledger: every configuration tried, kept in the repository.

A deflated Sharpe ratio deflates by the number of configurations tried and by the spread of
their results. Both must come from a record a fresh clone has, not from one machine's MLflow
store, so they live in ``paths.trials`` (JSON Lines, committed to git and tracked by DVC as a
persistent output of the walk-forward summary, the one stage that writes it).

Each line is a configuration (its policy digest), where it was tried (``walk_forward``,
``tune`` or ``research``) and its per-fold per-bar Sharpe ratios. The ledger only grows: a line
once written is never rewritten, and a configuration already there is not added twice (a rerun
adds nothing). The trial count is the number of distinct digests; the variance that sets the
luck benchmark is over single folds (a DSR is applied to one fold's Sharpe) of the trials on
this data (walk-forward and tuning; the research study's folds are other instruments', which
count as trials but do not set the spread here).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ValidationError

from ijules.artifacts import Record
from ijules.errors import ArtifactError
from ijules.io import write_text

Source = Literal["walk_forward", "tune", "research"]
SPREAD_SOURCES: tuple[Source, ...] = ("walk_forward", "tune")  # trials on this data


class TrialRecord(Record):
    """One configuration tried: its digest, where, and its per-fold per-bar Sharpe ratios."""

    params_md5: str
    source: Source
    fold_sharpes_per_bar: list[float]


def read_ledger(path: Path) -> list[TrialRecord]:
    """The ledger's records, in order; none when there is no file. A line that is not a record
    raises :class:`ArtifactError` naming the file and the line."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(TrialRecord.model_validate_json(line))
        except ValidationError as error:
            first = error.errors()[0]
            raise ArtifactError(
                f"{path}, line {number}: not a trial record ({first['msg']}); the ledger is "
                f"append-only: restore it from git (git checkout -- {path})"
            ) from None
    return records


def record(path: Path, candidates: Iterable[TrialRecord]) -> list[TrialRecord]:
    """Append the candidates whose digest the ledger lacks (atomically: the file is rewritten
    whole, with the old lines unchanged as its prefix); return the whole ledger."""
    ledger = read_ledger(path)
    known = {entry.params_md5 for entry in ledger}
    added = []
    for candidate in candidates:
        if candidate.params_md5 and candidate.params_md5 not in known:
            known.add(candidate.params_md5)
            added.append(candidate)
    if added:
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        lines = [json.dumps(entry.model_dump(mode="json"), allow_nan=False) for entry in added]
        write_text(path, old + "\n".join(lines) + "\n")
    return ledger + added


def count(ledger: Sequence[TrialRecord]) -> tuple[int, float | None]:
    """The configurations tried, and the variance of single folds' per-bar Sharpe ratios of the
    trials on this data (None with fewer than two folds measured)."""
    folds = [
        value
        for entry in ledger
        if entry.source in SPREAD_SOURCES
        for value in entry.fold_sharpes_per_bar
        if np.isfinite(value)
    ]
    variance = float(np.var(folds, ddof=1)) if len(folds) >= 2 else None
    return len({entry.params_md5 for entry in ledger}), variance
