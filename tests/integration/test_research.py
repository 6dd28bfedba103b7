"""The research study: one policy pooled over BTC/USD and EUR/USD, searched on each instrument's
walk-forward folds, tested once per instrument beside the benchmarks, its trials counted."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ijules.artifacts import RESEARCH_REPORT, RESEARCH_SUMMARY, FeatureSet, ResearchSummary
from ijules.evaluation.research import run_research
from ijules.evaluation.trials import count
from ijules.evaluation.walk_forward import tried
from tests.conftest import SAMPLES

pytestmark = pytest.mark.slow

SPACE = {
    "training.learning_rate": {"low": 1e-4, "high": 1e-3, "log": True},
    "environment.volatility_target": {"low": 0.05, "high": 0.4},
}


def research(tmp_path, btc=None, **overrides):
    return {
        "research": {
            "instruments": {
                "BTCUSD": {"source": str(btc or SAMPLES / "btcusd_1h.csv.gz")},
                "EURUSD": {
                    "source": str(SAMPLES / "eurusd_1h.csv.gz"),
                    "calendar": "fx_24x5",
                    "asset_class": "fx",
                },
            },
            "trials": 3,
            "seeds": 2,
            "total_timesteps": 128,
            "final_seeds": 2,
            "test_bars": 150,
            "storage": f"sqlite:///{tmp_path}/optuna/research.db",
            **overrides,
        },
        "tuning": {"space": SPACE, "startup_trials": 1},
    }


def test_the_study_pools_instruments_and_reports_each_beside_its_benchmarks(
    workspace, tmp_path
) -> None:
    ws = workspace(research(tmp_path))
    output, work = tmp_path / "research", tmp_path / "work"
    summary = run_research(ws.config, output=output, work=work)

    assert ResearchSummary.read(output / RESEARCH_SUMMARY) == summary
    assert summary.trials == 3 and summary.instruments == ["BTCUSD", "EURUSD"]
    html = (output / RESEARCH_REPORT).read_text()
    assert "BTCUSD" in html and "EURUSD" in html and "data:image/png;base64," in html
    # Each instrument is tested on its own held-out window, from its own features.
    for symbol, result in summary.results.items():
        span = FeatureSet.read(work / symbol / "meta.json").windows["test"]
        assert pd.Timestamp(result.test_first) == pd.Timestamp(span.start).replace(tzinfo=None)
        assert result.test_bars == span.rows
        assert set(result.benchmarks) >= {"passive_buy_and_hold", "tsmom", "macd"}
        assert len(result.seed_sharpes) == 2 and len(result.walk_forward) == 2
        # Deflating by three trials costs significance: the DSR never exceeds the PSR.
        assert result.agent.dsr is not None and result.agent.dsr <= result.agent.psr + 1e-12
        assert result.beats_passive == (
            result.agent.sharpe >= result.benchmarks["passive_buy_and_hold"].sharpe
        )
    eur = summary.results["EURUSD"]
    assert summary.results["BTCUSD"].test_first != eur.test_first  # different calendars and spans
    # The conclusion says, per instrument, what the figures say.
    for symbol, result in summary.results.items():
        sentence = summary.conclusion.split(f"{symbol}: ")[1].split(").")[0]
        assert sentence.startswith("the pooled agent beats passive") == result.beats_passive
        assert f"Sharpe {result.agent.sharpe:+.2f}" in sentence

    # Every trial is an MLflow run of the research experiment, and counts in the DSR's trials.
    client = MlflowClient()
    for row in summary.rows:
        tags = client.get_run(row.run_id).data.tags
        assert tags["ijules.stage"] == "research" and tags["ijules.trial_state"] == row.state
        if row.state == "COMPLETE":
            assert len(row.fold_sharpes) == summary.folds
    entered = tried(
        ws.config, [], ledger=tmp_path / "ledger.jsonl", research=output / RESEARCH_SUMMARY
    )
    assert count(entered)[0] == 1 + 3
    assert {e.source for e in entered[1:]} == {"research"}


def test_the_test_windows_never_reach_a_trial(workspace, tmp_path) -> None:
    """Scramble BTC/USD's test-window bars: every trial's fold scores stay as they were, while
    the held-out test (which does read them) moves."""
    clean_ws = workspace(research(tmp_path / "a", trials=2, final_seeds=1))
    clean = run_research(clean_ws.config, output=tmp_path / "a" / "out", work=tmp_path / "a" / "w")

    frame = pd.read_csv(SAMPLES / "btcusd_1h.csv.gz")
    test_start = pd.Timestamp(clean.results["BTCUSD"].test_first, tz="UTC")
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    inside = (stamps >= test_start).to_numpy()
    assert inside.sum() > 100
    rng = np.random.default_rng(0)
    factor = np.exp(np.cumsum(rng.normal(0, 0.02, inside.sum())))
    for column in ("open", "high", "low", "close"):
        frame.loc[inside, column] = frame.loc[inside, column].to_numpy() * factor
    scrambled = tmp_path / "btcusd_scrambled.csv.gz"
    with gzip.open(scrambled, "wt") as handle:
        frame.to_csv(handle, index=False)

    ws = workspace(research(tmp_path / "b", btc=scrambled, trials=2, final_seeds=1))
    moved = run_research(ws.config, output=tmp_path / "b" / "out", work=tmp_path / "b" / "w")
    assert [row.fold_sharpes for row in moved.rows] == [row.fold_sharpes for row in clean.rows]
    assert [row.params for row in moved.rows] == [row.params for row in clean.rows]
    before = clean.results["BTCUSD"].benchmarks["passive_buy_and_hold"].sharpe
    after = moved.results["BTCUSD"].benchmarks["passive_buy_and_hold"].sharpe
    assert after != pytest.approx(before)
    shutil.rmtree(tmp_path / "a" / "w")
