"""The health stage's history: a line per night, alerts fire once, a rerun changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ijules.artifacts import DriftSpan, DriftSummary, HealthDay, HealthReport, PaperReport
from ijules.health.night import run_health


def night(folder: Path, data_end: str, *, drifted: bool) -> dict[str, Path]:
    """Tonight's drift summary and paper night (nothing registered, so no book)."""
    DriftSummary(
        drift_share=0.75 if drifted else 0.0, drifted_features=3 if drifted else 0, features=4,
        dataset_drift=drifted, threshold=0.5, per_feature={},
        reference=DriftSpan(start="2017-07-01", end="2017-09-01", bars=1500),
        current=DriftSpan(start="2017-10-01", end=data_end, bars=360),
    ).write(folder / "drift.json")  # fmt: skip
    PaperReport(
        model_name="ijules-policy", data_end=data_end, capital_usd=100_000.0,
        challenger_allocation=0.1, models=[], note="nothing registered",
    ).write(folder / "paper.json")  # fmt: skip
    return {"drift_metrics": folder / "drift.json", "paper_report": folder / "paper.json"}


def health(config, folder: Path, data_end: str, *, drifted: bool) -> HealthReport:
    return run_health(
        config,
        features=folder / "absent.parquet",  # not read: no model, no live record
        meta=folder / "absent.json",
        ledgers=folder / "ledgers",
        state=folder / "state",
        report=folder / "health" / "night.json",
        history=folder / "health" / "history.jsonl",
        charts=folder / "health" / "charts",
        **night(folder, data_end, drifted=drifted),
    )


def days(folder: Path) -> list[HealthDay]:
    text = (folder / "health" / "history.jsonl").read_text()
    return [HealthDay.model_validate_json(line) for line in text.splitlines()]


def test_drift_alerts_once_until_it_clears_and_a_rerun_gives_the_same(
    make_config, mlflow_store, tmp_path
) -> None:
    config = make_config()
    key = "data_drift:-:v-"
    monday = health(config, tmp_path, "2017-10-16T00:00:00+00:00", drifted=True)
    assert [(a.key, a.new) for a in monday.alerts] == [(key, True)]
    # No model: the drift is reported, and the weekly schedule trains the first one.
    assert not monday.actions.retrain and not monday.actions.rollback
    assert monday.alerts[0].recommended_action.startswith("none early: no model is registered")
    assert monday.score is None and monday.version is None  # no model to score
    assert monday.drift_share == 0.75

    tuesday = health(config, tmp_path, "2017-10-17T00:00:00+00:00", drifted=True)
    assert [(a.key, a.new) for a in tuesday.alerts] == [(key, False)]
    assert not tuesday.actions.retrain

    rerun = health(config, tmp_path, "2017-10-17T00:00:00+00:00", drifted=True)
    assert rerun == tuesday
    assert [day.data_end[:10] for day in days(tmp_path)] == ["2017-10-16", "2017-10-17"]

    wednesday = health(config, tmp_path, "2017-10-18T00:00:00+00:00", drifted=False)
    assert wednesday.alerts == [] and wednesday.cleared == [key]
    thursday = health(config, tmp_path, "2017-10-19T00:00:00+00:00", drifted=True)
    assert [(a.key, a.new) for a in thursday.alerts] == [(key, True)]
    assert [day.alerts for day in days(tmp_path)] == [[key], [key], [], [key]]
    for chart in ("health.png", "drift.png", "pnl.png"):
        assert (tmp_path / "health" / "charts" / chart).read_bytes().startswith(b"\x89PNG")


def test_a_backfilled_night_is_judged_against_the_night_before_it(
    make_config, mlflow_store, tmp_path
) -> None:
    config = make_config()
    health(config, tmp_path, "2017-10-16T00:00:00+00:00", drifted=True)
    health(config, tmp_path, "2017-10-18T00:00:00+00:00", drifted=True)
    between = health(config, tmp_path, "2017-10-17T00:00:00+00:00", drifted=True)
    assert [a.new for a in between.alerts] == [False]
    assert [day.data_end[:10] for day in days(tmp_path)] == [
        "2017-10-16", "2017-10-17", "2017-10-18",
    ]  # fmt: skip


def test_a_line_that_is_not_a_night_stops_the_stage_naming_it(
    make_config, mlflow_store, tmp_path
) -> None:
    config = make_config()
    health(config, tmp_path, "2017-10-16T00:00:00+00:00", drifted=False)
    history = tmp_path / "health" / "history.jsonl"
    history.write_text(history.read_text() + "{not json}\n")
    with pytest.raises(Exception, match=r"history.jsonl, line 2: not a health day"):
        health(config, tmp_path, "2017-10-17T00:00:00+00:00", drifted=False)


def test_drift_starts_a_retraining_only_when_a_model_has_a_window_to_drift_from(
    make_config, tmp_path
) -> None:
    from ijules.health import components
    from ijules.health.alerts import FIRST_TRAINING, RETRAIN, actions, fire
    from ijules.health.night import _conditions
    from ijules.health.reference import Judged
    from ijules.paper.served import Assignment

    config = make_config()
    drift = DriftSummary.read(night(tmp_path, "2017-10-16", drifted=True)["drift_metrics"])
    parts = {"data_drift": components.data_drift(drift)}
    champion = Judged(
        assignment=Assignment(
            slot="champion", version="3", alias="champion", status="passed", approved=True,
            allocation=0.9, capital_usd=90_000.0, weights_sha256=None, run_id="r3",
        ),
        facts=None,
        curve=None,
    )  # fmt: skip
    for judged, action, retrain in ((champion, RETRAIN, True), (None, FIRST_TRAINING, False)):
        found = _conditions(config, judged, drift, None, None, False, False, [], parts)
        assert [(c.kind, c.recommended_action) for c in found] == [("data_drift", action)]
        assert actions(fire(found, set())).retrain is retrain
