"""Three weeks of the lifecycle replayed through the real DAGs (`scripts/replay.py`): the
operations timeline agrees with the registry's audit trail and with the paper books' ledgers.

The replay runs once for the module: `scripts/replay.yaml`'s three weeks and desk (it promotes
the challenger on the second Tuesday and rolls the champion back on the Thursday), on a smaller
budget still: one training seed, one walk-forward fold, one tuning trial, one stress scenario.
Whether a week's version beats the champion is the review's call on the bars, and whether a
night's health starts an early retraining or a rollback is health's: the agreement with the
trail, the registry and the ledgers holds whatever happened, and the exact course of the weeks
is checked when nothing but the schedule and the desk moved the aliases.
"""

from __future__ import annotations

import html
import mailbox
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ijules.operations.page import TIMELINE_HTML, TIMELINE_JSON
from ijules.operations.timeline import (
    NIGHTLY,
    ROLLBACK,
    WEEKLY,
    ReplayRun,
    Timeline,
)
from ijules.paper.ledger import read_ledger
from ijules.registry.audit import AuditEntry, verify
from tests.conftest import REPO

pytestmark = pytest.mark.slow

FIRST, LAST = date(2026, 4, 18), date(2026, 5, 8)  # three weeks from a Saturday
SATURDAYS = [date(2026, 4, 18), date(2026, 4, 25), date(2026, 5, 2)]
PROMOTION_DAY, ROLLBACK_DAY = date(2026, 4, 28), date(2026, 4, 30)  # the plan's desk
SMALL = {
    "seeds": {"count": 1},
    "tuning": {"trials": 1},
    "walk_forward": {"fold_ids": [0]},
    "stress": {"scenarios": ["volatility_x3"]},
}


@dataclass(frozen=True)
class Replayed:
    timeline: Timeline
    project: Path
    output: Path
    folder: Path
    seconds: float


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    folder = tmp_path_factory.mktemp("replay")
    plan = yaml.safe_load((REPO / "scripts" / "replay.yaml").read_text())
    assert (plan["replay"]["first_day"], plan["replay"]["last_day"]) == (
        FIRST.isoformat(),
        LAST.isoformat(),
    )
    for section, values in SMALL.items():
        plan["params"][section] = {**plan["params"].get(section, {}), **values}
    (folder / "replay.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "replay.py"), "--plan",
         str(folder / "replay.yaml"), "--folder", str(folder), "--output",
         str(folder / "operations")],
        env=os.environ.copy(), capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    seconds = time.monotonic() - began
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    print(f"replay of {(LAST - FIRST).days + 1} days took {seconds:.0f} s")
    return Replayed(
        timeline=Timeline.read(folder / "operations" / TIMELINE_JSON),
        project=folder / "project",
        output=folder / "operations",
        folder=folder,
        seconds=seconds,
    )


def instant(day: date, hour: int) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


def trail(replayed: Replayed) -> list[AuditEntry]:
    return verify(replayed.project / "var" / "audit" / "trail.jsonl")


def test_every_day_ran_its_nightly_and_saturdays_their_weekly_as_of_their_own_date(
    replayed: Replayed,
) -> None:
    timeline = replayed.timeline
    assert timeline.complete
    days = [FIRST + timedelta(days=n) for n in range((LAST - FIRST).days + 1)]
    assert [day.day for day in timeline.days] == [day.isoformat() for day in days]
    for day, record in zip(days, timeline.days, strict=True):
        [nightly] = [run for run in record.runs_of(NIGHTLY) if run.trigger == "schedule"]
        assert (nightly.logical_date, nightly.state) == (instant(day, 1), "success"), nightly
        assert record.as_of == instant(day, 1)
        # The night traded up to the last bar delivered that morning: the day before's 23:00.
        assert record.data_end == instant(day - timedelta(days=1), 23)
        scheduled = [run for run in record.runs_of(WEEKLY) if run.trigger == "schedule"]
        if day in SATURDAYS:
            assert [(run.logical_date, run.state) for run in scheduled] == [
                (instant(day, 4), "success")
            ]
        else:
            assert scheduled == []
    # Each nightly mailed the risk team its report.
    subjects = [message["Subject"] for message in mailbox.Maildir(replayed.folder / "mail")]
    assert sum("nightly report" in subject for subject in subjects) == len(days)


def test_every_registry_event_appears_once_on_the_day_of_the_run_that_made_it(
    replayed: Replayed,
) -> None:
    entries = trail(replayed)
    days = replayed.timeline.days
    shown = [(event.seq, event.action, event.version, event.alias, event.actor, event.reason)
             for day in days for event in day.events]  # fmt: skip
    assert shown == [(e.seq, e.action, e.version, e.alias, e.actor, e.reason) for e in entries], (
        "the timeline's events are not the audit trail's, in order, once each"
    )
    assert days[-1].audit_head == entries[-1].seq
    for day in days:
        run_ids = {f"airflow:{run.dag_id}:{run.run_id}" for run in day.runs}
        approved_in = [run for run in day.runs_of(WEEKLY) if run.tasks.get("promote") == "success"]
        promoted_by_desk = [command for command in day.desk if command.exit_code == 0]
        for event in day.events:
            if event.actor.startswith("airflow:"):
                assert event.actor in run_ids, (day.day, event)
            else:  # the approver: answering a weekly run's approval, or at the desk's shell
                assert event.actor == replayed.timeline.approver, event
                assert event.action in ("approve", "promote"), event
                assert approved_in or promoted_by_desk, (day.day, event)


def test_the_alias_history_is_the_audit_trails_day_by_day_and_the_registrys_at_the_end(
    replayed: Replayed,
) -> None:
    entries = trail(replayed)
    aliases: dict[str, str | None] = {"champion": None, "challenger": None}
    pending = iter(entries)
    entry = next(pending, None)
    for day in replayed.timeline.days:
        while entry is not None and entry.seq <= day.audit_head:
            if entry.action in ("approve", "promote", "force_promote", "rollback"):
                # A version made champion (approved or promoted) leaves the challenger alias.
                moved_to_champion = entry.alias == "champion" and entry.action != "rollback"
                if moved_to_champion and aliases["challenger"] == entry.version:
                    aliases["challenger"] = None
                aliases[str(entry.alias)] = entry.version
            entry = next(pending, None)
        assert (day.champion, day.challenger) == (aliases["champion"], aliases["challenger"]), day
    from mlflow import MlflowClient

    store = f"sqlite:///{replayed.project / 'var' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    model = client.get_registered_model("ijules-policy")
    assert {alias: str(v) for alias, v in model.aliases.items()} == {
        alias: version for alias, version in aliases.items() if version is not None
    }


def desk_reason(action: str) -> str:
    plan = yaml.safe_load((REPO / "scripts" / "replay.yaml").read_text())["replay"]
    [reason] = [desk["reason"] for desk in plan["desk"] if desk["action"] == action]
    return str(reason)


def actor(run: ReplayRun) -> str:
    """Who the audit trail names for what ``run``'s tasks did."""
    return f"airflow:{run.dag_id}:{run.run_id}"


def test_each_saturday_a_weekly_registers_a_version_the_approver_gives_its_alias(
    replayed: Replayed,
) -> None:
    days = {date.fromisoformat(day.day): day for day in replayed.timeline.days}
    for number, saturday in enumerate(SATURDAYS):
        weekly = days[saturday].runs_of(WEEKLY)
        assert [run.state for run in weekly if run.trigger == "schedule"] == ["success"]
        # The scheduled run, or an early one health started that night on the same bars (the
        # scheduled run then trains and registers nothing new: DVC has nothing to redo).
        by = {actor(run) for run in weekly}
        [registered] = [e for e in days[saturday].events_of("register") if e.actor in by]
        # The opened review passes it, proposing an alias; the approver gives it that alias.
        assert registered.alias in ("champion", "challenger"), registered
        approved = [
            e for e in days[saturday].events_of("approve") if e.version == registered.version
        ]
        assert [(e.alias, e.actor) for e in approved] == [
            (registered.alias, replayed.timeline.approver)
        ]
        if number == 0:  # nothing was registered before: no champion to beat
            assert (registered.version, registered.alias) == ("1", "champion")


def test_what_the_nightly_starts_runs_that_day_for_its_reason_and_leaves_its_mark(
    replayed: Replayed,
) -> None:
    for day in replayed.timeline.days:
        nightly = {run.run_id for run in day.runs_of(NIGHTLY)}
        for run in (run for run in day.runs if run.trigger == "triggered"):
            assert run.triggered_by in nightly, (day.day, run)
            assert str(run.reason).startswith("health: "), run
            assert str(run.queued_as).startswith("health_"), run
            marks = [e for e in day.events if e.actor == actor(run)]
            if run.dag_id == ROLLBACK and run.state == "success":
                assert [(e.action, e.reason) for e in marks] == [("rollback", run.reason)]
            if run.dag_id == WEEKLY and run.state == "success":
                assert [e.action for e in marks][:1] == ["register"]


def test_the_desk_promotes_the_challenger_and_rolls_the_champion_back(
    replayed: Replayed,
) -> None:
    days = {date.fromisoformat(day.day): day for day in replayed.timeline.days}
    [promotion] = days[PROMOTION_DAY].desk
    by_desk = [
        e for e in days[PROMOTION_DAY].events_of("promote") if e.actor == replayed.timeline.approver
    ]
    if promotion.command is None:
        assert (promotion.said, by_desk) == ("no challenger to promote", [])
    else:
        assert promotion.exit_code == 0, promotion
        [moved] = by_desk
        assert (moved.alias, moved.reason, days[PROMOTION_DAY].champion) == (
            "champion", desk_reason("promote_challenger"), moved.version
        )  # fmt: skip
    [rollback] = [run for run in days[ROLLBACK_DAY].runs_of(ROLLBACK) if run.trigger == "desk"]
    assert rollback.reason == desk_reason("rollback")
    rolled = [e for e in days[ROLLBACK_DAY].events_of("rollback") if e.actor == actor(rollback)]
    if rollback.state == "success":
        [back] = rolled
        assert back.reason == desk_reason("rollback")
    else:  # nothing to roll back to (health had rolled back already): refused, and recorded
        assert (rollback.tasks["rollback"], rolled) == ("failed", [])
    triggered = [run for day in days.values() for run in day.runs if run.trigger == "triggered"]
    if triggered:
        return
    # Only the schedule and the desk moved the aliases: v1 the first week, v2 (week two's,
    # champion by the review or by the desk's promotion) from the Tuesday, v1 again from the
    # rollback on the Thursday; and the champion's paper book follows the night after: v1 again,
    # a fresh book, and v2's closed.
    registered = [(day, e.version) for day, d in days.items() for e in d.events_of("register")]
    assert registered == [(saturday, str(n)) for n, saturday in enumerate(SATURDAYS, start=1)]
    assert rollback.state == "success" and rolled[0].version == "1"
    for day, record in days.items():
        if day < SATURDAYS[1] or ROLLBACK_DAY <= day < SATURDAYS[2]:
            assert record.champion == "1", day
        elif PROMOTION_DAY <= day < ROLLBACK_DAY:
            assert record.champion == "2", day
    after = days[ROLLBACK_DAY + timedelta(days=1)].books or []
    champion_books = {(b.version, b.outcome, b.started) for b in after if b.slot == "champion"}
    assert champion_books == {("1", "traded", True), ("2", "retired", False)}


def test_each_books_pnl_in_the_timeline_sums_to_its_ledgers_bar_pnl(replayed: Replayed) -> None:
    nights: dict[tuple[str, str], list[float]] = defaultdict(list)
    bars: dict[tuple[str, str], int] = defaultdict(int)
    exits: dict[tuple[str, str], float] = defaultdict(float)
    for day in replayed.timeline.days:
        for book in day.books or []:
            nights[(book.slot, book.version)].append(book.pnl_usd)
            bars[(book.slot, book.version)] += book.bars
            exits[(book.slot, book.version)] += book.exit_cost_usd
    ledgers = replayed.project / "data" / "paper" / "ledgers"
    in_ledgers: set[tuple[str, str]] = set()
    for path in sorted(ledgers.glob("*.jsonl")):
        rows = read_ledger(path)
        for key in {(row.slot, row.version) for row in rows}:
            in_ledgers.add(key)
            mine = [row for row in rows if (row.slot, row.version) == key]
            bar_pnl = sum(row.pnl_usd or 0.0 for row in mine if row.kind == "bar")
            assert sum(nights[key]) == pytest.approx(bar_pnl, rel=1e-9, abs=1e-6), key
            assert bars[key] == sum(row.kind == "bar" for row in mine), key
            exit_costs = sum(row.cost_usd or 0.0 for row in mine if row.kind == "retire")
            assert exits[key] == pytest.approx(exit_costs, abs=1e-9), key
    assert set(nights) == in_ledgers
    # Not a sum of zeros: the books traded.
    assert any(abs(pnl) > 0.01 for pnls in nights.values() for pnl in pnls)


def test_the_page_shows_every_day_and_each_days_drift_and_health_are_that_nights(
    replayed: Replayed,
) -> None:
    page = (replayed.output / TIMELINE_HTML).read_text()
    assert page.count("<img src='data:image/png;base64,") == 1
    for day in replayed.timeline.days:
        assert f"<td>{day.day}</td>" in page
    assert html.escape(desk_reason("rollback")) in page
    for day in replayed.timeline.days:
        for event in day.events_of("rollback"):
            assert f"rollback v{event.version} &rarr; champion" in page
        assert day.drift_share is not None, day.day
        [nightly] = [run for run in day.runs_of(NIGHTLY) if run.trigger == "schedule"]
        if "health" in nightly.tasks:  # the night measured health: its report is the day's
            assert day.health is not None and day.health.data_end == day.data_end, day.day
        else:  # a nightly DAG without a health task
            assert day.health is None
            assert "health: not measured (the nightly DAG has no health task)" in day.notes
