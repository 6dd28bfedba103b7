"""The hyper-parameter search: an Optuna study scored on the walk-forward folds.

Each trial draws values for ``tuning.space`` (TPE, seeded with the run's seed), trains the policy
on every walk-forward fold of the development bars with ``tuning.seeds`` training seeds and
``tuning.total_timesteps`` steps, and scores it by the mean out-of-sample Sharpe ratio over the
folds, after costs. The test window is never touched. After each fold the trial reports its
running mean and the median rule prunes it when it trails the finished trials. Every trial is
an MLflow run (stage ``tune``, tagged with the trial's configuration digest), and the report keeps
its per-fold Sharpe ratios, which the walk-forward summary enters in the trial ledger
(:mod:`ijules.evaluation.trials`) that the deflated Sharpe ratio counts.

The study lives in ``tuning.storage`` (a database URL: SQLite locally, PostgreSQL when several
workers run trials of one study at once) and runs until it holds ``tuning.trials`` finished
trials; a rerun with the study complete only rewrites the report. The study's name carries a
digest of what it searches and scores on (the space, the folds, the budget, the features), so
changing any of them starts a new study rather than mixing the two.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ijules.artifacts import FeatureSet, TrialRow, TuningReport
from ijules.config import Config
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.pooled_env import Member
from ijules.evaluation.config import SearchDimension
from ijules.evaluation.evaluate import backtest_policy
from ijules.evaluation.walk_forward import development_market, fold_norm, fold_windows
from ijules.io import md5_file
from ijules.tracking import configure, lineage_tags
from ijules.training.fit import fit
from ijules.training.policy import RecurrentPolicy

log = logging.getLogger(__name__)

Value = str | float | int
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def trial_config(config: Config, values: Mapping[str, Value | None]) -> Config:
    """``config`` with the trial's values set, each changed section validated like params.yaml
    (a trial changes training, environment or reward only, whose rules are their own)."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        current = getattr(config, section).model_dump(mode="json")
        sections.setdefault(section, current)[name] = value
    updates = {
        section: type(getattr(config, section)).model_validate_json(json.dumps(fields))
        for section, fields in sections.items()
    }
    return config.model_copy(update=updates)


def suggest(trial: Any, space: dict[str, SearchDimension]) -> dict[str, Value]:
    """Draw the trial's value of every dimension."""
    values: dict[str, Value] = {}
    for key, dimension in space.items():
        if dimension.choices is not None:
            values[key] = trial.suggest_categorical(key, list(dimension.choices))
        elif dimension.integer:
            low, high = int(dimension.low or 0), int(dimension.high or 0)
            values[key] = trial.suggest_int(key, low, high, log=dimension.log)
        else:
            low_f, high_f = float(dimension.low or 0.0), float(dimension.high or 0.0)
            values[key] = trial.suggest_float(key, low_f, high_f, log=dimension.log)
    return values


def study_name(config: Config, features: Path) -> str:
    """The configured name and a digest of what the study searches and scores on."""
    scored = {
        "space": {k: v.model_dump(mode="json") for k, v in config.tuning.space.items()},
        "seeds": config.tuning.seeds,
        "total_timesteps": config.tuning.total_timesteps,
        "policy": config.searched_digest(),
        "walk_forward": config.digest("walk_forward", "gate", "baselines"),
        "features": md5_file(features),
    }
    canonical = json.dumps(scored, sort_keys=True).encode()
    return f"{config.tuning.study}-{hashlib.md5(canonical, usedforsecurity=False).hexdigest()[:10]}"


def _ensure_sqlite_folder(url: str) -> None:
    """SQLite creates its file, not its folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def score_fold(
    config: Config, market: MarketData, meta: FeatureSet, fold_index: int
) -> tuple[float, float]:
    """Train on fold ``fold_index``'s training bars; return the test Sharpe (annualised) and
    the per-bar Sharpe of its returns, after costs."""
    fold = fold_windows(len(market), config.walk_forward)[fold_index]
    norm = fold_norm(market.features, fold)
    settings = EngineSettings.from_config(config, norm, meta.clip_zscore, market.n_instruments)
    result = fit(
        config,
        [Member(market.rows(slice(fold.train_start, fold.train_end)), settings)],
        total_timesteps=config.tuning.total_timesteps,
    )
    policy = RecurrentPolicy(result.model, result.spec)
    backtest = backtest_policy(policy, market.rows(slice(fold.test_start, fold.test_end)), config)
    returns = backtest.returns
    per_bar = float(np.mean(returns) / np.std(returns)) if np.std(returns) > 0 else 0.0
    return backtest.metrics(meta.bars_per_year).sharpe, per_bar


def run_tuning(config: Config, *, features: Path, meta: Path, output: Path) -> TuningReport:
    """Run the study to ``tuning.trials`` finished trials; write the report to ``output``."""
    import mlflow
    import optuna

    tuning = config.tuning
    feature_set = FeatureSet.read(meta)
    market = development_market(config, pd.read_parquet(features), feature_set)
    n_folds = len(fold_windows(len(market), config.walk_forward))
    experiment_id = configure(config.registry.experiment)
    inputs = {"features": features, "feature_meta": meta}

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, tuning.space)
        trial_cfg = trial_config(config, values)
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"tune-{trial.number}") as run:
            mlflow.set_tags(lineage_tags(trial_cfg, inputs))
            mlflow.set_tags({"ijules.stage": "tune", "ijules.trial": str(trial.number)})
            mlflow.log_params({f"tune.{k}": v for k, v in values.items()})
            trial.set_user_attr("run_id", run.info.run_id)
            trial.set_user_attr("params_md5", trial_cfg.policy_digest())
            sharpes: list[float] = []
            per_bar: list[float] = []
            for k in range(n_folds):
                scores = [
                    score_fold(
                        trial_cfg.model_copy(update={"seed": config.seed + s}),
                        market,
                        feature_set,
                        k,
                    )
                    for s in range(tuning.seeds)
                ]
                sharpes.append(float(np.mean([sharpe for sharpe, _ in scores])))
                per_bar.append(float(np.mean([value for _, value in scores])))
                trial.set_user_attr("fold_sharpes", sharpes)
                trial.set_user_attr("fold_sharpes_per_bar", per_bar)
                mlflow.log_metric("tune_fold_sharpe", sharpes[-1], step=k)
                trial.report(float(np.mean(sharpes)), k)
                if k < n_folds - 1 and trial.should_prune():
                    mlflow.set_tag("ijules.trial_state", "PRUNED")
                    raise optuna.TrialPruned()
            value = float(np.mean(sharpes))
            mlflow.log_metrics({"tune_sharpe": value})
            mlflow.set_tag("ijules.trial_state", "COMPLETE")
            return value

    name = study_name(config, features)
    study = run_study(config, name, tuning.storage, tuning.trials, objective)
    report = _report(config, name, study, n_folds)
    report.write(output)
    log.info(
        "tuning: study %s, %d trials (%d complete, %d pruned); best %s",
        name,
        report.trials,
        report.complete,
        report.pruned,
        "none" if report.best_value is None else f"{report.best_value:.2f} {report.best_params}",
    )
    return report


def run_study(
    config: Config, name: str, storage: str, trials: int, objective: Callable[[Any], float]
) -> Any:
    """Create or load the study ``name`` at ``storage`` (TPE seeded with ``seed``, the median
    pruner as ``tuning`` sets it) and run ``objective`` until it holds ``trials`` finished
    trials; other workers may be running trials of the same study."""
    import optuna

    _ensure_sqlite_folder(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=config.tuning.startup_trials,
            # prune_after_folds folds run before a trial may be pruned (steps count from 0).
            n_warmup_steps=max(config.tuning.prune_after_folds - 1, 0),
        ),
        load_if_exists=True,
    )
    states = tuple(getattr(optuna.trial.TrialState, state) for state in FINISHED)
    remaining = trials - len(study.get_trials(deepcopy=False, states=states))
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=states)],
            catch=(),
        )
    return study


def _report(config: Config, name: str, study: Any, n_folds: int) -> TuningReport:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        if state not in FINISHED:
            continue  # running in another worker
        rows.append(
            TrialRow(
                number=trial.number,
                state=state,
                params=dict(trial.params),
                value=trial.value if state == "COMPLETE" else None,
                fold_sharpes=list(trial.user_attrs.get("fold_sharpes", [])),
                fold_sharpes_per_bar=list(trial.user_attrs.get("fold_sharpes_per_bar", [])),
                params_md5=str(trial.user_attrs.get("params_md5", "")),
                run_id=str(trial.user_attrs.get("run_id", "")),
            )
        )
    complete = [row for row in rows if row.state == "COMPLETE" and row.value is not None]
    best = max(complete, key=lambda row: float(row.value or 0.0)) if complete else None
    return TuningReport(
        study=name,
        trials=len(rows),
        complete=len(complete),
        pruned=sum(row.state == "PRUNED" for row in rows),
        seeds=config.tuning.seeds,
        folds=n_folds,
        total_timesteps=config.tuning.total_timesteps,
        best_number=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_params={} if best is None else best.params,
        rows=rows,
    )
