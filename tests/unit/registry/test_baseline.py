"""Reproducing a baseline: what counts as the same figure, and how the comparison reads."""

from __future__ import annotations

from ijules.artifacts import BaselineReproduction
from ijules.registry.baseline import METRICS, compare, outcome, table

REGISTERED = {
    "sharpe": 4.675293531864726,
    "total_return": 0.00010579664763166186,
    "max_drawdown": 0.000149606330459795,
    "daily_turnover": 0.003205040108897387,
    "num_trades": 284.0,
}


def reproduction(reproduced: dict[str, float], tolerance: float) -> BaselineReproduction:
    rows = compare(REGISTERED, reproduced, tolerance)
    return BaselineReproduction(
        model_name="ijules-policy",
        version="1",
        run_id="r1",
        revision="73478e0a6f5d" + "0" * 28,
        tolerance=tolerance,
        reproduced=all(row.within_tolerance for row in rows),
        metrics=rows,
        features_md5_registered="aa",
        features_md5_reproduced="aa",
    )


def test_at_tolerance_zero_only_equal_figures_reproduce() -> None:
    same = compare(REGISTERED, dict(REGISTERED), 0.0)
    assert [row.metric for row in same] == list(METRICS)
    assert all(row.within_tolerance and row.difference == 0.0 for row in same)
    last_digit = REGISTERED | {"sharpe": 4.675293531864727}
    (sharpe, *rest) = compare(REGISTERED, last_digit, 0.0)
    assert not sharpe.within_tolerance and sharpe.difference > 0
    assert all(row.within_tolerance for row in rest)


def test_a_tolerance_is_relative_to_the_larger_magnitude() -> None:
    near = REGISTERED | {"sharpe": 4.675293531864726 * (1 + 1e-7), "num_trades": 285.0}
    rows = {row.metric: row for row in compare(REGISTERED, near, 1e-6)}
    assert rows["sharpe"].within_tolerance  # one part in ten million
    assert not rows["num_trades"].within_tolerance  # one trade in 284 is not
    # Relative to 0, any other figure is all difference.
    flat = REGISTERED | {"num_trades": 0.0}
    (*_, trades) = compare(flat, flat | {"num_trades": 1e-300}, 0.5)
    assert not trades.within_tolerance


def test_the_table_shows_full_figures_and_the_outcome_names_what_differs() -> None:
    off = reproduction(REGISTERED | {"sharpe": 4.675292531864726}, 0.0)
    text = table(off)
    header, sharpe, *_ = text.splitlines()
    assert header.split() == ["metric", "registered", "reproduced", "difference", "within", "0"]
    assert "4.675293531864726" in sharpe and "4.675292531864726" in sharpe
    assert sharpe.split()[-1] == "NO"
    assert not off.reproduced
    assert outcome(off).startswith("ijules-policy v1 at 73478e0a6f5d does not reproduce: sharpe")

    same = reproduction(dict(REGISTERED), 0.0)
    assert same.reproduced and "reproduced: every test metric" in outcome(same)
    other_data = same.model_copy(update={"features_md5_reproduced": "bb"})
    assert "the features differ" in table(other_data).splitlines()[-1]
