from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ijules.config import REFUSED_KEYS, load_config
from ijules.errors import ConfigError
from tests.conftest import REPO, write_params


def test_repository_params_parse_into_frozen_config() -> None:
    config = load_config(REPO / "params.yaml")
    assert config.phase == "base"
    assert config.environment.position_limit == 1.0
    with pytest.raises(ValueError, match="frozen"):
        config.seed = 1  # type: ignore[misc]


def test_unknown_key_is_refused_by_its_dotted_name(make_config) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'environment\.initial_capitl'"):
        make_config({"environment": {"initial_capitl": 1.0}})


def test_ill_typed_key_is_refused_by_its_dotted_name(make_config) -> None:
    with pytest.raises(ConfigError, match=r"'training\.total_timesteps'.*'many'"):
        make_config({"training": {"total_timesteps": "many"}})


def test_yes_is_not_a_boolean(make_config) -> None:
    with pytest.raises(ConfigError, match=r"data\.cleaning\.sort"):
        make_config({"data": {"cleaning": {"sort": "yes"}}})


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"microstructure": {"transaction_costs": {"proportional_cost_bps": -1.0}}},
            "microstructure.transaction_costs.proportional_cost_bps",
        ),
        (
            {"microstructure": {"transaction_costs": {"fixed_cost_per_trade": -0.5}}},
            "microstructure.transaction_costs.fixed_cost_per_trade",
        ),
        ({"environment": {"max_gross_exposure": 1.2}}, "environment.max_gross_exposure"),
        ({"safeguards": {"nan_guard_strict": False}}, "safeguards.nan_guard_strict"),
        (
            {"observation": {"risk_features": ["portfolio_heat_ratio", "vibes"]}},
            "observation.risk_features",
        ),
        ({"environment": {"max_position_fraction": 1.5}}, "environment.max_position_fraction"),
        (
            {"environment": {"min_cash_reserve_fraction": 1.2}},
            "environment.min_cash_reserve_fraction",
        ),
        ({"data": {"timezone": "Mars/Olympus"}}, "data.timezone"),
        ({"data": {"frequency": "often"}}, "data.frequency"),
        ({"notify": {"risk_team": ["not-an-address"]}}, "notify.risk_team"),
        ({"notify": {"on_call": []}}, "notify.on_call"),
        ({"notify": {"on_call": ["pager at bank"]}}, "notify.on_call"),
        (
            {"stress": {"correlation_breakdown_span": [0.6, 0.4]}},
            "stress.correlation_breakdown_span",
        ),
        (
            {"stress": {"correlation_breakdown_span": [0.5, 1.5]}},
            "stress.correlation_breakdown_span",
        ),
    ],
)
def test_out_of_range_values_name_their_key(make_config, overrides, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config(overrides)


def test_split_must_leave_a_test_window(make_config) -> None:
    with pytest.raises(ConfigError, match="leave a test window"):
        make_config({"split": {"train_fraction": 0.8, "validation_fraction": 0.2}})


def test_cash_reserve_tightens_the_position_limit(make_config) -> None:
    config = make_config(
        {"environment": {"max_position_fraction": 0.95, "min_cash_reserve_fraction": 0.1}}
    )
    assert config.environment.position_limit == pytest.approx(0.9)


def test_phase_overlay_merges_over_params(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    (tmp_path / "config" / "tight.yaml").write_text(
        yaml.safe_dump({"environment": {"initial_capital": 50_000.0}})
    )
    config = load_config(params, phase="tight")
    assert config.phase == "tight"
    assert config.environment.initial_capital == 50_000.0
    assert config.environment.min_trade_weight == 0.02  # untouched keys keep params.yaml's value


def test_phase_selected_in_params_is_applied(tmp_path: Path) -> None:
    params = write_params(tmp_path, {"phase": "tight"})
    (tmp_path / "config" / "tight.yaml").write_text(yaml.safe_dump({"seed": 99}))
    assert load_config(params).seed == 99


def test_unknown_phase_lists_the_known_ones(make_config) -> None:
    with pytest.raises(ConfigError, match=r"unknown phase 'phase9'.*phase1_institutional"):
        make_config(phase="phase9")


def test_master_plan_phase_refuses_unimplemented_section_by_name(make_config) -> None:
    with pytest.raises(
        ConfigError,
        match=r"phase5_production_optimization\.yaml: "
        r"'portfolio_optimization' is not implemented yet",
    ):
        make_config(phase="phase5_production_optimization")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"safeguards": {"nan_guard_strict": True}}, "safeguards.nan_guard_strict"),
        ({"curriculum": {"architecture": "multi_stage_adaptive"}}, "curriculum.architecture"),
        (
            {"curriculum": {"advancement_gates": {"validation_method": "walk_forward"}}},
            "curriculum.advancement_gates.validation_method",
        ),
        (
            {
                "microstructure": {
                    "transaction_costs": {"turnover_penalty": {"penalty_curve": "almgren_chriss"}}
                }
            },
            "microstructure.transaction_costs.turnover_penalty.penalty_curve",
        ),
    ],
)
def test_a_key_that_would_change_nothing_is_refused_by_name(make_config, overrides, key) -> None:
    """The plan's descriptive keys (the only model there is, a guard always on) are refused:
    a value there would parse and then do nothing."""
    with pytest.raises(ConfigError, match=f"'{key.replace('.', '[.]')}' (describes|cannot)"):
        make_config(overrides)


def test_phase_4_loads_the_plan_curriculum(make_config) -> None:
    phase4 = make_config(phase="phase4_adaptive_curriculum")
    stages = phase4.curriculum.stages
    assert phase4.curriculum.enabled and list(stages) == [
        "foundation",
        "proficiency",
        "mastery",
        "excellence",
    ]
    assert stages["foundation"].target_metrics.sharpe_ratio == 0.6
    assert stages["mastery"].advancement_criteria.stress_test_passage
    assert stages["excellence"].training_constraints.max_position_size == 0.25


def test_phases_1_and_2_load_with_the_plan_parameters(make_config) -> None:
    phase1 = make_config(phase="phase1_institutional")
    assert phase1.environment.initial_capital == 50_000.0
    assert phase1.environment.gross_limit == pytest.approx(0.95)
    assert phase1.reward.dd_limit == 0.5 and phase1.reward.scaling == 0.02
    phase2 = make_config(phase="phase2_microstructure")
    costs = phase2.microstructure.transaction_costs
    assert (costs.fixed_cost_per_trade, costs.proportional_cost_bps) == (0.5, 1.0)
    assert costs.market_impact.temporary_impact_coeff == pytest.approx(0.314159)
    assert phase2.microstructure.liquidity_model.adverse_selection_protection is True


def test_planned_key_in_params_is_refused_not_ignored(make_config) -> None:
    with pytest.raises(ConfigError, match="'risk_budgeting' is not implemented yet"):
        make_config({"risk_budgeting": {"enabled": True}})


@pytest.mark.parametrize("overlay", sorted(p.stem for p in (REPO / "config").glob("*.yaml")))
def test_every_committed_overlay_uses_known_or_refused_keys_only(
    tmp_path: Path, overlay: str
) -> None:
    """An overlay may only fail on a key refused by name: never for a typo."""
    raw = yaml.safe_load((REPO / "config" / f"{overlay}.yaml").read_text()) or {}

    def without_planned(mapping: dict, prefix: str = "") -> dict:
        kept = {}
        for key, value in mapping.items():
            dotted = f"{prefix}{key}"
            if dotted in REFUSED_KEYS:
                continue
            kept[key] = without_planned(value, f"{dotted}.") if isinstance(value, dict) else value
        return kept

    implemented = without_planned(raw)
    (tmp_path / "params").mkdir()
    params = write_params(tmp_path / "params")
    (tmp_path / "params" / "config" / "check.yaml").write_text(yaml.safe_dump(implemented))
    load_config(params, phase="check")


def test_digest_tracks_parameters_but_not_paths(make_config) -> None:
    base = make_config()
    moved = make_config({"paths": {"metrics": "elsewhere/metrics.json"}})
    changed = make_config({"seed": 8})
    assert base.digest() == moved.digest()
    assert base.digest() != changed.digest()


def test_a_policy_digest_changes_with_training_but_not_with_reporting(make_config) -> None:
    """Two trainings are the same trial unless something that shapes the policy differs."""
    base = make_config()
    mailed = make_config({"notify": {"risk_team": ["desk@example.com"]}})
    longer = make_config({"training": {"total_timesteps": 999}})
    assert base.policy_digest() == mailed.policy_digest()
    assert base.policy_digest() != longer.policy_digest()
    assert (
        base.walk_forward_digest() != make_config({"gate": {"min_trades": 3}}).walk_forward_digest()
    )


def test_missing_params_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"parameter file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 1\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: line \d+ is not valid YAML"):
        load_config(bad)


def test_a_markov_feature_without_the_markov_model_is_refused(make_config) -> None:
    with pytest.raises(ConfigError, match=r"p_high_volatility, which needs regimes\.markov"):
        make_config(
            {
                "regimes": {"markov_probabilities": False},
                "features": {"regime_signals": ["p_high_volatility"]},
            }
        )


def test_macd_pairs_must_be_short_then_long(make_config) -> None:
    with pytest.raises(ConfigError, match=r"\(48, 16\) must be \(short, long\)"):
        make_config({"features": {"macd_pairs": [[8, 24], [48, 16]]}})


def test_a_study_is_named_for_what_it_holds_fixed_not_for_what_it_searches(make_config) -> None:
    """Committing a study's best values must not rename the study (a rerun resumes it), while
    any setting the study does not search starts a new one."""
    base = make_config()
    assert "training.learning_rate" in base.tuning.space
    tuned = make_config({"training": {"learning_rate": 0.000777}})
    assert tuned.searched_digest() == base.searched_digest()
    assert tuned.policy_digest() != base.policy_digest()  # still another trial
    fixed = make_config({"training": {"clip_range": 0.3}})
    assert fixed.searched_digest() != base.searched_digest()
