"""The model card: gathered from the review's inputs, rendered with the registry's decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ijules.artifacts import (
    CardScenario,
    FeatureSet,
    GateCheck,
    GateDecision,
    MetricsReport,
    ModelCardFacts,
    Registration,
    WalkForwardSummary,
)
from ijules.errors import RegistryError
from ijules.registry.card import collect_facts, limits, locked_outputs, render_card
from tests.conftest import REPO
from tests.unit.test_artifacts import built

CHECKS = [
    GateCheck(metric="weights_sha256", value=1.0, threshold=1.0, rule="==", passed=True),
    GateCheck(metric="sharpe", value=-1.15, threshold=0.0, rule=">", passed=False),
    GateCheck(
        metric="beat_passive_buy_and_hold",
        value=-1.15,
        threshold=-0.76,
        rule=">",
        passed=False,
        note="agent below passive | after costs",
    ),
    GateCheck(metric="psr", value=0.12, threshold=0.95, rule=">=", passed=False),
]
# The features' md5 as the repository's dvc.lock records it (it moves when the lock is refreshed).
LOCKED_FEATURES = next(
    out.md5 for out in locked_outputs(REPO / "dvc.lock") if out.path.endswith("features.parquet")
)
TAGS = {
    "git.revision": "0123456789abcdef0123456789abcdef01234567-dirty",
    "params.md5": "feedface" * 4,
    "dvc.md5.features": LOCKED_FEATURES,  # the one dvc.lock records
    "dvc.md5.feature_meta": "0" * 32,
    "mlflow.user": "not lineage",
}


def registration(**changes: Any) -> Registration:
    base = Registration(
        model_name="ijules-policy",
        version="7",
        run_id="run7",
        status="champion",
        alias="champion",
        reasons=["passed the review; no champion yet"],
        gate=GateDecision.of(CHECKS),
        proposed_alias="champion",
        weights_sha256="ab" * 32,
        decided_by="risk-officer-ro",
        decision_reason="risk committee <12>",
    )
    return base.model_copy(update=changes)


def evaluation(agent_sharpe: float) -> MetricsReport:
    report = MetricsReport.read(REPO / "reports" / "metrics.json")
    return report.model_copy(
        update={"agent": report.agent.model_copy(update={"sharpe": agent_sharpe})}
    )


def facts(make_config: Any, agent_sharpe: float = -1.15) -> ModelCardFacts:
    feature_set = built()["feature set"]
    assert isinstance(feature_set, FeatureSet)
    gathered = collect_facts(
        make_config(),
        registration=registration(),
        registered_at_ms=1_767_225_600_000,
        feature_set=feature_set,
        evaluation=evaluation(agent_sharpe),
        walk_forward=WalkForwardSummary.read(REPO / "reports" / "walk_forward" / "summary.json"),
        stress=None,
        run_tags=TAGS,
        lock=REPO / "dvc.lock",
    )
    scenarios = [
        CardScenario(
            scenario="flash_crash", survived=True, agent_total_return=-0.012, max_drawdown=0.034
        ),
        CardScenario(
            scenario="covid_2020", survived=False, agent_total_return=-0.21, max_drawdown=0.31
        ),
    ]
    return gathered.model_copy(update={"stress": scenarios})


def test_card_shows_every_review_row_and_who_decided(make_config) -> None:
    card = render_card(facts(make_config), registration())
    for check in CHECKS:
        assert f"| {check.metric} | {check.rule} | {check.threshold:.4g} | {check.value:.4g} |" in (
            card.markdown
        )
        assert f"<td>{check.metric}</td><td>{check.rule}</td>" in card.html.replace("&gt;", ">")
    assert "agent below passive \\| after costs" in card.markdown  # a pipe stays in its cell
    assert "| decided by | risk-officer-ro |" in card.markdown
    assert "<td>decided by</td><td>risk-officer-ro</td>" in card.html
    assert "risk committee &lt;12&gt;" in card.html and "<12>" not in card.html
    assert "| weights sha256 | " + "ab" * 32 + " |" in card.markdown
    assert card.html.startswith("<!DOCTYPE html>") and card.html.rstrip().endswith("</html>")


def test_card_names_data_parameters_code_and_the_tables_given(make_config) -> None:
    gathered = facts(make_config)
    card = render_card(gathered, registration()).markdown
    assert "| train | 2017-07-01T11:00:00+00:00 | b | 1200 |" in card
    assert f"| features | data/features/features.parquet | {LOCKED_FEATURES} |" in card
    assert f"| features | {LOCKED_FEATURES} | yes |" in card  # trained on the lock's
    assert "| feature_meta | " + "0" * 32 + " | no |" in card
    assert "The training run read data that dvc.lock does not record" in card
    assert f"| policy (Config.policy_digest) | {make_config().policy_digest()} |" in card
    assert "differs from the one it was trained with" in card
    assert "| git revision at training | 0123456789abcdef0123456789abcdef01234567 (dirty) |" in card
    assert "| git revision at review | " in card and "| stable-baselines3 | " in card
    assert "| 1 | 2019-02-16 22:00:00 to 2019-04-20 09:00:00 | -0.553 | 3.923 |" in card
    assert "| covid_2020 | no | -21.00% | 31.00% |" in card
    assert gathered.walk_forward is not None and len(gathered.walk_forward) == 3
    without = gathered.model_copy(update={"walk_forward": None, "stress": None})
    plain = render_card(without, registration()).markdown
    assert "No walk-forward summary was given" in plain and "No stress report was given" in plain


def test_limits_say_the_agent_does_not_beat_the_benchmarks_when_its_sharpe_is_below(
    make_config,
) -> None:
    below = limits(facts(make_config, agent_sharpe=-1.15))
    assert "does not beat the simple benchmarks" in below
    assert "-1.15 against -0.76 for passive buy-and-hold and 0.60 for the best rule (macd)" in below
    assert "2772 bars (2019-06-23T22:00:00+00:00 to 2019-10-17T09:00:00+00:00)" in below
    assert "beats both in 1 of 3 folds" in below
    between = limits(facts(make_config, agent_sharpe=0.0))
    assert "does not beat the best rule (macd)" in between and "it beats passive" in between
    above = limits(facts(make_config, agent_sharpe=2.0))
    assert "does not beat" not in above and "beats passive buy-and-hold (-0.76)" in above
    card = render_card(facts(make_config), registration()).markdown
    assert below in card


def test_card_refuses_facts_of_another_version(make_config) -> None:
    with pytest.raises(RegistryError, match="describe ijules-policy v7"):
        render_card(facts(make_config), registration(version="8"))


def test_facts_read_back_as_written(make_config, tmp_path: Path) -> None:
    gathered = facts(make_config)
    gathered.write(tmp_path / "card_facts.json")
    assert ModelCardFacts.read(tmp_path / "card_facts.json") == gathered


def test_locked_outputs_are_the_data_stages_outputs(tmp_path: Path) -> None:
    outputs = locked_outputs(REPO / "dvc.lock")
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    assert [(o.stage, o.path, o.md5) for o in outputs] == [
        (stage, out["path"], out["md5"])
        for stage in ("ingest", "validate", "features")
        for out in lock[stage]["outs"]
    ]
    assert locked_outputs(tmp_path / "dvc.lock") == []
