"""What a replay runs: which days of which sample, who approves, and what the desk does by hand.

A replay (``scripts/replay.py``, ``make replay``) runs the real DAGs over weeks of a committed
sample's history, one logical date at a time, in a copy of the project. Its plan is the ``replay``
section of ``scripts/replay.yaml``; the file's ``params`` section is laid over the copy's
params.yaml (and checked there, like any params.yaml).

The sample's bars are stamped ``shift_weeks`` later (a whole number of weeks keeps weekdays and
hours), since Airflow runs no task of a manual run dated before a DAG's ``start_date``: the
committed samples predate the DAGs' 2026.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, JsonValue, ValidationError, model_validator

from ijules.errors import ConfigError
from ijules.frozen import Frozen, PositiveInt

# What a person does on a replayed day: trigger a rollback or a retraining from the Airflow UI
# (a run of ijules_rollback or ijules_weekly with the reason as its conf), or promote the
# approved challenger to champion from a shell (`ijules promote`).
DeskAction = Literal["rollback", "retrain", "promote_challenger"]
DESK_DAGS: dict[DeskAction, str] = {"rollback": "ijules_rollback", "retrain": "ijules_weekly"}


class DeskRun(Frozen):
    """A person's decision on ``day`` at ``at`` (UTC), with the reason the audit trail keeps."""

    day: date
    at: time = time(9, 0)
    action: DeskAction
    reason: Annotated[str, Field(min_length=3)]

    @property
    def instant(self) -> datetime:
        """When the person acts, UTC."""
        return datetime.combine(self.day, self.at).replace(tzinfo=UTC)

    @property
    def dag_id(self) -> str | None:
        """The DAG the person triggers (None: a command, not a DAG)."""
        return DESK_DAGS.get(self.action)


class ReplayPlan(Frozen):
    """The days a replay runs and what happens on them besides the DAGs' schedules."""

    sample: str  # a committed bar file in the project, delivered a day at a time
    shift_weeks: PositiveInt
    first_day: date
    last_day: date
    approver: (
        str  # the risk officer: answers the weekly approvals (HITL REST API), acts for the desk
    )
    approval_reason: Annotated[str, Field(min_length=3)]
    desk: tuple[DeskRun, ...] = ()

    @model_validator(mode="after")
    def _ordered(self) -> ReplayPlan:
        if self.last_day < self.first_day:
            raise ValueError(f"last_day {self.last_day} is before first_day {self.first_day}")
        outside = [run for run in self.desk if not self.first_day <= run.day <= self.last_day]
        if outside:
            raise ValueError(f"desk run on {outside[0].day} is outside the replayed days")
        return self

    @property
    def shift(self) -> timedelta:
        """How much later the sample's bars are stamped."""
        return timedelta(weeks=self.shift_weeks)

    def days(self) -> list[date]:
        """Every replayed day, in order."""
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=offset) for offset in range(count)]


class ReplayFile(Frozen):
    """``scripts/replay.yaml``: the plan, and the parameters laid over the copy's params.yaml."""

    replay: ReplayPlan
    params: dict[str, JsonValue]


def load_plan(
    path: Path, *, first_day: date | None = None, last_day: date | None = None
) -> ReplayFile:
    """Parse the replay file at ``path``; ``first_day`` and ``last_day`` replace its span, and
    the desk's decisions outside the new span are left out (the file's own are checked)."""
    raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'replay' and 'params'")
    if first_day is not None or last_day is not None:
        as_written = _parse(path, raw).replay
        first = first_day or as_written.first_day
        last = last_day or as_written.last_day
        plan = dict(raw["replay"])
        plan.update(first_day=first.isoformat(), last_day=last.isoformat())
        plan["desk"] = [
            desk.model_dump(mode="json") for desk in as_written.desk if first <= desk.day <= last
        ]
        raw = {**raw, "replay": plan}
    return _parse(path, raw)


def _parse(path: Path, raw: dict[str, Any]) -> ReplayFile:
    try:
        # JSON mode: YAML's dates become ISO text, which strict models parse as dates.
        return ReplayFile.model_validate_json(json.dumps(raw, default=str))
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the file"
        raise ConfigError(f"{path}: {where}: {problem['msg']}") from None
