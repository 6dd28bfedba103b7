"""Walk-forward folds and every stress scenario, end to end with a tiny budget on real data."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from ijules.artifacts import FoldResult, fold_file
from ijules.errors import ArtifactError
from ijules.evaluation.baselines import BASELINES, RULES
from ijules.evaluation.config import StressConfig
from ijules.evaluation.risk_report import load_daily
from ijules.evaluation.stress import run_scenario, run_stress
from ijules.evaluation.trials import read_ledger
from ijules.evaluation.walk_forward import run_fold, run_summary
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_walk_forward_folds_train_on_the_past_and_test_on_what_follows(workspace) -> None:
    ws = workspace()
    ws.prepare_data()
    folds = ws.root / "reports" / "walk_forward" / "folds"
    for fold in ws.config.walk_forward.fold_ids:
        run_fold(
            ws.config,
            fold_id=fold,
            features=ws.path("features"),
            meta=ws.path("feature_meta"),
            output=folds / fold_file(fold),
            checkpoints=ws.root / "var" / "checkpoints",
        )
    results = [FoldResult.read(folds / fold_file(k)) for k in (0, 1, 2)]
    gap = ws.config.walk_forward.purge_bars + ws.config.walk_forward.embargo_bars
    hour = pd.Timedelta(hours=1)
    for earlier, later in itertools.pairwise(results):
        assert pd.Timestamp(earlier.window.test_last) < pd.Timestamp(later.window.test_first)
    for result in results:
        window = result.window
        assert pd.Timestamp(window.test_first) - pd.Timestamp(window.train_last) > gap * hour
        assert result.training.timesteps == ws.config.walk_forward.total_timesteps
        on_disk = json.loads((folds / fold_file(result.fold)).read_text())
        assert {"agent", "baselines", "best_rule"} <= set(on_disk)
        assert set(on_disk["baselines"]) == set(BASELINES)
        flat = result.baselines.flat
        assert flat.total_return == 0.0 and flat.costs == 0.0
        rules = {name: result.baselines.by_name()[name].sharpe for name in RULES}
        assert rules[result.best_rule] == max(rules.values())
    ledger = ws.root / "reports" / "trials" / "ledger.jsonl"
    summary = run_summary(
        ws.config,
        folds=folds,
        output=ws.root / "reports" / "walk_forward" / "summary.json",
        ledger=ledger,
    )
    assert summary.folds == 3 and summary.trials == 1
    assert summary.pass_rate == summary.folds_passed / 3
    for row in summary.table:
        assert row.dsr == pytest.approx(row.psr)  # one trial: nothing to deflate
    (entry,) = read_ledger(ledger)
    assert entry.params_md5 == ws.config.policy_digest() and entry.source == "walk_forward"
    assert entry.fold_sharpes_per_bar == [r.agent.significance.sharpe_per_bar for r in results]
    # Trials are configurations, counted from the ledger: a second configuration deflates.
    other = ws.config.model_copy(update={"seed": 99})
    again = run_summary(other, folds=folds, output=ws.root / "summary-2.json", ledger=ledger)
    assert again.trials == 2 and again.trial_sharpe_variance is not None
    assert all(row.dsr <= row.psr + 1e-12 for row in again.table)
    # A rerun adds nothing: the ledger holds each configuration once, its lines unchanged.
    before = ledger.read_bytes()
    rerun = run_summary(ws.config, folds=folds, output=ws.root / "summary-3.json", ledger=ledger)
    assert rerun.trials == 2 and ledger.read_bytes() == before
    # An edited line is refused by name, not counted.
    ledger.write_text(before.decode().replace('"walk_forward"', '"lucky"', 1))
    with pytest.raises(ArtifactError, match=r"ledger.jsonl, line 1: not a trial record"):
        run_summary(ws.config, folds=folds, output=ws.root / "summary-4.json", ledger=ledger)


def test_every_stress_scenario_runs_and_is_judged(workspace) -> None:
    ws = workspace()
    ws.prepare_data()
    ws.train()
    evaluation = ws.evaluate()
    scenarios = ws.root / "reports" / "stress" / "scenarios"
    for name in ws.config.stress.scenarios:
        run_scenario(
            ws.config,
            scenario=name,
            features=ws.path("features"),
            meta=ws.path("feature_meta"),
            model_dir=ws.root / "models",
            output=scenarios / f"{name}.json",
        )
    result = run_stress(
        ws.config,
        scenarios=scenarios,
        model_dir=ws.root / "models",
        output=ws.root / "reports" / "stress.json",
    )
    by_name = {s.scenario: s for s in result.scenarios}
    assert set(by_name) == set(StressConfig().scenarios)
    assert result.model.run_id == evaluation.model.run_id
    # Gathering refuses a missing scenario, and one run on another model, naming the file;
    # the last report stays as it was.
    written = (ws.root / "reports" / "stress.json").read_bytes()
    crash = scenarios / "market_crash_2008.json"
    kept = crash.read_text()
    crash.unlink()
    with pytest.raises(ArtifactError, match=r"market_crash_2008\.json not found"):
        run_stress(ws.config, scenarios=scenarios, model_dir=ws.root / "models",
                   output=ws.root / "reports" / "stress.json")  # fmt: skip
    crash.write_text(kept.replace(evaluation.model.run_id, "another-model"))
    with pytest.raises(ArtifactError, match="run on model another-model"):
        run_stress(ws.config, scenarios=scenarios, model_dir=ws.root / "models",
                   output=ws.root / "reports" / "stress.json")  # fmt: skip
    assert (ws.root / "reports" / "stress.json").read_bytes() == written
    for scenario in by_name.values():
        assert scenario.bars > 24
        assert set(scenario.checks.model_dump()) == {
            "agent_traded",
            "max_drawdown_within_limit",
            "equity_positive",
            "no_growth_while_restricted",
        }
        assert scenario.survived == all(scenario.checks.model_dump().values())
        assert scenario.breaker_violations == 0

    # The 2008 replay moves the instrument the way the index moved on the replayed days.
    closes = load_daily(ws.config, REPO / ws.config.risk_report.source)
    start, end = ws.config.stress.crisis_windows["market_crash_2008"]
    crisis = np.log(closes).diff().dropna().loc[start:end]
    crash = by_name["market_crash_2008"]
    replayed_days = pd.Timestamp(crash.end).floor("D") - pd.Timestamp(crash.start).floor("D")
    index_move = crisis.iloc[: replayed_days.days + 1].sum()
    assert np.sign(crash.asset_return) == np.sign(index_move)

    # Volatility x3 makes the risk-managed long's path rougher than in the plain test window.
    plain = evaluation.baselines.risk_managed_long
    assert by_name["volatility_x3"].risk_managed_long.max_drawdown > plain.max_drawdown
    # A liquidity crisis makes the same long trades cost more.
    assert by_name["liquidity_crisis"].risk_managed_long.total_cost > 2 * plain.total_cost
    # A correlation breakdown trips the risk engine's halt, and the halt lifts after it: forced
    # on for the middle third of the window only, it leaves bars to trade before and after.
    reasons = by_name["correlation_breakdown"].risk_managed_long.risk_engine.by_reason
    assert any("correlations broke down" in reason for reason in reasons)
    assert any(reason.startswith("halt lifted") for reason in reasons)
