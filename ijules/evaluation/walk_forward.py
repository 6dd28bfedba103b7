"""Walk-forward validation: train on the past, test on the next stretch, fold after fold.

Folds live on the development bars (the train and validation windows and the embargo between
them: contiguous bars); the test window stays held out for the final evaluation. With F folds
of ``test_bars`` each, fold k tests on the k-th of the last F stretches of the development
bars and trains on the bars before it, minus a gap of ``purge_bars`` (labels that would
overlap the test: the reward of bar t looks at bar t+1) and ``embargo_bars`` (serial
correlation that would leak across the boundary):

- expanding: train from the first development bar;
- rolling: train on the ``train_bars`` bars before the gap.

Each fold fits its own normalisation on its own training bars, trains with the same code as the
train stage (``walk_forward.total_timesteps`` steps), and backtests the agent and the rule
baselines on its test bars with the configured costs and risk engine. A fold passes when the
agent meets the gate's thresholds there; its Sharpe ratio comes with the PSR and, in the
summary, the DSR (trials: the distinct configurations in the trial ledger,
:mod:`ijules.evaluation.trials`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.analytics.significance import (
    SharpeMoments,
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    target_test,
)
from ijules.artifacts import (
    Baselines,
    FeatureSet,
    Fold,
    FoldBacktest,
    FoldResult,
    FoldRow,
    FoldTraining,
    FoldWindow,
    NormStats,
    ResearchSummary,
    TrialRow,
    TuningReport,
    WalkForwardSummary,
    fold_file,
)
from ijules.config import Config
from ijules.env.backtest import Backtest
from ijules.env.cost_check import full_capital_fill_bps
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData, from_feature_table, window_labels
from ijules.env.pooled_env import Member
from ijules.errors import ConfigError
from ijules.evaluation.baselines import BASELINES, PASSIVE, RULES, best_rule, rule_baselines
from ijules.evaluation.config import WalkForwardConfig
from ijules.evaluation.evaluate import AGENT, backtest_policy, significance
from ijules.evaluation.thresholds import Benchmarks, threshold_checks
from ijules.evaluation.trials import Source, TrialRecord, count, record
from ijules.io import md5_file
from ijules.tracking import configure, lineage_tags
from ijules.training.checkpoints import checkpoint_folder, discard, latest
from ijules.training.fit import fit
from ijules.training.policy import RecurrentPolicy

log = logging.getLogger(__name__)

DEVELOPMENT = ("train", "validation")
FloatArray = npt.NDArray[np.float64]


def fold_windows(rows: int, config: WalkForwardConfig) -> list[Fold]:
    """The folds over ``rows`` development bars; refuses a layout that leaves too little."""
    n = len(config.fold_ids)
    gap = config.purge_bars + config.embargo_bars
    folds = []
    for k in config.fold_ids:
        test_start = rows - (n - k) * config.test_bars
        train_end = test_start - gap
        train_start = 0 if config.scheme == "expanding" else max(0, train_end - config.train_bars)
        if train_end - train_start < config.min_train_bars:
            raise ConfigError(
                f"walk_forward: fold {k} would train on {max(train_end - train_start, 0)} bars, "
                f"below walk_forward.min_train_bars={config.min_train_bars} ({rows} development "
                f"bars, {n} folds x test_bars={config.test_bars}, purge+embargo {gap})"
            )
        folds.append(
            Fold(
                fold=k,
                train_start=train_start,
                train_end=train_end,
                test_start=test_start,
                test_end=test_start + config.test_bars,
            )
        )
    return folds


def development_market(config: Config, table: pd.DataFrame, meta: FeatureSet) -> MarketData:
    """Market state over the development bars (every instrument's, on the common clock).

    The development bars run contiguously from the first train bar to the last validation bar,
    the embargo between them included: a fold's stretch never jumps over a gap.
    """
    market = from_feature_table(table, meta, config)
    in_windows = np.flatnonzero(np.isin(window_labels(table, market), DEVELOPMENT))
    return market.rows(slice(in_windows[0], in_windows[-1] + 1))


def fold_norm(features: FloatArray, fold: Fold) -> NormStats:
    """Normalisation fitted on the fold's own training bars (nothing from its test); ``features``
    are the development market's (bars x features)."""
    return NormStats.fit(features[fold.train_start : fold.train_end])


def run_fold(
    config: Config, *, fold_id: int, features: Path, meta: Path, output: Path, checkpoints: Path
) -> FoldResult:
    """Train and test one fold; write its result to ``output``; log a ``walk_forward`` run."""
    import mlflow

    feature_set = FeatureSet.read(meta)
    table = pd.read_parquet(features)
    market = development_market(config, table, feature_set)
    folds = fold_windows(len(market), config.walk_forward)
    if fold_id not in config.walk_forward.fold_ids:
        raise ConfigError(f"fold {fold_id} is not in walk_forward.fold_ids")
    fold = folds[fold_id]
    norm = fold_norm(market.features, fold)
    train_market = market.rows(slice(fold.train_start, fold.train_end))
    test_market = market.rows(slice(fold.test_start, fold.test_end))
    settings = EngineSettings.from_config(
        config, norm, feature_set.clip_zscore, market.n_instruments
    )
    folder = checkpoint_folder(
        checkpoints, "walk_forward", config.walk_forward_digest(), md5_file(features), str(fold_id)
    )
    resume = latest(folder)
    experiment_id = configure(config.registry.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"walk-forward-{fold_id}") as run:
        mlflow.set_tags(lineage_tags(config, {"features": features, "feature_meta": meta}))
        mlflow.set_tags({"ijules.stage": "walk_forward", "ijules.fold": str(fold_id)})
        result = fit(
            config,
            [Member(train_market, settings)],
            total_timesteps=config.walk_forward.total_timesteps,
            checkpoints=folder,
            resume=resume,
            run_id=run.info.run_id,
        )
        policy = RecurrentPolicy(result.model, result.spec)
        backtests = {AGENT: backtest_policy(policy, test_market, config)}
        test_rows = slice(fold.test_start, fold.test_end)
        backtests.update(rule_baselines(config, market, test_rows, norm, feature_set.clip_zscore))
        bars_per_year = feature_set.bars_per_year
        benchmark = backtests[PASSIVE].returns
        entries = {
            name: _fold_backtest(backtest, bars_per_year, benchmark)
            for name, backtest in backtests.items()
        }
        rule = best_rule({name: entries[name].sharpe for name in RULES})
        fill_bps = full_capital_fill_bps(test_market, config)
        gate = threshold_checks(
            entries[AGENT],
            config.gate,
            Benchmarks(entries[PASSIVE].sharpe, rule, entries[rule].sharpe),
            fill_bps,
        )
        window = FoldWindow(
            **fold.model_dump(),
            train_first=str(pd.Timestamp(train_market.timestamps[0])),
            train_last=str(pd.Timestamp(train_market.timestamps[-1])),
            test_first=str(pd.Timestamp(test_market.timestamps[0])),
            test_last=str(pd.Timestamp(test_market.timestamps[-1])),
            purge_bars=config.walk_forward.purge_bars,
            embargo_bars=config.walk_forward.embargo_bars,
            full_capital_fill_bps=fill_bps,
        )
        payload = FoldResult(
            fold=fold_id,
            scheme=config.walk_forward.scheme,
            window=window,
            training=FoldTraining(timesteps=result.timesteps, run_id=run.info.run_id),
            agent=entries[AGENT],
            baselines=Baselines[FoldBacktest](**{name: entries[name] for name in BASELINES}),
            best_rule=rule,
            passed=gate.passed,
            reasons=gate.reasons,
        )
        passive = payload.baselines.passive_buy_and_hold
        mlflow.log_metrics(
            {
                f"wf_{name}_{key}": value
                for name, entry in ((AGENT, payload.agent), (PASSIVE, passive))
                for key, value in entry.headline().items()
            }
            | {"wf_sharpe_per_bar": payload.agent.significance.sharpe_per_bar}
        )
    discard(folder)
    payload.write(output)
    log.info(
        "fold %d: agent Sharpe %.2f (passive buy-and-hold %.2f, best rule %s %.2f), %s",
        fold_id,
        payload.agent.sharpe,
        passive.sharpe,
        rule,
        entries[rule].sharpe,
        "passed" if gate.passed else "failed: " + "; ".join(gate.reasons),
    )
    return payload


def _fold_backtest(backtest: Backtest, bars_per_year: float, asset: FloatArray) -> FoldBacktest:
    metrics = backtest.metrics(bars_per_year, asset)
    return FoldBacktest(
        sharpe=metrics.sharpe,
        max_drawdown=metrics.max_drawdown,
        daily_turnover=metrics.daily_turnover,
        total_return=metrics.total_return,
        num_trades=metrics.num_trades,
        win_rate=metrics.win_rate,
        significance=significance(backtest.returns),
        costs=float(metrics.total_cost),
        cost_bps=metrics.cost_bps,
    )


def tried(
    config: Config,
    results: list[FoldResult],
    *,
    ledger: Path,
    tuning: Path | None = None,
    research: Path | None = None,
) -> list[TrialRecord]:
    """Enter this configuration's folds, the tuning study's trials and the research study's in
    the trial ledger at ``ledger``; return the whole ledger."""
    candidates = [
        TrialRecord(
            params_md5=config.policy_digest(),
            source="walk_forward",
            fold_sharpes_per_bar=[r.agent.significance.sharpe_per_bar for r in results],
        )
    ]
    study = TuningReport.read_if_present(tuning)
    studied = ResearchSummary.read_if_present(research)
    sources: list[tuple[Source, list[TrialRow]]] = [
        ("tune", [] if study is None else study.rows),
        ("research", [] if studied is None else studied.rows),
    ]
    for source, rows in sources:
        candidates += [
            TrialRecord(
                params_md5=row.params_md5,
                source=source,
                fold_sharpes_per_bar=row.fold_sharpes_per_bar,
            )
            for row in rows
        ]
    return record(ledger, candidates)


def run_summary(
    config: Config,
    *,
    folds: Path,
    output: Path,
    ledger: Path | None = None,
    tuning: Path | None = None,
    research: Path | None = None,
) -> WalkForwardSummary:
    """Gather the folds into the walk-forward table, with pass rate, PSR and DSR. With
    ``ledger``, the folds (and the tuning and research studies' trials, when given) enter the
    trial ledger, whose count and spread the DSR deflates by; without, one trial."""
    results = [FoldResult.read(folds / fold_file(k)) for k in config.walk_forward.fold_ids]
    n_trials, variance = (
        count(tried(config, results, ledger=ledger, tuning=tuning, research=research))
        if ledger is not None
        else (1, None)
    )
    confidence = config.walk_forward.confidence
    table = []
    for result in results:
        agent, passive = result.agent, result.baselines.passive_buy_and_hold
        rule = result.baselines.by_name()[result.best_rule]
        moments = SharpeMoments(
            agent.significance.sharpe_per_bar,
            agent.significance.observations,
            agent.significance.skewness,
            agent.significance.kurtosis,
        )
        # Without a spread of trials to measure, the Sharpe estimator's own variance stands in.
        trial_variance = (
            variance
            if variance is not None
            else moments.variance_factor() / max(moments.observations - 1, 1)
        )
        dsr = deflated_sharpe_ratio(moments, n_trials, trial_variance)
        table.append(
            FoldRow(
                fold=result.fold,
                test_first=result.window.test_first,
                test_last=result.window.test_last,
                agent_sharpe=agent.sharpe,
                passive_sharpe=passive.sharpe,
                best_rule=result.best_rule,
                best_rule_sharpe=rule.sharpe,
                agent_max_drawdown=agent.max_drawdown,
                passive_max_drawdown=passive.max_drawdown,
                agent_daily_turnover=agent.daily_turnover,
                passive_daily_turnover=passive.daily_turnover,
                agent_total_return=agent.total_return,
                passive_total_return=passive.total_return,
                psr=agent.significance.psr,
                dsr=dsr,
                sharpe_benchmark_per_bar=expected_maximum_sharpe(n_trials, trial_variance),
                significant=agent.significance.psr >= confidence,
                passed=result.passed,
                reasons=result.reasons,
            )
        )
    sharpes = np.array([row.agent_sharpe for row in table])
    passed = sum(row.passed for row in table)
    payload = WalkForwardSummary(
        params_md5=config.walk_forward_digest(),
        scheme=config.walk_forward.scheme,
        folds=len(table),
        folds_passed=passed,
        pass_rate=passed / len(table) if table else 0.0,
        required_pass_rate=config.gate.min_walk_forward_pass_rate,
        confidence=confidence,
        folds_significant=sum(row.significant for row in table),
        trials=n_trials,
        trial_sharpe_variance=variance,
        mean_agent_sharpe=_mean(list(sharpes)),
        mean_passive_sharpe=_mean([row.passive_sharpe for row in table]),
        mean_best_rule_sharpe=_mean([row.best_rule_sharpe for row in table]),
        sharpe_vs_target=target_test(sharpes, config.gate.min_sharpe),
        table=table,
    )
    payload.write(output)
    log.info(
        "walk-forward: %d of %d folds passed (need %.0f%%); mean Sharpe %.2f",
        passed,
        len(table),
        100 * config.gate.min_walk_forward_pass_rate,
        payload.mean_agent_sharpe,
    )
    return payload


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0
