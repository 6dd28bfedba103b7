"""The research study: one policy pooled over several instruments, searched with Optuna and
judged per instrument against passive buy-and-hold and the trend rules, after costs.

Each instrument of ``research.instruments`` goes through the pipeline's own stages (ingest, the
data checks, features, the time split) into ``paths.research_work``, so it has its own bars,
normalisation, costs and held-out test window. A trial draws values for ``tuning.space``
(TPE, seeded), and on each walk-forward fold trains one policy on every instrument's training
bars at once (a :class:`~ijules.env.pooled_env.PooledVecEnv`), with ``research.seeds`` seeds,
then backtests it on each instrument's fold test bars. It scores the mean Sharpe ratio over
instruments, folds and seeds; the median rule prunes it after ``tuning.prune_after_folds``
folds. The test windows are not touched by the search.

The best configuration is then trained ``research.final_seeds`` times on the development bars
of every instrument and tested once per instrument. The agent's figures are those of its seed
policies run side by side with the capital split equally (one tradable strategy, not the best
seed); each seed's own Sharpe ratio is listed beside them. Every Sharpe ratio comes with its
PSR, and the agent's with the DSR, deflated by the number of trials. Two ablations, with the same
seeds and bars, show what the sizing and the pooling do: the same configuration without the
volatility target, and a policy trained on each instrument alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.analytics.metrics import bar_returns, max_drawdown, sharpe_ratio, total_return
from ijules.analytics.significance import SharpeMoments, deflated_sharpe_ratio, psr
from ijules.artifacts import (
    RESEARCH_REPORT,
    RESEARCH_SUMMARY,
    FeatureSet,
    Fold,
    ResearchEntry,
    ResearchFold,
    ResearchInstrument,
    ResearchSummary,
    TrialRow,
)
from ijules.config import Config
from ijules.data.features import run_features
from ijules.data.ingest import run_ingest
from ijules.data.validate import run_validate
from ijules.env.backtest import Backtest
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData, load_history
from ijules.env.pooled_env import Member
from ijules.errors import ConfigError
from ijules.evaluation.baselines import PASSIVE, RULES, rule_baselines
from ijules.evaluation.evaluate import backtest_policy
from ijules.evaluation.research_report import write_report
from ijules.evaluation.tuning import FINISHED, Value, run_study, suggest, trial_config
from ijules.evaluation.walk_forward import development_market, fold_norm, fold_windows
from ijules.io import md5_file
from ijules.tracking import configure, lineage_tags
from ijules.training.fit import fit
from ijules.training.policy import RecurrentPolicy

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BENCHMARKS = (PASSIVE, *RULES)  # what the report sets the agent beside: tsmom, macd, ...


@dataclass(frozen=True)
class Instrument:
    """One research instrument, prepared: its configuration, features and markets."""

    symbol: str
    config: Config
    meta: FeatureSet
    development: MarketData
    folds: list[Fold]
    history: MarketData  # every bar, for the test window and the rules' look-back
    test: npt.NDArray[np.bool_]


def instrument_config(config: Config, symbol: str) -> Config:
    """``config`` trading ``symbol`` alone, from its research source, calendar and cost class;
    walk-forward folds as the research sets them."""
    spec = config.research.instruments[symbol]
    raw = config.model_dump(mode="json")
    raw["data"].update(source=spec.source, symbol=symbol, calendar=spec.calendar)
    liquidity = raw["microstructure"]["liquidity_model"]
    liquidity.update(asset_class=spec.asset_class, daily_volume_usd={}, contract_multiplier={})
    raw["walk_forward"].update(
        fold_ids=list(config.research.fold_ids), test_bars=config.research.test_bars
    )
    return Config.model_validate_json(json.dumps(raw))


def prepare(config: Config, symbol: str, work: Path) -> Instrument:
    """Ingest, check and featurise ``symbol``'s bars into ``work``; its markets and folds."""
    cfg = instrument_config(config, symbol)
    folder = work / symbol
    staged, bars = folder / "staged.parquet", folder / "bars.parquet"
    features, meta_path = folder / "features.parquet", folder / "meta.json"
    run_ingest(cfg, source=None, output=staged, report=folder / "ingest.json")
    run_validate(cfg, staged=staged, output=bars, result=folder / "validation.json")
    meta = run_features(cfg, bars=bars, output=features, meta=meta_path)
    development = development_market(cfg, pd.read_parquet(features), meta)
    history, test = load_history(features, meta, "test", cfg)
    return Instrument(
        symbol=symbol,
        config=cfg,
        meta=meta,
        development=development,
        folds=fold_windows(len(development), cfg.walk_forward),
        history=history,
        test=test,
    )


def side_by_side(runs: list[Backtest]) -> FloatArray:
    """The equity of several backtests run side by side, the capital split equally."""
    return np.asarray(np.mean([run.equity for run in runs], axis=0), dtype=np.float64)


def entry(backtest: Backtest | list[Backtest], bars_per_year: float) -> ResearchEntry:
    """The figures of one backtest, or of several run side by side with the capital split."""
    runs = backtest if isinstance(backtest, list) else [backtest]
    equity = side_by_side(runs)
    returns = bar_returns(equity)
    metrics = [run.metrics(bars_per_year) for run in runs]
    costs = float(np.mean([m.total_cost for m in metrics]))
    gross = float(equity[-1] - equity[0]) + costs
    return ResearchEntry(
        sharpe=sharpe_ratio(returns, bars_per_year),
        psr=psr(SharpeMoments.of(returns)),
        dsr=None,
        total_return=total_return(equity),
        max_drawdown=max_drawdown(equity),
        daily_turnover=float(np.mean([m.daily_turnover for m in metrics])),
        num_trades=round(float(np.mean([m.num_trades for m in metrics]))),
        costs=costs,
        cost_share=costs / gross if gross > 0 else None,
    )


def train_pool(
    config: Config,
    values: Mapping[str, Value | None],
    pool: list[Instrument],
    windows: Callable[[Instrument], tuple[MarketData, Any]],
    *,
    seed: int,
    total_timesteps: int,
) -> list[RecurrentPolicy]:
    """Train one policy on ``windows(instrument)`` (its training bars and normalisation) of
    every instrument of ``pool`` at once; return it once per instrument, with that one's spec."""
    configs = [trial_config(item.config, dict(values)) for item in pool]
    members = []
    for item, cfg in zip(pool, configs, strict=True):
        market, norm = windows(item)
        members.append(
            Member(market, EngineSettings.from_config(cfg, norm, item.meta.clip_zscore, 1))
        )
    result = fit(
        configs[0].model_copy(update={"seed": seed}), members, total_timesteps=total_timesteps
    )
    return [RecurrentPolicy(result.model, spec) for spec in result.specs]


def run_research(config: Config, *, output: Path, work: Path) -> ResearchSummary:
    """Run the study to ``research.trials`` finished trials, test the best configuration, and
    write ``summary.json`` and ``report.html`` into ``output``."""
    import mlflow
    import optuna

    research, tuning = config.research, config.tuning
    if not research.instruments:
        raise ConfigError("research.instruments is empty: name the instruments to pool")
    if not tuning.space:
        raise ConfigError("tuning.space is empty: the research study searches it")
    pool = [prepare(config, symbol, work) for symbol in research.instruments]
    n_folds = len(research.fold_ids)
    fold_benchmarks = {
        item.symbol: [_benchmarks(item, fold) for fold in item.folds] for item in pool
    }
    experiment_id = configure(f"{config.registry.experiment}-research")

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, tuning.space)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"research-{trial.number}"
        ) as run:
            cfg = trial_config(config, values)
            mlflow.set_tags(lineage_tags(cfg, {}))
            mlflow.set_tags({"ijules.stage": "research", "ijules.trial": str(trial.number)})
            mlflow.log_params({f"research.{k}": v for k, v in values.items()})
            trial.set_user_attr("params_md5", cfg.policy_digest())
            trial.set_user_attr("run_id", run.info.run_id)
            folds: list[dict[str, Any]] = []
            for k in range(n_folds):
                backtests = _fold_backtests(config, values, pool, k)
                record = {
                    item.symbol: _fold_record(item, k, runs, fold_benchmarks[item.symbol][k])
                    for item, runs in zip(pool, backtests, strict=True)
                }
                folds.append(record)
                trial.set_user_attr("folds", folds)
                sharpes = [np.mean(r["seed_sharpes"]) for f in folds for r in f.values()]
                mlflow.log_metric("research_fold_sharpe", float(np.mean(sharpes)), step=k)
                trial.report(float(np.mean(sharpes)), k)
                if k < n_folds - 1 and trial.should_prune():
                    mlflow.set_tag("ijules.trial_state", "PRUNED")
                    raise optuna.TrialPruned()
            value = float(np.mean(sharpes))
            per_bar = [r["agent_moments"][0] for f in folds for r in f.values()]
            trial.set_user_attr("sharpe_per_bar", float(np.mean(per_bar)))
            mlflow.log_metrics({"research_sharpe": value})
            mlflow.set_tag("ijules.trial_state", "COMPLETE")
            return value

    name = _study_name(config)
    study = run_study(config, name, research.storage, research.trials, objective)
    summary, curves = _summarise(config, name, study, pool)
    output.mkdir(parents=True, exist_ok=True)
    summary.write(output / RESEARCH_SUMMARY)
    write_report(summary, curves, output / RESEARCH_REPORT)
    log.info("research: %s", summary.conclusion)
    return summary


def _study_name(config: Config) -> str:
    research = config.research
    scored = {
        "space": {k: v.model_dump(mode="json") for k, v in config.tuning.space.items()},
        "research": research.model_dump(mode="json", exclude={"trials", "final_seeds"}),
        "sources": {
            symbol: md5_file(Path(spec.source)) for symbol, spec in research.instruments.items()
        },
        "policy": config.searched_digest(),
        "features": config.digest("features", "split", "walk_forward", "baselines"),
    }
    canonical = json.dumps(scored, sort_keys=True).encode()
    digest = hashlib.md5(canonical, usedforsecurity=False).hexdigest()[:10]
    return f"{config.tuning.study}-research-{digest}"


def _benchmarks(item: Instrument, fold: Fold) -> dict[str, Backtest]:
    norm = fold_norm(item.development.features, fold)
    window = slice(fold.test_start, fold.test_end)
    runs = rule_baselines(item.config, item.development, window, norm, item.meta.clip_zscore)
    return {name: runs[name] for name in BENCHMARKS}


def _fold_backtests(
    config: Config, values: Mapping[str, Value], pool: list[Instrument], k: int
) -> list[list[Backtest]]:
    """Each instrument's backtests of fold ``k`` (one per seed) of a pooled policy."""
    runs: list[list[Backtest]] = [[] for _ in pool]
    for s in range(config.research.seeds):
        policies = train_pool(
            config,
            values,
            pool,
            lambda item: (
                item.development.rows(slice(item.folds[k].train_start, item.folds[k].train_end)),
                fold_norm(item.development.features, item.folds[k]),
            ),
            seed=config.seed + s,
            total_timesteps=config.research.total_timesteps,
        )
        for i, (item, policy) in enumerate(zip(pool, policies, strict=True)):
            fold = item.folds[k]
            test = item.development.rows(slice(fold.test_start, fold.test_end))
            runs[i].append(backtest_policy(policy, test, trial_config(item.config, dict(values))))
    return runs


def _fold_record(
    item: Instrument, k: int, runs: list[Backtest], benchmarks: Mapping[str, Backtest]
) -> dict[str, Any]:
    """What a trial keeps of one instrument's fold (JSON, for the study's storage)."""
    per_year = item.meta.bars_per_year
    moments = SharpeMoments.of(bar_returns(side_by_side(runs)))
    fold = item.folds[k]
    return {
        "fold": k,
        "test_first": str(pd.Timestamp(item.development.timestamps[fold.test_start])),
        "test_last": str(pd.Timestamp(item.development.timestamps[fold.test_end - 1])),
        "agent": entry(runs, per_year).model_dump(),
        "agent_moments": [
            moments.sharpe,
            moments.observations,
            moments.skewness,
            moments.kurtosis,
        ],
        "seed_sharpes": [sharpe_ratio(run.returns, per_year) for run in runs],
        "benchmarks": {name: entry(run, per_year).model_dump() for name, run in benchmarks.items()},
    }


def _summarise(
    config: Config, name: str, study: Any, pool: list[Instrument]
) -> tuple[ResearchSummary, dict[str, pd.DataFrame]]:
    research = config.research
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED]
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    if not complete:
        raise ConfigError(f"research: no trial of study {name} completed; nothing to test")
    best = max(complete, key=lambda t: float(t.value))
    per_bar = [float(t.user_attrs["sharpe_per_bar"]) for t in complete]
    # With one completed trial there is no spread to measure: the DSR is then the PSR.
    variance = float(np.var(per_bar, ddof=1)) if len(per_bar) > 1 else 0.0
    n_trials = len(trials)
    rows = [_row(t) for t in trials]
    values = dict(best.params)
    pooled = final_runs(config, values, pool)
    untargeted = final_runs(config, {**values, "environment.volatility_target": None}, pool)
    results, curves = {}, {}
    for i, item in enumerate(pool):
        folds = [
            _fold(record[item.symbol], n_trials, variance) for record in best.user_attrs["folds"]
        ]
        runs = {
            "pooled": pooled[i],
            "untargeted": untargeted[i],
            "alone": final_runs(config, values, [item])[0],
        }
        results[item.symbol], curves[item.symbol] = _final(
            item, values, runs, folds, n_trials, variance
        )
    summary = ResearchSummary(
        study=name,
        instruments=[item.symbol for item in pool],
        trials=n_trials,
        complete=len(complete),
        pruned=sum(t.state.name == "PRUNED" for t in trials),
        seeds=research.seeds,
        folds=len(research.fold_ids),
        total_timesteps=research.total_timesteps,
        final_seeds=research.final_seeds,
        final_timesteps=config.training.total_timesteps,
        best_number=best.number,
        best_value=float(best.value),
        best_params=values,
        trial_sharpe_variance=variance,
        rows=rows,
        results=results,
        conclusion="",
    )
    return summary.model_copy(update={"conclusion": conclusion(summary)}), curves


def _row(trial: Any) -> TrialRow:
    folds = trial.user_attrs.get("folds", [])
    return TrialRow(
        number=trial.number,
        state=trial.state.name,
        params=dict(trial.params),
        value=trial.value if trial.state.name == "COMPLETE" else None,
        fold_sharpes=[
            float(np.mean([np.mean(r["seed_sharpes"]) for r in fold.values()])) for fold in folds
        ],
        fold_sharpes_per_bar=[
            float(r["agent_moments"][0]) for fold in folds for r in fold.values()
        ],
        params_md5=str(trial.user_attrs.get("params_md5", "")),
        run_id=str(trial.user_attrs.get("run_id", "")),
    )


def _fold(record: Mapping[str, Any], n_trials: int, variance: float) -> ResearchFold:
    agent = ResearchEntry.model_validate(record["agent"])
    sharpe, observations, skewness, kurtosis = record["agent_moments"]
    moments = SharpeMoments(sharpe, int(observations), skewness, kurtosis)
    return ResearchFold(
        fold=int(record["fold"]),
        test_first=record["test_first"],
        test_last=record["test_last"],
        agent=agent.model_copy(update={"dsr": _dsr(moments, n_trials, variance)}),
        seed_sharpes=[float(v) for v in record["seed_sharpes"]],
        benchmarks={k: ResearchEntry.model_validate(v) for k, v in record["benchmarks"].items()},
    )


def _dsr(moments: SharpeMoments, n_trials: int, variance: float) -> float:
    # Without a spread of trials, the Sharpe estimator's own variance stands in (as walk-forward).
    floor = moments.variance_factor() / max(moments.observations - 1, 1)
    return deflated_sharpe_ratio(moments, n_trials, variance if variance > 0 else floor)


Values = Mapping[str, Value | None]


def _final(
    item: Instrument,
    values: Values,
    runs: Mapping[str, list[Backtest]],
    folds: list[ResearchFold],
    n_trials: int,
    variance: float,
) -> tuple[ResearchInstrument, pd.DataFrame]:
    """One instrument's held-out test: the pooled policy (``runs["pooled"]``), the ablations and
    the benchmarks; and the equity curves the report plots."""
    per_year = item.meta.bars_per_year
    test_market = item.history.rows(item.test)
    cfg = trial_config(item.config, dict(values))
    rules = rule_baselines(cfg, item.history, item.test, item.meta.norm, item.meta.clip_zscore)
    benchmarks = {name: entry(rules[name], per_year) for name in BENCHMARKS}
    pooled = runs["pooled"]
    moments = SharpeMoments.of(bar_returns(side_by_side(pooled)))
    agent = entry(pooled, per_year)
    agent = agent.model_copy(update={"dsr": _dsr(moments, n_trials, variance)})
    best_rule = max(RULES, key=lambda name: benchmarks[name].sharpe)
    result = ResearchInstrument(
        symbol=item.symbol,
        test_first=str(pd.Timestamp(test_market.timestamps[0])),
        test_last=str(pd.Timestamp(test_market.timestamps[-1])),
        test_bars=len(test_market),
        agent=agent,
        seed_sharpes=[sharpe_ratio(run.returns, per_year) for run in pooled],
        benchmarks=benchmarks,
        best_rule=best_rule,
        beats_passive=agent.sharpe >= benchmarks[PASSIVE].sharpe,
        beats_best_rule=agent.sharpe >= benchmarks[best_rule].sharpe,
        walk_forward=folds,
        without_volatility_target=entry(runs["untargeted"], per_year),
        trained_alone=entry(runs["alone"], per_year),
    )
    curves = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(pooled[0].timestamps),
            "agent": side_by_side(pooled),
            **{name: rules[name].equity for name in BENCHMARKS},
        }
    )
    return result, curves


def final_runs(config: Config, values: Values, pool: list[Instrument]) -> list[list[Backtest]]:
    """Per instrument of ``pool``, the test-window backtests (one per final seed) of a policy
    trained on the development bars of every instrument of ``pool``."""
    import mlflow

    runs: list[list[Backtest]] = [[] for _ in pool]
    experiment_id = configure(f"{config.registry.experiment}-research")
    symbols = "+".join(item.symbol for item in pool)
    for s in range(config.research.final_seeds):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"research-final-{symbols}"):
            mlflow.set_tags({"ijules.stage": "research_final", "ijules.instruments": symbols})
            mlflow.log_params({f"research.{k}": v for k, v in values.items()})
            policies = train_pool(
                config,
                values,
                pool,
                lambda item: (item.development, item.meta.norm),
                seed=config.seed + s,
                total_timesteps=config.training.total_timesteps,
            )
        for i, (item, policy) in enumerate(zip(pool, policies, strict=True)):
            cfg = trial_config(item.config, dict(values))
            runs[i].append(backtest_policy(policy, item.history.rows(item.test), cfg))
    return runs


def conclusion(summary: ResearchSummary) -> str:
    """A plain sentence per instrument: does the agent beat the benchmarks after costs?"""
    parts = []
    for symbol, result in summary.results.items():
        rule = result.best_rule
        verdict = (
            "beats passive buy-and-hold and every rule"
            if result.beats_passive and result.beats_best_rule
            else "beats passive buy-and-hold but not the best rule"
            if result.beats_passive
            else "beats the best rule but not passive buy-and-hold"
            if result.beats_best_rule
            else "loses to passive buy-and-hold and to the best rule"
        )
        parts.append(
            f"{symbol}: the pooled agent {verdict} on the held-out test window (Sharpe "
            f"{result.agent.sharpe:+.2f}, DSR {result.agent.dsr or 0.0:.2f} over "
            f"{summary.trials} trials, against passive {result.benchmarks[PASSIVE].sharpe:+.2f} "
            f"and the best rule, {rule}, {result.benchmarks[rule].sharpe:+.2f})."
        )
    significant = all((r.agent.dsr or 0.0) >= 0.95 for r in summary.results.values())
    parts.append(
        "Its Sharpe ratio is significant after deflation on every instrument."
        if significant
        else "No edge is established: the deflated Sharpe ratio stays under 0.95, so the gate "
        "keeps refusing the agent."
    )
    return " ".join(parts)
