"""The model health judges, and the evidence it was registered with.

The judged model is the champion; while there is none, the version trading in shadow. Its
evidence comes from its own training run, as recorded when it was reviewed: the card facts (its
training window, its walk-forward folds) and its test-window evaluation curve (positions, equity
and regime at each bar). A version registered before one of these was logged has no such
evidence: what needs it is reported as not measured, never filled in from today's files.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ijules.artifacts import ModelCardFacts
from ijules.config import Config
from ijules.monitoring.drift import ReferenceWindow
from ijules.paper.served import EVALUATION_ARTIFACTS, Assignment, assignments
from ijules.registry.card import logged_facts
from ijules.tracking import configure

CURVE_COLUMNS = ("timestamp", "agent", "agent_position", "regime")


@dataclass(frozen=True)
class Judged:
    """The judged model: its place in the paper book and its recorded evidence."""

    assignment: Assignment
    facts: ModelCardFacts | None
    curve: pd.DataFrame | None  # its test-window evaluation (CURVE_COLUMNS), None: not logged


def judged_assignment(config: Config) -> Assignment | None:
    """The champion's assignment; with no champion, the shadow's; None while none is registered."""
    by_slot = {assignment.slot: assignment for assignment in assignments(config)}
    return by_slot.get("champion") or by_slot.get("shadow")


def judged_model(config: Config) -> Judged | None:
    """The judged model and its evidence, from the registry (None while none is registered)."""
    assignment = judged_assignment(config)
    if assignment is None:
        return None
    from mlflow import MlflowClient

    configure(config.registry.experiment)
    client = MlflowClient()
    return Judged(assignment, logged_facts(client, assignment.run_id), _curve(assignment.run_id))


def drift_reference(config: Config) -> ReferenceWindow | None:
    """The judged model's training window, the drift report's reference (None: no model, or its
    training window was not recorded)."""
    judged = judged_model(config)
    if judged is None or judged.facts is None or "train" not in judged.facts.data.windows:
        return None
    window = judged.facts.data.windows["train"]
    role = judged.assignment.alias or "shadow"
    return ReferenceWindow(
        start=window.start, end=window.end, whose=f"v{judged.assignment.version} ({role})"
    )


def _curve(run_id: str) -> pd.DataFrame | None:
    """The test-window curve logged with the run's evaluation (``evaluation/*.csv``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="ijules-health-") as scratch:
        try:
            folder = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=EVALUATION_ARTIFACTS, dst_path=scratch
                )
            )
        except (MlflowException, OSError):
            return None
        for path in sorted(folder.glob("*.csv")):
            frame = pd.read_csv(path)
            if set(CURVE_COLUMNS) <= set(frame.columns):
                return frame.loc[:, list(CURVE_COLUMNS)]
    return None
