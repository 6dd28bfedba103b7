"""The nightly health stage: the trading model's score, its alerts and what they start.

It reads what the night already wrote (the drift summary, the paper night and the ledgers) and
the judged model's evidence from the registry (:mod:`ijules.health.reference`), and writes the
night's report, one line of history per night (a rerun of a night replaces its line, so alerts
and actions come out the same) and the charts the e-mail shows. Nothing reads the clock: the
night is the last published bar.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ijules.artifacts import (
    HEALTH_COMPONENTS,
    DriftSummary,
    FeatureSet,
    HealthComponent,
    HealthComponentName,
    HealthDay,
    HealthReport,
    PaperModelNight,
    PaperReport,
)
from ijules.config import Config
from ijules.errors import ArtifactError
from ijules.evaluation.evaluate import regime_labels
from ijules.health import components
from ijules.health.alerts import (
    FIRST_TRAINING,
    RETRAIN,
    ROLLBACK,
    Condition,
    actions,
    fire,
)
from ijules.health.charts import draw_charts
from ijules.health.components import LiveRecord, ReviewWindow
from ijules.health.reference import Judged, judged_model
from ijules.io import write_text
from ijules.paper.book import BookState
from ijules.paper.ledger import read_ledger
from ijules.paper.night import published_bars

log = logging.getLogger(__name__)


def run_health(
    config: Config,
    *,
    features: Path,
    meta: Path,
    drift_metrics: Path,
    paper_report: Path,
    ledgers: Path,
    state: Path,
    report: Path,
    history: Path,
    charts: Path,
) -> HealthReport:
    """Score tonight's health, fire the alerts, decide the actions; write report, history,
    charts."""
    settings = config.health
    drift = DriftSummary.read_if_present(drift_metrics)
    paper = PaperReport.read_if_present(paper_report)
    judged = judged_model(config)
    book = _judged_book(paper, judged)
    live = _live_record(config, judged, ledgers, state, features, meta)
    test = _test_record(judged)
    folds = _fold_sharpes(judged)
    parts: dict[HealthComponentName, HealthComponent] = {}
    parts["data_drift"] = components.data_drift(drift)
    parts["action_drift"], actions_drifted = components.action_drift(live, test, settings)
    parts["performance"], underperformed = components.performance(live, folds, settings)
    parts["regime"], weak_regimes = components.regime(live, test, settings)
    limit = config.risk_management.limits.max_monthly_drawdown_pct
    parts["risk"] = components.risk(book, limit)
    if judged is None:  # the data can still drift; there is no model to score
        for name in ("action_drift", "performance", "regime", "risk"):
            parts[name] = components.not_measured("no model is registered")
    weights = {name: float(getattr(settings.weights, name)) for name in HEALTH_COMPONENTS}
    total = None if judged is None else components.score(parts, weights)
    slot = None if judged is None else judged.assignment.slot
    version = None if judged is None else judged.assignment.version
    conditions = _conditions(
        config, judged, drift, total, paper, actions_drifted, underperformed, weak_regimes, parts
    )
    data_end = None if paper is None else paper.data_end
    days = _read_history(history)
    earlier = [day for day in days if data_end is None or _at(day.data_end) < _at(data_end)]
    active_before = set(earlier[-1].alerts) if earlier else set()
    alerts = fire(conditions, active_before)
    pnl: dict[str, float] = (
        {} if paper is None else {b.slot: b.pnl_cumulative_usd for b in _trading(paper)}
    )
    result = HealthReport(
        data_end=data_end,
        slot=slot,
        version=version,
        reference="no drift report" if drift is None else drift.reference_source,
        score=total,
        components=parts,
        alerts=alerts,
        cleared=sorted(active_before - {alert.key for alert in alerts}),
        actions=actions(alerts),
        drift_share=None if drift is None else drift.drift_share,
        pnl_usd=pnl,
    )
    if data_end is not None:
        tonight = HealthDay(
            data_end=data_end,
            slot=slot,
            version=version,
            score=total,
            drift_share=result.drift_share,
            pnl_usd={} if paper is None else _pnl_by_book(paper),
            alerts=[alert.key for alert in alerts],
        )
        later = [day for day in days if _at(day.data_end) > _at(data_end)]
        days = [*earlier, tonight, *later]
        write_text(history, "".join(f"{day.model_dump_json()}\n" for day in days))
    charts.mkdir(parents=True, exist_ok=True)
    draw_charts(days[-settings.chart_days :] if data_end is not None else days, charts)
    result.write(report)
    log.info(
        "health: %s, %d alert(s) (%d new); retrain %s, rollback %s",
        "not measured" if total is None else f"{total:.2f}",
        len(alerts),
        sum(alert.new for alert in alerts),
        result.actions.retrain,
        result.actions.rollback,
    )
    return result


def _at(when: str) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def _trading(paper: PaperReport) -> list[PaperModelNight]:
    return [book for book in paper.models if book.outcome not in ("refused", "retired")]


def _pnl_by_book(paper: PaperReport) -> dict[str, float]:
    return {f"{book.slot}:v{book.version}": book.pnl_cumulative_usd for book in _trading(paper)}


def _judged_book(paper: PaperReport | None, judged: Judged | None) -> PaperModelNight | None:
    if paper is None or judged is None:
        return None
    for book in paper.models:
        if book.slot == judged.assignment.slot and book.version == judged.assignment.version:
            return book
    return None


def _live_record(
    config: Config, judged: Judged | None, ledgers: Path, state: Path, features: Path, meta: Path
) -> LiveRecord | None:
    """The judged book's bars since its version started under its slot."""
    if judged is None:
        return None
    slot, version = judged.assignment.slot, judged.assignment.version
    rows = read_ledger(ledgers / f"{slot}.jsonl")
    starts = [i for i, row in enumerate(rows) if row.kind == "start" and row.version == version]
    if not starts:
        return None
    bars = [row for row in rows[starts[-1] :] if row.kind == "bar" and row.version == version]
    if not bars:
        return None
    before = np.array([row.equity_usd - (row.pnl_usd or 0.0) for row in bars])
    returns = np.array([row.pnl_usd or 0.0 for row in bars]) / before
    positions = np.array([_gross(row.weights or ()) for row in bars])
    market = published_bars(features, FeatureSet.read(meta), config)
    labels = pd.Series(
        regime_labels(market), index=pd.DatetimeIndex(market.timestamps).tz_localize("UTC")
    )
    at = pd.DatetimeIndex([_at(row.time) for row in bars])
    regimes = labels.reindex(at).fillna("unknown").to_numpy(dtype=str)
    # The bars per year its book was started with (its evaluation's); else the features'.
    book = BookState.read_if_present(state / f"{slot}.json")
    pinned = None if book is None else book.bars_per_year
    return LiveRecord(
        returns=returns,
        positions=positions,
        regimes=regimes,
        bars_per_year=float(pinned or FeatureSet.read(meta).bars_per_year),
    )


def _gross(weights: tuple[float, ...]) -> float:
    """Signed gross exposure, as the evaluation curve records a position."""
    values = np.asarray(weights, dtype=float)
    return float(np.abs(values).sum() * np.sign(values.sum())) if len(values) else 0.0


def _test_record(judged: Judged | None) -> ReviewWindow | None:
    if judged is None or judged.curve is None or len(judged.curve) < 3:
        return None
    curve = judged.curve
    equity = curve["agent"].to_numpy(dtype=float)
    return ReviewWindow(
        returns=equity[1:] / equity[:-1] - 1.0,
        positions=curve["agent_position"].to_numpy(dtype=float)[:-1],
        regimes=curve["regime"].to_numpy(dtype=str)[:-1],
    )


def _fold_sharpes(judged: Judged | None) -> list[float] | None:
    if judged is None or judged.facts is None or not judged.facts.walk_forward:
        return None
    return [fold.agent_sharpe for fold in judged.facts.walk_forward]


def _conditions(
    config: Config,
    judged: Judged | None,
    drift: DriftSummary | None,
    total: float | None,
    paper: PaperReport | None,
    actions_drifted: bool,
    underperformed: bool,
    weak_regimes: list[str],
    parts: dict[HealthComponentName, HealthComponent],
) -> list[Condition]:
    """Tonight's conditions: the judged model's, and every book's risk events."""
    settings = config.health
    slot = None if judged is None else judged.assignment.slot
    version = None if judged is None else judged.assignment.version
    found: list[Condition] = []
    if drift is not None and drift.dataset_drift:
        # One condition of the data, whichever model trades: a new version trained on drifted
        # data is not a new reason to retrain (else every retrain would start the next). With no
        # model the weekly schedule's training is the first, and an early one would only repeat it.
        action = RETRAIN if judged is not None else FIRST_TRAINING
        found.append(
            Condition("data_drift", "medium", None, None, parts["data_drift"].detail, action)
        )
    if actions_drifted:
        found.append(
            Condition(
                "action_drift", "medium", slot, version, parts["action_drift"].detail, RETRAIN
            )
        )
    if underperformed:
        found.append(
            Condition(
                "performance", "high", slot, version, parts["performance"].detail,
                "investigate the live record: the review's walk-forward evidence no longer holds",
            )
        )  # fmt: skip
    if weak_regimes:
        found.append(
            Condition(
                "regime_underperformance", "medium", slot, version,
                f"below its test window in {', '.join(weak_regimes)}: {parts['regime'].detail}",
                "review the model in these regimes before it trades more of them",
            )
        )  # fmt: skip
    if total is not None and judged is not None:
        scored = f"health score {total:.2f}"
        if total < settings.rollback_below:
            champion = judged.assignment.slot == "champion"
            found.append(
                Condition(
                    "health_breach", "high", slot, version,
                    f"{scored} below {settings.rollback_below:.2f}",
                    ROLLBACK if champion else RETRAIN,
                )
            )  # fmt: skip
        elif total < settings.retrain_below:
            found.append(
                Condition(
                    "health_low", "medium", slot, version,
                    f"{scored} below {settings.retrain_below:.2f}", RETRAIN,
                )
            )  # fmt: skip
    for book in [] if paper is None else paper.models:
        if book.outcome == "refused":
            found.append(
                Condition(
                    "refused", "high", book.slot, book.version, book.error or "refused",
                    "check the served model: it did not trade tonight",
                )
            )  # fmt: skip
        elif book.outcome == "stopped":
            found.append(
                Condition(
                    "risk_halt", "high", book.slot, book.version,
                    "the book stopped: the risk engine halted it",
                    "review the book's breaker events before it trades again",
                )
            )  # fmt: skip
        elif book.breaker_events:
            found.append(
                Condition(
                    "risk_breaker", "medium", book.slot, book.version,
                    "; ".join(book.breaker_events),
                    "check the book's risk-engine events in its ledger",
                )
            )  # fmt: skip
    return found


def _read_history(path: Path) -> list[HealthDay]:
    if not path.is_file():
        return []
    days = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            days.append(HealthDay.model_validate_json(line))
        except ValueError as error:
            raise ArtifactError(f"{path}, line {number}: not a health day ({error})") from None
    return sorted(days, key=lambda day: _at(day.data_end))
