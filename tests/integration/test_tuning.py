"""The Optuna study: trials on the walk-forward folds, counted as trials, never the test window."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ijules.artifacts import TuningReport
from ijules.errors import ConfigError
from ijules.evaluation.trials import count
from ijules.evaluation.tuning import _report, run_tuning, trial_config
from ijules.evaluation.walk_forward import tried

pytestmark = pytest.mark.slow

SPACE = {
    "training.learning_rate": {"low": 1e-4, "high": 1e-3, "log": True},
    "environment.volatility_target": {"low": 0.05, "high": 0.4},
    "reward.kind": {"choices": ["pnl", "differential_sharpe"]},
}


def tuning(tmp_path, **overrides):
    return {
        "tuning": {
            "trials": 3,
            "total_timesteps": 128,
            "storage": f"sqlite:///{tmp_path}/optuna/study.db",
            "space": SPACE,
            **overrides,
        }
    }


def test_a_study_scores_trials_on_the_folds_counts_them_and_resumes(workspace, tmp_path) -> None:
    ws = workspace(tuning(tmp_path))
    ws.prepare_data()
    report = run_tuning(
        ws.config,
        features=ws.path("features"),
        meta=ws.path("feature_meta"),
        output=ws.path("tuning"),
    )
    assert report.trials == 3 and report.folds == len(ws.config.walk_forward.fold_ids)
    assert TuningReport.read(ws.path("tuning")) == report
    client = MlflowClient()
    for row in report.rows:
        assert set(row.params) == set(ws.config.tuning.space) >= set(SPACE)
        run = client.get_run(row.run_id)
        assert run.data.tags["ijules.stage"] == "tune"
        assert run.data.tags["params.md5"] == row.params_md5
        # The trial trained with its own values: they are in its configuration's digest.
        assert row.params_md5 == trial_config(ws.config, row.params).policy_digest()
        if row.state == "COMPLETE":
            assert len(row.fold_sharpes) == report.folds
            assert row.value == pytest.approx(np.mean(row.fold_sharpes))
            assert len(row.fold_sharpes_per_bar) == report.folds
    assert len({row.params_md5 for row in report.rows}) == 3
    # Every configuration tried enters the ledger and counts in the DSR's trials.
    ledger = tmp_path / "ledger.jsonl"
    entered = tried(ws.config, [], ledger=ledger, tuning=ws.path("tuning"))
    assert count(entered)[0] == 1 + 3
    assert [e.source for e in entered] == ["walk_forward", "tune", "tune", "tune"]
    best = max((r for r in report.rows if r.value is not None), key=lambda r: r.value or 0.0)
    assert (report.best_number, report.best_params) == (best.number, best.params)

    # The study is complete: a rerun trains nothing and reports the same trials.
    again = run_tuning(
        ws.config,
        features=ws.path("features"),
        meta=ws.path("feature_meta"),
        output=ws.path("tuning"),
    )
    assert again == report
    assert count(tried(ws.config, [], ledger=ledger, tuning=ws.path("tuning")))[0] == 1 + 3


def test_the_test_window_never_reaches_a_trial(workspace, tmp_path) -> None:
    """Scramble every test-window bar: the study's scores do not move."""
    ws = workspace(tuning(tmp_path / "a", trials=1))
    ws.prepare_data()
    clean = run_tuning(
        ws.config,
        features=ws.path("features"),
        meta=ws.path("feature_meta"),
        output=tmp_path / "a.json",
    )
    table = pd.read_parquet(ws.path("features"))
    test = table["split"] == "test"
    rng = np.random.default_rng(0)
    for column in ("open", "high", "low", "close"):
        table.loc[test, column] = table.loc[test, column] * rng.uniform(0.5, 2.0, test.sum())
    scrambled = tmp_path / "scrambled.parquet"
    table.to_parquet(scrambled, index=False)
    other = ws.config.model_copy(
        update={
            "tuning": ws.config.tuning.model_copy(update={"storage": f"sqlite:///{tmp_path}/b.db"})
        }
    )
    dirty = run_tuning(
        other, features=scrambled, meta=ws.path("feature_meta"), output=tmp_path / "b.json"
    )
    assert dirty.rows[0].params == clean.rows[0].params
    assert dirty.rows[0].fold_sharpes == clean.rows[0].fold_sharpes


def test_a_trial_value_is_validated_like_params_yaml(make_config) -> None:
    config = make_config({"reward": {"kind": "pnl", "penalty_lambda": 0.5}})
    with pytest.raises(Exception, match="penalty_lambda charges USD"):
        trial_config(config, {"reward.kind": "differential_sharpe"})
    tried = trial_config(config, {"training.learning_rate": 5e-4, "reward.kind": "pnl"})
    assert tried.training.learning_rate == 5e-4 and tried.reward.penalty_lambda == 0.5


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("features.rsi_window", "is not a key of training, environment, reward"),
        ("training.learning_rates", "names no parameter of training"),
    ],
)
def test_the_space_names_tunable_parameters_only(make_config, key, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config({"tuning": {"space": {key: {"low": 1.0, "high": 2.0}}}})


def test_the_report_counts_pruned_and_failed_trials_and_picks_the_best_complete(
    make_config,
) -> None:
    study = optuna.create_study(direction="maximize")
    distributions = {"training.gamma": optuna.distributions.FloatDistribution(0.9, 0.999)}
    states = [
        (optuna.trial.TrialState.COMPLETE, 0.4, [0.3, 0.5]),
        (optuna.trial.TrialState.PRUNED, None, [2.0]),  # led, then was pruned: not the best
        (optuna.trial.TrialState.COMPLETE, 0.9, [0.8, 1.0]),
        (optuna.trial.TrialState.FAIL, None, []),
    ]
    for number, (state, value, folds) in enumerate(states):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params={"training.gamma": 0.95 + number / 100},
                distributions=distributions,
                user_attrs={"fold_sharpes": folds, "params_md5": f"d{number}", "run_id": "r"},
                intermediate_values={k: v for k, v in enumerate(folds)},
            )
        )
    report = _report(make_config(), "s", study, 2)
    assert (report.trials, report.complete, report.pruned) == (4, 2, 1)
    assert report.best_number == 2 and report.best_value == 0.9
    assert report.best_params == {"training.gamma": pytest.approx(0.97)}
    assert [row.value for row in report.rows] == [0.4, None, 0.9, None]
