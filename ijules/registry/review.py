"""The evidence the automatic review recomputes from what the registry will serve.

Reports on disk describe the model that was trained; the registry serves what was uploaded. The
review therefore downloads the registered version and checks it, before anyone is asked to approve:

- ``weights_sha256``: the served policy's weights are byte for byte the ones trained;
- ``compatibility``: the served policy loads and runs in today's environment on the test window
  (its observation and action shapes, its features and instruments);
- ``metrics_recomputed``: its backtest of the test window, rerun here, gives ``metrics.json``'s
  figures (a report written for another model or an edited file fails it);
- ``nan_incidents``: training met no non-finite loss, gradient or weight.

The recomputed backtest also gives the per-bar returns the significance rows (PSR, DSR), the VaR
backtest of the agent's own P&L and the paired comparison with the champion are computed from.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ijules.analytics.significance import SharpeMoments, psr
from ijules.artifacts import (
    POLICY_SPEC,
    POLICY_ZIP,
    BacktestMetrics,
    ChampionChallenge,
    FeatureSet,
    GateCheck,
    PerformanceMetrics,
    PolicyRecord,
)
from ijules.config import Config
from ijules.env.market_data import MarketData, load_window
from ijules.errors import IjulesError, RegistryError
from ijules.evaluation.thresholds import at_least, at_most, missing
from ijules.risk.var import FloatArray, historical
from ijules.risk.var_backtest import backtest as var_backtest
from ijules.risk.var_backtest import rolling_var

# Figures recomputed from the served model must equal the report's (float noise only).
RECOMPUTE_TOLERANCE = 1e-9
ZONES = ("green", "yellow", "red")


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Served:
    """The registered version's files, downloaded into a folder that lives as long as this."""

    folder: tempfile.TemporaryDirectory[str]
    zip_path: Path
    spec_path: Path

    @property
    def sha256(self) -> str:
        return sha256_of(self.zip_path)


def download(model_name: str, version: str) -> Served:
    """Download what the registry serves as ``model_name`` ``version``: its policy files."""
    import mlflow

    folder = tempfile.TemporaryDirectory(prefix="ijules-served-")
    root = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=folder.name
        )
    )
    found = {name: sorted(root.rglob(name)) for name in (POLICY_ZIP, POLICY_SPEC)}
    if not found[POLICY_ZIP] or not found[POLICY_SPEC]:
        folder.cleanup()
        raise RegistryError(
            f"{model_name} v{version} holds no {POLICY_ZIP} and {POLICY_SPEC}: not an ijules policy"
        )
    return Served(folder, found[POLICY_ZIP][0], found[POLICY_SPEC][0])


def verify_weights(model_name: str, version: str, expected: str | None) -> None:
    """Refuse a version whose served weights are not the ones recorded at registration."""
    if not expected:
        raise RegistryError(
            f"{model_name} v{version} has no recorded weights checksum; it cannot be verified"
        )
    served = download(model_name, version)
    try:
        actual = served.sha256
    finally:
        served.folder.cleanup()
    if actual != expected:
        raise RegistryError(
            f"{model_name} v{version}: the served weights' sha256 {actual[:12]}... differs from "
            f"the {expected[:12]}... recorded at registration; the artifact was altered"
        )


@dataclass(frozen=True)
class Recomputed:
    """The served model's test-window backtest, rerun at registration."""

    metrics: PerformanceMetrics
    returns: FloatArray
    bars_per_year: float


def backtest_served(
    served: Served, config: Config, features: Path, meta: Path
) -> Recomputed | GateCheck:
    """Backtest the served policy on the test window; a failed ``compatibility`` row if it
    cannot run there."""
    from ijules.evaluation.evaluate import backtest_policy
    from ijules.training.policy import RecurrentPolicy

    feature_set = FeatureSet.read(meta)
    try:
        policy = RecurrentPolicy.load_files(served.zip_path, served.spec_path)
        market: MarketData = load_window(features, feature_set, "test", config)
        backtest = backtest_policy(policy, market, config)
    except IjulesError as err:
        return GateCheck(
            metric="compatibility",
            value=0.0,
            threshold=1.0,
            rule="runs",
            passed=False,
            note=f"the served model does not run on the test window: {err}",
        )
    return Recomputed(
        backtest.metrics(feature_set.bars_per_year), backtest.returns, feature_set.bars_per_year
    )


def integrity_checks(
    *,
    trained_sha256: str,
    served_sha256: str,
    recomputed: Recomputed | GateCheck,
    reported: BacktestMetrics,
    policy: PolicyRecord,
) -> list[GateCheck]:
    """The rows that say the reviewed model is the trained one, runs, and trained cleanly."""
    same = served_sha256 == trained_sha256
    rows = [
        GateCheck(
            metric="weights_sha256",
            value=float(same),
            threshold=1.0,
            rule="served = trained",
            passed=same,
            note=""
            if same
            else f"served {served_sha256[:12]}... is not the trained {trained_sha256[:12]}...",
        )
    ]
    if isinstance(recomputed, GateCheck):
        rows.append(recomputed)
        rows.append(missing("metrics_recomputed", "no backtest of the served model"))
    else:
        rows.append(
            GateCheck(metric="compatibility", value=1.0, threshold=1.0, rule="runs", passed=True)
        )
        fresh = recomputed.metrics
        gaps = {
            name: abs(float(getattr(fresh, name)) - float(getattr(reported, name)))
            for name in ("sharpe", "total_return", "max_drawdown", "daily_turnover", "num_trades")
        }
        worst = max(gaps, key=lambda name: gaps[name])
        rows.append(
            GateCheck(
                metric="metrics_recomputed",
                value=gaps[worst],
                threshold=RECOMPUTE_TOLERANCE,
                rule="<=",
                passed=gaps[worst] <= RECOMPUTE_TOLERANCE,
                note=""
                if gaps[worst] <= RECOMPUTE_TOLERANCE
                else f"recomputed {worst} {getattr(fresh, worst):.6g} differs from the "
                f"report's {getattr(reported, worst):.6g}",
            )
        )
    incidents = policy.training.diagnostics.get("nan_incidents")
    if incidents is None:
        rows.append(missing("nan_incidents", "training recorded no NaN-incident count"))
    else:
        rows.append(at_most("nan_incidents", float(incidents), 0.0))
    return rows


def significance_checks(
    returns: FloatArray | None,
    *,
    min_psr: float,
    min_dsr: float,
    sharpe_benchmark_per_bar: float | None,
    trials: int | None,
) -> list[GateCheck]:
    """PSR against 0 and DSR against the expected best of ``trials`` (the walk-forward's)."""
    if returns is None:
        return [
            missing("psr", "no recomputed test-window returns"),
            missing("dsr", "no recomputed test-window returns"),
        ]
    moments = SharpeMoments.of(returns)
    rows = [at_least("psr", psr(moments), min_psr)]
    if sharpe_benchmark_per_bar is None and min_dsr > 0:
        rows.append(missing("dsr", "no walk-forward trials to deflate by"))
    elif sharpe_benchmark_per_bar is None:
        rows.append(
            GateCheck(
                metric="dsr",
                value=0.0,
                threshold=0.0,
                rule=">=",
                passed=True,
                note="not computed: no walk-forward trials, and min_dsr 0 requires none",
            )
        )
    else:
        row = at_least("dsr", psr(moments, sharpe_benchmark_per_bar), min_dsr)
        deflated = f"deflated by {trials} trials"
        note = deflated if row.passed else f"{row.reason}, {deflated}"
        rows.append(row.model_copy(update={"note": note}))
    return rows


def var_zone_check(
    returns: FloatArray | None, *, confidence: float, window: int, max_zone: str
) -> GateCheck:
    """The Basel zone of a rolling historical VaR of the agent's own per-bar returns."""
    if returns is None or len(returns) <= window:
        have = 0 if returns is None else len(returns)
        return missing("var_zone", f"{have} test bars, fewer than the VaR window of {window}")
    forecasts = rolling_var(returns, historical, confidence, window=window)
    scored = var_backtest("historical", returns, forecasts, confidence)
    zone = ZONES.index(scored.zone)
    return GateCheck(
        metric="var_zone",
        value=float(zone),
        threshold=float(ZONES.index(max_zone)),
        rule="<=",
        passed=zone <= ZONES.index(max_zone),
        note=f"{scored.zone} zone: {scored.exceptions} VaR exceptions in {scored.observations} "
        f"bars at {confidence:.0%}",
    )


def challenge(
    champion: str,
    candidate: Recomputed,
    champion_returns: FloatArray,
    champion_sharpe: float,
    *,
    margin: float,
    max_p_value: float,
    candidate_folds: Sequence[float] | None,
    champion_folds: Sequence[float] | None,
) -> ChampionChallenge:
    """The candidate against the champion, on two kinds of evidence that must both agree.

    - Walk-forward: each model's own out-of-sample folds, as recorded when it was reviewed. The
      candidate's mean fold Sharpe must exceed the champion's by ``margin``. Without a record on
      either side there is nothing to compare, and the candidate is not better.
    - The candidate's test window, the one stretch out of sample for both final models: the
      Sharpe margin and a one-sided paired t-test of their per-bar returns.
    """
    difference = np.asarray(candidate.returns) - np.asarray(champion_returns)
    if np.allclose(difference, 0.0):
        t_statistic, p_value = 0.0, 1.0
    else:
        test = stats.ttest_1samp(difference, 0.0, alternative="greater")
        t_statistic, p_value = float(test.statistic), float(test.pvalue)
    sharpe = float(candidate.metrics.sharpe)
    on_test = sharpe >= champion_sharpe + margin and p_value <= max_p_value
    candidate_wf = float(np.mean(candidate_folds)) if candidate_folds else None
    champion_wf = float(np.mean(champion_folds)) if champion_folds else None
    on_walk_forward = (
        candidate_wf is not None
        and champion_wf is not None
        and candidate_wf >= champion_wf + margin
    )
    return ChampionChallenge(
        champion=champion,
        candidate_sharpe=sharpe,
        champion_sharpe=champion_sharpe,
        margin=margin,
        t_statistic=t_statistic,
        p_value=p_value,
        max_p_value=max_p_value,
        bars=len(difference),
        test_window_better=on_test,
        candidate_walk_forward_sharpe=candidate_wf,
        champion_walk_forward_sharpe=champion_wf,
        walk_forward_folds=(len(candidate_folds or ()), len(champion_folds or ())),
        walk_forward_better=on_walk_forward,
        better=on_test and on_walk_forward,
    )


def challenge_summary(c: ChampionChallenge) -> str:
    """One sentence: both comparisons with the champion, and the verdict."""

    def wf(value: float | None, folds: int) -> str:
        return "no record" if value is None else f"{value:.3f} over {folds} folds"

    ours, theirs = c.walk_forward_folds
    candidate = wf(c.candidate_walk_forward_sharpe, ours)
    champion = wf(c.champion_walk_forward_sharpe, theirs)
    return (
        f"Against champion v{c.champion}: walk-forward mean Sharpe {candidate} vs {champion}"
        f" ({'better' if c.walk_forward_better else 'not better'} by the margin {c.margin:g}); "
        f"on the same {c.bars} test bars Sharpe {c.candidate_sharpe:.3f} vs "
        f"{c.champion_sharpe:.3f}, paired t {c.t_statistic:.2f}, p {c.p_value:.3f} (at most "
        f"{c.max_p_value:g}: {'better' if c.test_window_better else 'not better'}): "
        f"{'better' if c.better else 'not better'}."
    )


def table_markdown(checks: Sequence[GateCheck]) -> str:
    """The review as a Markdown table: one row per check."""
    lines = ["| check | rule | threshold | value | passed |", "|---|---|---|---|---|"]
    for c in checks:
        note = f" ({c.note})" if c.note else ""
        lines.append(
            f"| {c.metric} | {c.rule} | {c.threshold:.4g} | {c.value:.4g}{note} | "
            f"{'yes' if c.passed else '**no**'} |"
        )
    return "\n".join(lines)
