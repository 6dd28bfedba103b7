"""Drift: an Evidently data-drift report of the newest bars' features against the train window.

Evidently picks each feature's test by its type and size (Kolmogorov-Smirnov for small samples,
Wasserstein distance for large ones); a feature has drifted when its test says so, and the data
set has drifted when at least ``drift.drift_share`` of the features have.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ijules.config import Config
from ijules.data.features import SPLIT, FeatureSet
from ijules.data.schema import TIMESTAMP
from ijules.errors import IngestError
from ijules.io import write_json, write_text

log = logging.getLogger(__name__)


def run_drift(
    config: Config, *, features: Path, meta: Path, html: Path, snapshot: Path, metrics: Path
) -> dict[str, Any]:
    """Compare the newest ``drift.window_bars`` bars with the train window; write the reports.

    Writes the Evidently report as ``html`` and ``snapshot`` (JSON), and a summary with the share
    of drifted features as ``metrics``.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry
    from evidently import Report
    from evidently.presets import DataDriftPreset

    if not features.is_file():
        raise IngestError(f"features not found: {features} (run `ijules features` first)")
    feature_set = FeatureSet.load(meta)
    names = list(feature_set.feature_names)
    table = pd.read_parquet(features)
    reference = table.loc[table[SPLIT] == "train"]
    current = table.tail(config.drift.window_bars)
    report = Report(
        [DataDriftPreset(columns=names, drift_share=config.drift.drift_share)], include_tests=True
    )
    result = report.run(current_data=current[names], reference_data=reference[names])
    write_text(html, result.get_html_str(as_iframe=False))
    write_text(snapshot, result.json())
    summary = summarise(result.dict(), names, config.drift.drift_share)
    summary["reference"] = _span(reference)
    summary["current"] = _span(current)
    write_json(metrics, summary)
    log.info(
        "drift: %d of %d features drifted (share %.2f) in the newest %d bars",
        summary["drifted_features"],
        summary["features"],
        summary["drift_share"],
        len(current),
    )
    return summary


def summarise(snapshot: dict[str, Any], names: list[str], threshold: float) -> dict[str, Any]:
    """Pull the drifted share and each feature's verdict out of an Evidently snapshot dict."""
    share, count = None, None
    per_feature: dict[str, dict[str, Any]] = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            share, count = float(metric["value"]["share"]), int(metric["value"]["count"])
        elif kind.endswith("ValueDrift") and config.get("column") in names:
            per_feature[config["column"]] = {
                "method": config.get("method"),
                "threshold": config.get("threshold"),
                "score": float(metric["value"]),
            }
    for test in snapshot.get("tests", []):
        column = test.get("metric_config", {}).get("params", {}).get("column")
        if column in per_feature:
            per_feature[column]["drifted"] = test.get("status") == "FAIL"
    if share is None or count is None:
        raise IngestError("the Evidently report has no DriftedColumnsCount metric")
    return {
        "drift_share": share,
        "drifted_features": count,
        "features": len(names),
        "dataset_drift": share >= threshold,
        "threshold": threshold,
        "per_feature": per_feature,
    }


def _span(rows: pd.DataFrame) -> dict[str, Any]:
    return {
        "start": rows[TIMESTAMP].iloc[0].isoformat(),
        "end": rows[TIMESTAMP].iloc[-1].isoformat(),
        "bars": len(rows),
    }
