"""The agent over several training seeds: how much of its figure is the seed.

The registered policy is the one trained with ``seed``. This stage trains the same configuration
with ``seed + 1``, ..., ``seed + seeds.count - 1`` on the same train window, backtests each on the
test window with the same costs, and reports the spread of their figures with a one-sided lower
confidence bound of their mean Sharpe ratio (Student's t over seeds). The gate reads that bound
(or the registered policy's own Sharpe if lower) and the worst seed's drawdown, turnover and trade
count: not the luckiest seed. Nothing is selected by its test figure: the registered policy is
fixed before any other seed is trained. The other seeds' models are not kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy import stats

from ijules.artifacts import (
    POLICY_SPEC,
    FeatureSet,
    MetricsReport,
    ModelRef,
    PerformanceMetrics,
    PolicyRecord,
    SeedRun,
    SeedSpread,
    Window,
)
from ijules.config import Config
from ijules.env.engine import EngineSettings
from ijules.env.market_data import load_history, load_windows
from ijules.env.pooled_env import Member
from ijules.errors import ArtifactError
from ijules.evaluation.evaluate import backtest_policy
from ijules.io import md5_file
from ijules.tracking import configure, lineage_tags
from ijules.training.checkpoints import checkpoint_folder, discard, latest
from ijules.training.fit import fit
from ijules.training.policy import RecurrentPolicy

log = logging.getLogger(__name__)


def _seed_run(seed: int, run_id: str, metrics: PerformanceMetrics) -> SeedRun:
    """One seed's test-window figures, as the spread records them."""
    return SeedRun(
        seed=seed,
        run_id=run_id,
        sharpe=metrics.sharpe,
        total_return=metrics.total_return,
        max_drawdown=metrics.max_drawdown,
        daily_turnover=metrics.daily_turnover,
        num_trades=metrics.num_trades,
        cost_bps=metrics.cost_bps,
    )


def spread(runs: list[SeedRun], confidence: float) -> tuple[float, float | None, float]:
    """Mean Sharpe over seeds, its sample standard deviation, and the one-sided lower bound of
    the mean at ``confidence`` (the mean itself with one seed: no spread to measure)."""
    sharpes = np.array([run.sharpe for run in runs])
    mean = float(np.mean(sharpes))
    if len(sharpes) < 2:
        return mean, None, mean
    std = float(np.std(sharpes, ddof=1))
    margin = float(stats.t.ppf(confidence, len(sharpes) - 1)) * std / np.sqrt(len(sharpes))
    return mean, std, mean - margin


def summarise_seeds(
    model: ModelRef, window: str, runs: list[SeedRun], confidence: float
) -> SeedSpread:
    """The spread over ``runs`` (the registered policy first) and the gate's conservative
    figures."""
    mean, std, lower = spread(runs, confidence)
    return SeedSpread(
        model=model,
        window=window,
        confidence=confidence,
        runs=runs,
        mean_sharpe=mean,
        std_sharpe=std,
        sharpe_lower_bound=lower,
        sharpe=min(lower, runs[0].sharpe),
        max_drawdown=max(run.max_drawdown for run in runs),
        daily_turnover=max(run.daily_turnover for run in runs),
        num_trades=min(run.num_trades for run in runs),
    )


def run_seeds(
    config: Config,
    *,
    features: Path,
    meta: Path,
    model_dir: Path,
    metrics: Path,
    output: Path,
    checkpoints: Path | None = None,
) -> SeedSpread:
    """Train and test the other seeds; write their spread with the registered policy's to
    ``output``. ``metrics`` is the registered policy's evaluation (its figures are the first
    seed's)."""
    import mlflow

    feature_set = FeatureSet.read(meta)
    evaluation = MetricsReport.read(metrics)
    record = PolicyRecord.read(model_dir / POLICY_SPEC)
    if evaluation.model.run_id != record.mlflow.run_id:
        raise ArtifactError(
            f"{metrics} evaluates run {evaluation.model.run_id}, but {model_dir / POLICY_SPEC} "
            f"is run {record.mlflow.run_id}: run `ijules evaluate` first"
        )
    runs = [_seed_run(config.seed, record.mlflow.run_id, evaluation.agent)]
    windows: tuple[Window, ...] = (
        ("train", "validation") if config.curriculum.enabled else ("train",)
    )
    train, *rest = load_windows(features, feature_set, windows, config)
    validation = rest[0] if rest else None
    history, selected = load_history(features, feature_set, "test", config)
    test = history.rows(selected)
    settings = EngineSettings.from_config(
        config, feature_set.norm, feature_set.clip_zscore, train.n_instruments
    )
    root = checkpoints if checkpoints is not None else Path(config.paths.checkpoints)
    experiment_id = configure(config.registry.experiment)
    for offset in range(1, config.seeds.count):
        seeded = config.model_copy(update={"seed": config.seed + offset})
        folder = checkpoint_folder(root, "seeds", seeded.policy_digest(), md5_file(features))
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"seed-{seeded.seed}") as run:
            mlflow.set_tags(lineage_tags(seeded, {"features": features, "feature_meta": meta}))
            # Not a trial: the same configuration, another draw of its training noise.
            mlflow.set_tags({"ijules.stage": "seeds", "ijules.registered_run": runs[0].run_id})
            result = fit(
                seeded,
                [Member(train, settings)],
                total_timesteps=config.training.total_timesteps,
                checkpoints=folder,
                resume=latest(folder),
                validation=validation,
                run_id=run.info.run_id,
            )
            backtest = backtest_policy(RecurrentPolicy(result.model, result.spec), test, seeded)
            figures = backtest.metrics(feature_set.bars_per_year)
            runs.append(_seed_run(seeded.seed, run.info.run_id, figures))
            mlflow.log_metrics(
                {"test_sharpe": figures.sharpe, "test_total_return": figures.total_return}
            )
        discard(folder)
        log.info("seed %d: test Sharpe %.2f", seeded.seed, figures.sharpe)
    window = f"{evaluation.window.start} to {evaluation.window.end}"
    payload = summarise_seeds(evaluation.model, window, runs, config.seeds.confidence)
    payload.write(output)
    log.info(
        "%d seeds: test Sharpe mean %.2f, lower bound %.2f (%.0f%%), range %.2f to %.2f",
        len(runs),
        payload.mean_sharpe,
        payload.sharpe_lower_bound,
        100 * config.seeds.confidence,
        min(r.sharpe for r in runs),
        max(r.sharpe for r in runs),
    )
    return payload
