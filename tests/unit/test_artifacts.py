"""The files stages hand each other: typed on both sides, the same JSON, loud when wrong."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ijules.artifacts import (
    Artifact,
    Attribution,
    BaselineReproduction,
    Baselines,
    BreakersReport,
    CriterionResult,
    DriftSummary,
    FeatureSet,
    FitCounts,
    FoldBacktest,
    FoldResult,
    FoldTraining,
    FoldWindow,
    GateCheck,
    GateDecision,
    IngestReport,
    LeftOutExperiment,
    MetricsReport,
    MlflowRecord,
    NormStats,
    PhaseFigures,
    PhaseResult,
    PhasesSummary,
    PolicyRecord,
    PolicySpec,
    RegimeFitCounts,
    Registration,
    ReproducedMetric,
    SeedSpread,
    Significance,
    StressReport,
    TrainingRecord,
    TuningReport,
    ValidationResult,
    VarBacktestReport,
    WalkForwardSummary,
    WindowSpan,
    fold_file,
)
from ijules.errors import ArtifactError, IjulesError
from tests.conftest import REPO

# The reports the repository commits, each with the model its readers go through.
COMMITTED: dict[str, type[Artifact]] = {
    "reports/ingest.json": IngestReport,
    "reports/validation/result.json": ValidationResult,
    "reports/metrics.json": MetricsReport,
    "reports/walk_forward/summary.json": WalkForwardSummary,
    "reports/stress.json": StressReport,
    "reports/drift/drift_metrics.json": DriftSummary,
    "reports/risk/var_backtest.json": VarBacktestReport,
    "reports/risk/breakers.json": BreakersReport,
    "reports/seeds.json": SeedSpread,
    "reports/tuning/study.json": TuningReport,
}


def committed(relative: str) -> str:
    return (REPO / relative).read_text(encoding="utf-8")


def read_text(kind: type[Artifact], text: str, tmp_path: Path) -> Artifact:
    path = tmp_path / "in.json"
    path.write_text(text)
    return kind.read(path)


SIGNIFICANCE = Significance(
    sharpe_per_bar=0.01,
    skewness=-0.2,
    kurtosis=4.5,
    observations=500,
    psr=0.6,
    min_track_record_bars=None,
    t_statistic=0.3,
    p_value=0.7,
    cohens_d=0.01,
)


def fold_backtest(sharpe: float) -> FoldBacktest:
    return FoldBacktest(
        sharpe=sharpe,
        max_drawdown=0.05,
        daily_turnover=0.4,
        total_return=0.01,
        num_trades=12,
        win_rate=0.5,
        significance=SIGNIFICANCE,
        costs=31.5,
        cost_bps=14.2,
    )


def built() -> dict[str, Artifact]:
    """One of each artifact the repository does not commit, built field by field."""
    norm = NormStats(mean=(0.001, -0.2), std=(0.02, 1.0))
    spec = PolicySpec(
        feature_names=("ret_1", "rsi_14"),
        norm=norm,
        clip_zscore=5.0,
        instruments=("BTCUSD",),
        risk_features=("portfolio_heat_ratio", "drawdown_velocity"),
        action_space="continuous",
        observation_shape=(5,),
        action_shape=(1,),
    )
    training = TrainingRecord(
        device="cpu",
        timesteps=256,
        resumed_from=0,
        diagnostics={"nan_incidents": 0.0, "train_entropy": -1.25},
        curriculum_stage=None,
    )
    window = FoldWindow(
        fold=1,
        train_start=0,
        train_end=400,
        test_start=436,
        test_end=586,
        train_first="2017-07-01 11:00:00",
        train_last="2017-07-18 02:00:00",
        test_first="2017-07-19 14:00:00",
        test_last="2017-07-25 19:00:00",
        purge_bars=1,
        embargo_bars=35,
        full_capital_fill_bps={"BTCUSD": 38.5},
    )
    check = GateCheck(metric="sharpe", value=-1.5, threshold=0.0, rule=">=", passed=False)
    return {
        "feature set": FeatureSet(
            feature_names=("ret_1", "rsi_14"),
            norm=norm,
            windows={
                "train": WindowSpan(start="2017-07-01T11:00:00+00:00", end="b", rows=1200),
                "test": WindowSpan(start="c", end="d", rows=300),
            },
            bars_per_year=8766.0,
            frequency="1h",
            calendar="continuous",
            symbol="BTCUSD",
            clip_zscore=5.0,
            regime_fits={
                "BTCUSD": RegimeFitCounts(
                    garch=FitCounts(refits=77, failed=1, at_persistence_bound=2), markov=None
                )
            },
        ),
        "policy, logged": PolicyRecord(
            spec=spec,
            mlflow=MlflowRecord(run_id="r1", tracking_uri="sqlite:///m.db", model_uri="models:/m"),
            training=training,
        ),
        "policy, before logging": PolicyRecord(
            spec=spec,
            mlflow=MlflowRecord(run_id="r1", tracking_uri="sqlite:///m.db"),
            training=training,
        ),
        "fold": FoldResult(
            fold=1,
            scheme="expanding",
            window=window,
            training=FoldTraining(timesteps=128, run_id="r2"),
            agent=fold_backtest(-1.5),
            baselines=Baselines[FoldBacktest](
                passive_buy_and_hold=fold_backtest(0.8),
                risk_managed_long=fold_backtest(0.5),
                tsmom=fold_backtest(-0.3),
                macd=fold_backtest(0.1),
                flat=fold_backtest(0.0),
                random=fold_backtest(-2.0),
            ),
            best_rule="risk_managed_long",
            passed=False,
            reasons=["sharpe -1.5 is not >= 0"],
        ),
        "registration, decided now": Registration(
            model_name="ijules-policy",
            version="3",
            run_id="r3",
            status="rejected",
            alias=None,
            reasons=[check.reason],
            gate=GateDecision.of([check]),
        ),
        "registration, decided before": Registration(
            model_name="ijules-policy",
            version="2",
            run_id="r4",
            status="champion",
            alias="champion",
            reasons=["passed the gate; no champion yet"],
            champion_before="1",
        ),
        "baseline reproduction": BaselineReproduction(
            model_name="ijules-policy",
            version="2",
            run_id="r4",
            revision="73478e0a6f5d" * 3 + "abcd",
            tolerance=0.0,
            reproduced=False,
            metrics=[
                ReproducedMetric(
                    metric="sharpe",
                    registered=4.6752945318647265,
                    reproduced=4.675293531864726,
                    difference=-1e-06,
                    within_tolerance=False,
                )
            ],
            features_md5_registered="e3b0c442",
            features_md5_reproduced=None,
        ),
        "phases summary": PhasesSummary(
            baseline_rev="73478e0a6f5d" * 3 + "abcd",
            phases=[
                PhaseResult(
                    phase="phase4_adaptive_curriculum",
                    plan_phase=4,
                    goal="Curriculum Excellence",
                    status="run",
                    reason="",
                    experiment="phase-phase4_adaptive_curriculum",
                    rev="5d" * 20,
                    timestamp="2026-01-02T10:00:00",
                    figures=PhaseFigures(
                        sharpe=-1.15,
                        max_drawdown=0.0153,
                        daily_turnover=0.103,
                        win_rate=0.388,
                        information_ratio=-0.4,
                        calmar=-2.1,
                        episode_reward_mean=None,
                        curriculum_stage="proficiency",
                        passive_buy_and_hold_sharpe=0.9,
                        best_rule="macd",
                        best_rule_sharpe=1.1,
                    ),
                    criteria=[
                        CriterionResult(
                            criterion="Sharpe >1.8",
                            measure="sharpe",
                            threshold="> 1.8",
                            value=-1.15,
                            outcome="not met",
                            note="",
                        ),
                        CriterionResult(
                            criterion="Advancement gates (into Mastery)",
                            measure="curriculum_stage",
                            threshold="reached mastery or excellence",
                            value="proficiency",
                            outcome="not met",
                            note="",
                        ),
                    ],
                    gate="not met",
                )
            ],
            left_out=[LeftOutExperiment(name="tweak", rev="ab" * 20, reason="sets seed")],
        ),
    }


@pytest.mark.parametrize("name", list(built()))
def test_each_artifact_reads_back_as_it_was_written(name: str, tmp_path: Path) -> None:
    artifact = built()[name]
    path = tmp_path / "sub" / "artifact.json"
    artifact.write(path)
    again = type(artifact).read(path)
    assert again == artifact
    again.write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == path.read_text()


@pytest.mark.parametrize("relative", list(COMMITTED))
def test_committed_reports_read_and_write_back_byte_for_byte(relative: str, tmp_path) -> None:
    """Every key, value and the key order of today's files survive the models."""
    text = committed(relative)
    artifact = read_text(COMMITTED[relative], text, tmp_path)
    artifact.write(tmp_path / "out.json")
    assert (tmp_path / "out.json").read_text() == text


def test_keys_absent_from_a_file_stay_absent_and_null_stays_null(tmp_path: Path) -> None:
    records = built()
    before = json.loads(records["policy, before logging"].model_dump_json())
    assert "model_uri" not in before["mlflow"]
    assert before["training"]["curriculum_stage"] is None  # null, not absent
    assert json.loads(records["policy, logged"].model_dump_json())["mlflow"]["model_uri"]
    assert Attribution(beta=0.5).model_dump() == {"beta": 0.5}
    # A version decided by an earlier run has no gate: the file holds {} as it always did.
    decided = records["registration, decided before"]
    decided.write(tmp_path / "registry.json")
    assert json.loads((tmp_path / "registry.json").read_text())["gate"] == {}
    assert Registration.read(tmp_path / "registry.json").gate is None


def test_a_missing_key_names_the_file_the_key_and_the_writer(tmp_path: Path) -> None:
    payload = json.loads(committed("reports/metrics.json"))
    del payload["agent"]["sharpe"]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError) as error:
        MetricsReport.read(path)
    message = str(error.value)
    assert str(path) in message
    assert "agent.sharpe: Field required" in message
    assert "ijules evaluate" in message
    assert isinstance(error.value, IjulesError)  # the CLI prints it as one line


def test_a_wrong_type_names_the_file_and_the_key(tmp_path: Path) -> None:
    payload = json.loads(committed("reports/stress.json"))
    payload["survived"] = "6"  # strict: a count is a number, not text
    payload["scenarios"][2]["checks"]["equity_positive"] = 1
    path = tmp_path / "stress.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError) as error:
        StressReport.read(path)
    message = str(error.value)
    assert str(path) in message
    assert "survived: Input should be a valid integer" in message
    assert "scenarios.2.checks.equity_positive: Input should be a valid boolean" in message


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    payload = json.loads(committed("reports/walk_forward/summary.json"))
    payload["table"][0]["agent_sharp"] = payload["table"][0].pop("agent_sharpe")
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match=r"table\.0\.agent_sharp: Extra inputs"):
        WalkForwardSummary.read(path)


def test_a_missing_file_names_the_command_that_writes_it(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "policy.json"
    with pytest.raises(ArtifactError, match=r"models/policy\.json not found \(run `ijules train`"):
        PolicyRecord.read(missing)
    assert PolicyRecord.read_if_present(missing) is None
    assert PolicyRecord.read_if_present(None) is None


def test_a_file_that_is_not_json_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{"feature_names": [')
    with pytest.raises(ArtifactError, match=r"meta\.json is not a valid FeatureSet .*Invalid JSON"):
        FeatureSet.read(path)


def test_nan_is_refused_on_write_and_leaves_the_last_good_file(tmp_path: Path) -> None:
    path = tmp_path / "fold_0.json"
    good = built()["fold"]
    good.write(path)
    before = path.read_text()
    broken = good.model_copy(update={"agent": fold_backtest(math.nan)})
    with pytest.raises(ValueError, match="not JSON compliant"):
        broken.write(path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold_0.json"]  # no temporary left


def test_models_are_frozen_and_strict() -> None:
    spec = built()["policy, logged"]
    assert isinstance(spec, PolicyRecord)
    with pytest.raises(ValueError, match="frozen"):
        spec.training.timesteps = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="valid integer"):
        FoldTraining(timesteps=True, run_id="r")  # a flag is not a count
    with pytest.raises(ValueError, match="portfolio_heat_ratio"):
        spec.spec.model_validate({**spec.spec.model_dump(), "risk_features": ("heat",)})


def test_fold_files_are_named_in_one_place() -> None:
    assert fold_file(0) == "fold_0.json"
    assert fold_file(12) == "fold_12.json"
