"""The phase-4 curriculum on a real engine: constraints, gates, advancement and adaptation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ijules.env.engine import Engine, EngineSettings
from ijules.env.safeguards import Safeguards
from ijules.training.config import CurriculumStage
from ijules.training.curriculum import Curriculum, passes, regime_starts
from tests.unit.env.conftest import market_of, norm_of

PASSING = {
    "sharpe_ratio": 1.0,
    "max_drawdown_pct": 0.01,
    "win_rate_pct": 0.6,
    "information_ratio": 0.5,
    "calmar_ratio": 3.0,
}
FAILING = {**PASSING, "max_drawdown_pct": 0.2}


@pytest.fixture
def phase4(make_config):
    return make_config(phase="phase4_adaptive_curriculum")


@pytest.fixture
def engine(phase4, btc_1h: pd.DataFrame) -> Engine:
    market = market_of(btc_1h.iloc[:3000].reset_index(drop=True), phase4)
    settings = EngineSettings.from_config(phase4, norm_of(market), 5.0, 1)
    return Engine(
        market, settings, Safeguards(phase4.safeguards), n_envs=2, episode_bars=64, seed=0
    )


def without_adaptation(config: Any) -> Any:
    adaptation = config.curriculum.difficulty_adaptation.model_copy(update={"enabled": False})
    return config.curriculum.model_copy(update={"difficulty_adaptation": adaptation})


def test_the_first_stage_sets_its_constraints_and_regimes(phase4, engine: Engine) -> None:
    base = engine.settings
    Curriculum(phase4.curriculum, engine)
    # The settings describe what the step runs with, and the step runs with them.
    assert engine.settings.limits.max_single == min(base.limits.max_single, 0.10)
    assert engine.sim.param("max_single") == engine.settings.limits.max_single
    assert engine.settings.limits.max_trade == engine.sim.param("max_trade") == 0.008
    low = regime_starts(engine)["low_volatility"]
    assert engine.start_pool is not None and set(engine.start_pool) <= set(low)
    sigma = engine.market.sigma.mean(axis=1)
    assert sigma[engine.start_pool].max() <= np.quantile(sigma, 1 / 3) + 1e-15


def test_advancing_needs_the_minimum_episodes_a_streak_and_out_of_sample_validation(
    phase4, engine: Engine
) -> None:
    verdicts = iter([False, True])
    calls: list[str] = []

    def validator(stage: CurriculumStage, _engine: Engine) -> tuple[bool, dict[str, Any]]:
        calls.append(stage.name)
        return next(verdicts), {"validation": {"sharpe_ratio": 0.0}}

    curriculum = Curriculum(without_adaptation(phase4), engine, validator)
    for _ in range(45):
        curriculum.record_episode(PASSING)
    curriculum.record_episode(FAILING)  # the streak restarts
    for _ in range(9):
        curriculum.record_episode(PASSING)
    assert curriculum.stage_index == 0 and calls == []  # 55 episodes, but a streak of 9
    curriculum.record_episode(PASSING)  # streak of 10: the validation gate is asked
    assert calls == ["Risk-Aware Foundation"] and curriculum.stage_index == 0
    assert curriculum.streak == 0  # a failed validation restarts the streak
    for _ in range(10):
        curriculum.record_episode(PASSING)
    assert curriculum.stage_index == 1 and len(calls) == 2
    assert engine.settings.limits.max_trade == engine.sim.param("max_trade") == 0.015
    assert [entry["kind"] for entry in curriculum.history] == ["start", "validation", "advance"]


def test_targets_include_information_and_calmar_where_the_stage_sets_them(phase4) -> None:
    proficiency = phase4.curriculum.stages["proficiency"]
    assert passes(
        proficiency,
        {**PASSING, "sharpe_ratio": 1.3, "win_rate_pct": 0.55, "information_ratio": 0.9},
    )
    assert not passes(
        proficiency,
        {
            **PASSING,
            "sharpe_ratio": 1.3,
            "win_rate_pct": 0.55,
            "information_ratio": 0.9,
            "calmar_ratio": 1.0,
        },
    )


def test_consistent_outperformance_makes_the_stage_harder_and_underperformance_easier(
    phase4, engine: Engine
) -> None:
    base_costs = engine.sim.param("proportional")
    curriculum = Curriculum(phase4.curriculum, engine)
    for _ in range(20):
        curriculum.record_episode({**FAILING, "sharpe_ratio": 2.0})  # 3.3x the target
    assert curriculum.cost_scale == pytest.approx(1.25)
    assert engine.sim.param("proportional") == pytest.approx(1.25 * base_costs)
    assert engine.settings.costs.scale == pytest.approx(1.25)
    assert curriculum.regimes() == ["low_volatility", "medium_volatility"]
    for _ in range(40):
        curriculum.record_episode({**FAILING, "sharpe_ratio": -1.0})
    assert curriculum.cost_scale == pytest.approx(1.25 * 0.8 * 0.8)
    assert curriculum.regimes() == ["low_volatility"]
    assert [e["kind"] for e in curriculum.history].count("adapt") == 3


def test_a_checkpointed_curriculum_resumes_where_it_was(phase4, engine: Engine) -> None:
    first = Curriculum(phase4.curriculum, engine)
    for _ in range(20):
        first.record_episode({**FAILING, "sharpe_ratio": 2.0})
    state = first.state()
    second = Curriculum(phase4.curriculum, engine)
    second.restore(state)
    assert second.state() == state
    assert second.cost_scale == pytest.approx(1.25)
