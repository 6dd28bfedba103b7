"""Drift: an Evidently data-drift report of the newest bars' features against the train window.

Evidently picks each feature's test by its type and size (Kolmogorov-Smirnov for small samples,
Wasserstein distance for large ones); a feature has drifted when its test says so, and the data
set has drifted when at least ``drift.drift_share`` of the features have.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ijules.artifacts import DriftSpan, DriftSummary, FeatureDrift, FeatureSet
from ijules.config import Config
from ijules.data.features import SPLIT
from ijules.data.schema import TIMESTAMP
from ijules.errors import IngestError
from ijules.io import write_text

log = logging.getLogger(__name__)

# Fewer bars of a model's training window than this in the published table: not a reference.
MIN_REFERENCE_BARS = 30
SPLIT_REFERENCE = "the train split of the current features"


@dataclass(frozen=True)
class ReferenceWindow:
    """The bars drift is measured against: a model's training window, and whose it is."""

    start: str
    end: str
    whose: str  # e.g. "v3 (champion)"


def run_drift(
    config: Config,
    *,
    features: Path,
    meta: Path,
    html: Path,
    snapshot: Path,
    metrics: Path,
    reference_window: ReferenceWindow | None = None,
) -> DriftSummary:
    """Compare the newest ``drift.window_bars`` bars with the reference; write the reports.

    The reference is ``reference_window`` (the trading model's training window) when given and
    the published bars hold it, else the train split of the current features (the summary says
    which, and why). Writes the Evidently report as ``html`` and ``snapshot`` (JSON), and a
    summary with the share of drifted features as ``metrics``.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry
    from evidently import Report
    from evidently.presets import DataDriftPreset

    if not features.is_file():
        raise IngestError(f"features not found: {features} (run `ijules features` first)")
    feature_set = FeatureSet.read(meta)
    names = list(feature_set.feature_names)
    table = pd.read_parquet(features)
    reference, source = _reference(table, reference_window)
    current = table.tail(config.drift.window_bars)
    report = Report(
        [DataDriftPreset(columns=names, drift_share=config.drift.drift_share)], include_tests=True
    )
    result = report.run(current_data=current[names], reference_data=reference[names])
    write_text(html, result.get_html_str(as_iframe=False))
    write_text(snapshot, result.json())
    summary = summarise(
        result.dict(),
        names,
        config.drift.drift_share,
        reference=_span(reference),
        current=_span(current),
    ).model_copy(update={"reference_source": source})
    summary.write(metrics)
    log.info(
        "drift: %d of %d features drifted (share %.2f) in the newest %d bars",
        summary.drifted_features,
        summary.features,
        summary.drift_share,
        len(current),
    )
    return summary


def _reference(table: pd.DataFrame, window: ReferenceWindow | None) -> tuple[pd.DataFrame, str]:
    """The reference rows and where they come from."""
    split = table.loc[table[SPLIT] == "train"]
    if window is None:
        return split, f"{SPLIT_REFERENCE} (no registered model records a training window)"
    stamps = pd.to_datetime(table[TIMESTAMP], utc=True)
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    end = end.tz_localize("UTC") if end.tzinfo is None else end
    rows = table.loc[(stamps >= start) & (stamps <= end)]
    if len(rows) < MIN_REFERENCE_BARS:
        return split, (
            f"{SPLIT_REFERENCE}: {window.whose}'s training window {window.start} to {window.end} "
            f"holds {len(rows)} published bar(s), fewer than {MIN_REFERENCE_BARS}"
        )
    return rows, f"{window.whose}'s training window"


def summarise(
    snapshot: dict[str, Any],
    names: list[str],
    threshold: float,
    *,
    reference: DriftSpan,
    current: DriftSpan,
) -> DriftSummary:
    """Pull the drifted share and each feature's verdict out of an Evidently snapshot dict."""
    share, count = None, None
    tested: dict[str, FeatureDrift] = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            share, count = float(metric["value"]["share"]), int(metric["value"]["count"])
        elif kind.endswith("ValueDrift") and config.get("column") in names:
            tested[config["column"]] = FeatureDrift(
                method=config.get("method"),
                threshold=config.get("threshold"),
                score=float(metric["value"]),
            )
    verdicts: dict[str, bool] = {}
    for test in snapshot.get("tests", []):
        column = test.get("metric_config", {}).get("params", {}).get("column")
        if column in tested:
            verdicts[column] = test.get("status") == "FAIL"
    if share is None or count is None:
        raise IngestError("the Evidently report has no DriftedColumnsCount metric")
    return DriftSummary(
        drift_share=share,
        drifted_features=count,
        features=len(names),
        dataset_drift=share >= threshold,
        threshold=threshold,
        # A feature Evidently ran no test on has no verdict (and no "drifted" in the file).
        per_feature={
            name: FeatureDrift(
                method=drift.method,
                threshold=drift.threshold,
                score=drift.score,
                drifted=verdicts.get(name),
            )
            for name, drift in tested.items()
        },
        reference=reference,
        current=current,
    )


def _span(rows: pd.DataFrame) -> DriftSpan:
    return DriftSpan(
        start=rows[TIMESTAMP].iloc[0].isoformat(),
        end=rows[TIMESTAMP].iloc[-1].isoformat(),
        bars=len(rows),
    )
