"""The replay's plan: its days, its desk, and an overlay that params.yaml accepts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from ijules.config import load_config
from ijules.errors import ConfigError
from ijules.operations.plan import load_plan
from tests.conftest import REPO, write_params

PLAN = REPO / "scripts" / "replay.yaml"


def test_the_committed_plan_replays_three_weeks_from_a_saturday_with_its_desk_inside() -> None:
    plan = load_plan(PLAN).replay
    days = plan.days()
    assert len(days) == 21
    assert days[0].strftime("%A") == "Saturday"  # the weekly trains on day one
    assert sum(day.strftime("%A") == "Saturday" for day in days) == 3
    assert all(days[0] <= desk.day <= days[-1] for desk in plan.desk)
    assert {desk.action for desk in plan.desk} == {"promote_challenger", "rollback"}
    # The shift keeps weekdays: the sample's first bar (a Saturday) lands on a Saturday.
    assert (date(2017, 7, 1) + plan.shift).strftime("%A") == "Saturday"


def test_the_committed_overlay_is_a_valid_params_yaml_with_a_landing_folder(
    tmp_path: Path,
) -> None:
    overlay = load_plan(PLAN).params
    config = load_config(write_params(tmp_path, dict(overlay)))
    assert (config.data.layout, str(config.data.source)) == ("deliveries", "data/landing")


def test_from_and_to_replace_the_plans_span_and_leave_out_the_desk_outside_it() -> None:
    plan = load_plan(PLAN, first_day=date(2026, 4, 25), last_day=date(2026, 5, 1)).replay
    assert (plan.days()[0], plan.days()[-1], len(plan.days())) == (
        date(2026, 4, 25),
        date(2026, 5, 1),
        7,
    )
    assert [desk.day for desk in plan.desk] == [date(2026, 4, 28), date(2026, 4, 30)]
    later = load_plan(PLAN, first_day=date(2026, 5, 2), last_day=date(2026, 5, 30)).replay
    assert (len(later.days()), later.desk) == (29, ())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"last_day": "2026-04-01"}, "is before first_day"),
        ({"desk": [{"day": "2026-06-01", "action": "rollback", "reason": "why"}]}, "outside"),
        ({"desk": [{"day": "2026-04-20", "action": "retire", "reason": "why"}]}, "desk.0.action"),
        ({"approvers": "someone"}, "replay.approvers: Extra inputs are not permitted"),
    ],
)
def test_a_plan_that_cannot_be_replayed_is_refused_naming_the_key(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    raw = yaml.safe_load(PLAN.read_text())
    raw["replay"].update(change)
    path = tmp_path / "replay.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_plan(path)
