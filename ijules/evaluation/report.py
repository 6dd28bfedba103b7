"""The performance report: the plan's YAML schema with red flags, and an HTML page for people.

``performance_report.yaml`` follows the master plan's ``baseline_performance`` schema (returns,
risk_metrics, trading_metrics, execution_metrics, model_diagnostics, red_flags), extended with
significance, walk-forward and stress sections. Percentages are in percent, as in the plan.
Red flags come from rules with thresholds in ``report`` (and the gate's), never by hand.

The HTML page shows the test window's equity beside the baselines, the drawdown, the rolling
Sharpe ratio, the agent's positions and the market regimes, and the walk-forward and stress
tables. Both are logged to the model's MLflow run.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ijules.artifacts import (
    POLICY_SPEC,
    CostComponent,
    MetricsReport,
    PolicyRecord,
    SeedSpread,
    StressReport,
    WalkForwardSummary,
)
from ijules.config import Config
from ijules.io import write_text

_IMPACT: tuple[CostComponent, ...] = ("temporary_impact", "permanent_impact", "capacity")
_SLIPPAGE: tuple[CostComponent, ...] = ("fixed", "proportional", "tick")
_REGIME_COLOURS = {"crisis": "tab:red", "recovery": "tab:orange", "high_volatility": "khaki"}


def _bps(
    costs: dict[CostComponent, float], names: tuple[CostComponent, ...], notional: float
) -> float:
    return 1e4 * sum(costs.get(n, 0.0) for n in names) / notional if notional > 0 else 0.0


def red_flags(
    config: Config,
    metrics: MetricsReport,
    diagnostics: dict[str, float],
    walk_forward: WalkForwardSummary | None,
    stress: StressReport | None,
    seeds: SeedSpread | None = None,
) -> list[str]:
    """Every rule the agent's record breaks, as one sentence each."""
    rules = config.report
    agent, passive = metrics.agent, metrics.baselines.passive_buy_and_hold
    rule = metrics.baselines.by_name()[metrics.best_rule]
    flags = []
    if agent.sharpe < 0:
        flags.append(f"Negative Sharpe ratio ({agent.sharpe:.2f}) out of sample after costs")
    elif agent.sharpe < rules.min_sharpe:
        flags.append(
            f"Sharpe ratio {agent.sharpe:.2f} below the institutional minimum {rules.min_sharpe:g}"
        )
    if agent.sharpe <= passive.sharpe:
        flags.append(
            f"No better than passive buy-and-hold (Sharpe {agent.sharpe:.2f} "
            f"vs {passive.sharpe:.2f})"
        )
    if agent.sharpe <= rule.sharpe:
        flags.append(
            f"No better than the best simple rule, {metrics.best_rule} (Sharpe "
            f"{agent.sharpe:.2f} vs {rule.sharpe:.2f})"
        )
    ceiling = config.gate.max_full_capital_fill_cost_bps
    for name, bps in metrics.window.full_capital_fill_bps.items():
        if bps > ceiling:
            flags.append(
                f"Implausible cost model: one fill of the whole capital in {name} costs "
                f"{bps:,.0f} bps (ceiling {ceiling:g}); check its liquidity setting "
                "(microstructure.liquidity_model) before trusting any figure here"
            )
    if seeds is None and config.seeds.count > 1:
        flags.append("No spread over training seeds: every agent figure here is one seed's")
    elif seeds is not None and seeds.sharpe_lower_bound < rules.min_sharpe:
        low, high = min(r.sharpe for r in seeds.runs), max(r.sharpe for r in seeds.runs)
        flags.append(
            f"Over {len(seeds.runs)} training seeds the test Sharpe ranges {low:.2f} to "
            f"{high:.2f}; its {seeds.confidence:.0%} lower bound {seeds.sharpe_lower_bound:.2f} "
            f"is below {rules.min_sharpe:g}"
        )
    if agent.significance.psr < rules.min_psr:
        flags.append(
            f"Sharpe ratio not significant: PSR {agent.significance.psr:.2f} < {rules.min_psr:g}"
        )
    if agent.max_drawdown > rules.max_drawdown:
        flags.append(
            f"Max drawdown {100 * agent.max_drawdown:.2f}% above {100 * rules.max_drawdown:g}%"
        )
    if agent.daily_turnover > rules.max_daily_turnover:
        flags.append(
            f"High turnover ({agent.daily_turnover:.2f}x daily, target < "
            f"{rules.max_daily_turnover:g}x) creates significant transaction costs"
        )
    # Every rule's threshold is an input of the report, whether or not the rule applies here.
    min_win_rate, max_cost_share = rules.min_win_rate, rules.max_cost_share
    if agent.num_round_trips and agent.win_rate < min_win_rate:
        flags.append(f"Low win rate ({100 * agent.win_rate:.1f}%) suggests weak predictive signal")
    if agent.num_trades == 0:
        flags.append("The agent never traded in the test window")
    cost = float(agent.total_cost)
    gross_pnl = agent.total_return * config.environment.initial_capital + cost
    if cost > 0 and gross_pnl <= 0:
        flags.append(f"Loses money before costs (gross P&L {gross_pnl:,.0f} USD)")
    elif cost > 0 and cost / gross_pnl > max_cost_share:
        flags.append(f"Costs take {100 * cost / gross_pnl:.0f}% of gross P&L")
    if diagnostics.get("nan_incidents", 0) > 0:
        flags.append(f"{int(diagnostics['nan_incidents'])} NaN incident(s) in training")
    if diagnostics.get("entropy_collapse_warnings", 0) > 0:
        flags.append(
            "Policy entropy collapse indicates lack of exploration "
            f"({int(diagnostics['entropy_collapse_warnings'])} update(s) below the floor)"
        )
    variance = diagnostics.get("train_explained_variance")
    if variance is not None and variance < rules.min_explained_variance:
        flags.append(
            f"Weak value function: explained variance {variance:.2f} "
            f"< {rules.min_explained_variance:g}"
        )
    if walk_forward is not None and walk_forward.pass_rate < walk_forward.required_pass_rate:
        flags.append(
            f"Walk-forward: {walk_forward.folds_passed} of {walk_forward.folds} folds "
            f"passed (need {100 * walk_forward.required_pass_rate:.0f}%)"
        )
    if stress is not None and not stress.all_survived:
        failed = [s.scenario for s in stress.scenarios if not s.survived]
        flags.append(f"Did not survive stress scenario(s): {', '.join(failed)}")
    return flags


def build_report(
    config: Config,
    metrics: MetricsReport,
    record: PolicyRecord,
    walk_forward: WalkForwardSummary | None,
    stress: StressReport | None,
    generated: dt.datetime,
    seeds: SeedSpread | None = None,
) -> dict[str, Any]:
    """The report in the plan's schema."""
    agent, passive = metrics.agent, metrics.baselines.passive_buy_and_hold
    window = metrics.window
    training = record.training
    diagnostics = training.diagnostics
    notional = float(agent.traded_notional)
    section: dict[str, Any] = {
        "date_generated": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "evaluation_period": f"{window.start[:10]} to {window.end[:10]}",
        "model_run_id": metrics.model.run_id,
        "costs": window.costs,
        "returns": {
            "total_return_pct": 100 * agent.total_return,
            "annualized_return_pct": 100 * agent.annualised_return,
            "passive_buy_and_hold_total_return_pct": 100 * passive.total_return,
        },
        "risk_metrics": {
            "sharpe_ratio": agent.sharpe,
            "sortino_ratio": agent.sortino,
            "calmar_ratio": agent.calmar,
            "sterling_ratio": agent.sterling,
            "omega_ratio": agent.omega,
            "information_ratio": agent.information_ratio,
            "max_drawdown_pct": 100 * agent.max_drawdown,
            "max_drawdown_duration_bars": agent.max_drawdown_bars,
            "volatility_annualized_pct": 100 * agent.annualised_volatility,
            "var_95_pct": -100 * agent.var_95,
            "expected_shortfall_95_pct": -100 * agent.es_95,
            "tail_ratio": agent.tail_ratio,
            "skewness": agent.skewness,
            "excess_kurtosis": agent.excess_kurtosis,
        },
        "trading_metrics": {
            "turnover_ratio_daily": agent.daily_turnover,
            "num_trades": agent.num_trades,
            "num_round_trips": agent.num_round_trips,
            "total_bars": agent.bars,
            "avg_trade_duration_bars": agent.avg_holding_bars,
            "win_rate_pct": 100 * agent.win_rate,
            "profit_factor": agent.profit_factor,
        },
        "execution_metrics": {
            "slippage_estimate_bps": _bps(agent.costs, _SLIPPAGE, notional),
            "market_impact_estimate_bps": _bps(agent.costs, _IMPACT, notional),
            "avg_cost_per_fill_bps": agent.cost_bps,
            "full_capital_fill_cost_bps": window.full_capital_fill_bps,
            "fill_at": window.fill_at,
            "total_cost_usd": agent.total_cost,
            "traded_notional_usd": notional,
            "costs_by_component_usd": agent.costs,
        },
        "model_diagnostics": {
            "entropy_final": diagnostics.get("train_entropy"),
            "explained_variance": diagnostics.get("train_explained_variance"),
            "policy_gradient_norm": diagnostics.get("train_grad_norm"),
            "approx_kl": diagnostics.get("train_approx_kl"),
            "clip_fraction": diagnostics.get("train_clip_fraction"),
            "nan_incidents": diagnostics.get("nan_incidents"),
            "entropy_collapse_warnings": diagnostics.get("entropy_collapse_warnings"),
            "training_timesteps": training.timesteps,
            "curriculum_stage": training.curriculum_stage,
        },
        "significance": agent.significance.model_dump(),
        "baselines": {
            name: {
                "sharpe_ratio": baseline.sharpe,
                "total_return_pct": 100 * baseline.total_return,
                "max_drawdown_pct": 100 * baseline.max_drawdown,
                "turnover_ratio_daily": baseline.daily_turnover,
                "avg_cost_per_fill_bps": baseline.cost_bps,
            }
            for name, baseline in metrics.baselines.by_name().items()
        },
        "best_rule": metrics.best_rule,
    }
    if seeds is not None:
        section["agent_over_seeds"] = {
            "seeds": [run.seed for run in seeds.runs],
            "sharpe_ratio": [run.sharpe for run in seeds.runs],
            "total_return_pct": [100 * run.total_return for run in seeds.runs],
            "max_drawdown_pct": [100 * run.max_drawdown for run in seeds.runs],
            "mean_sharpe_ratio": seeds.mean_sharpe,
            "std_sharpe_ratio": seeds.std_sharpe,
            "sharpe_lower_bound": seeds.sharpe_lower_bound,
            "confidence": seeds.confidence,
        }
    if walk_forward is not None:
        section["walk_forward"] = {
            "scheme": walk_forward.scheme,
            "folds": walk_forward.folds,
            "folds_passed": walk_forward.folds_passed,
            "pass_rate": walk_forward.pass_rate,
            "required_pass_rate": walk_forward.required_pass_rate,
            "folds_significant": walk_forward.folds_significant,
            "trials": walk_forward.trials,
            "mean_agent_sharpe": walk_forward.mean_agent_sharpe,
            "mean_passive_buy_and_hold_sharpe": walk_forward.mean_passive_sharpe,
            "mean_best_rule_sharpe": walk_forward.mean_best_rule_sharpe,
        }
    if stress is not None:
        section["stress"] = {
            s.scenario: {"survived": s.survived, "max_drawdown_pct": 100 * s.max_drawdown}
            for s in stress.scenarios
        }
    section["red_flags"] = red_flags(config, metrics, diagnostics, walk_forward, stress, seeds)
    return {"baseline_performance": _plain(section)}


def _plain(value: Any) -> Any:
    """Plain Python numbers (YAML has no numpy types), rounded for people."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return round(float(value), 6) if np.isfinite(value) else None
    return value


def rolling_frame(curve: pd.DataFrame, window: int, bars_per_year: float) -> pd.DataFrame:
    """Per bar: the agent's drawdown and rolling Sharpe ratio, its position and the regime."""
    equity = curve["agent"].astype(float)
    returns = equity.pct_change()
    spread = returns.rolling(window).std()
    sharpe = (returns.rolling(window).mean() / spread * np.sqrt(bars_per_year)).where(spread > 0)
    return pd.DataFrame(
        {
            "timestamp": curve["timestamp"],
            "drawdown_pct": 100 * (1 - equity / equity.cummax()),
            "rolling_sharpe": sharpe.round(4),
            "position": curve["agent_position"],
            "regime": curve.get("regime", "normal"),
        }
    )


def _figure(curve: pd.DataFrame, rolling: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    when = pd.to_datetime(curve["timestamp"])
    figure, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True,
                                gridspec_kw={"height_ratios": [3, 1.3, 1.3, 1]})  # fmt: skip
    top, middle, lower, bottom = axes
    for name in [c for c in curve.columns if c not in ("timestamp", "agent_position", "regime")]:
        top.plot(
            when,
            curve[name],
            label=name.replace("_", " "),
            linewidth=1.3 if name == "agent" else 0.9,
        )
    top.set_ylabel("equity (USD, after costs)")
    top.legend(loc="best", fontsize=8)
    regimes = rolling["regime"].to_numpy()
    for regime, colour in _REGIME_COLOURS.items():
        mask = regimes == regime
        if mask.any():
            top.fill_between(when, 0, 1, where=mask, color=colour, alpha=0.15,
                             transform=top.get_xaxis_transform(), label=regime)  # fmt: skip
    middle.fill_between(when, -rolling["drawdown_pct"], 0, color="tab:red", alpha=0.4)
    middle.set_ylabel("drawdown %")
    lower.plot(when, rolling["rolling_sharpe"], color="tab:purple", linewidth=0.9)
    lower.axhline(0, color="grey", linewidth=0.5)
    lower.set_ylabel("rolling Sharpe")
    bottom.plot(when, rolling["position"], color="tab:blue", linewidth=0.8)
    bottom.set_ylabel("weight")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle("Out-of-sample test window (shaded: crisis, recovery, high volatility)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row.get(c, ''))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any], image: str, walk_forward: WalkForwardSummary | None,
                stress: StressReport | None) -> str:  # fmt: skip
    """A self-contained HTML page (the figure is embedded)."""
    section = report["baseline_performance"]
    flags = "".join(f"<li>{html.escape(f)}</li>" for f in section["red_flags"]) or "<li>none</li>"
    summary_rows = [
        {"metric": key, "value": value}
        for group in ("returns", "risk_metrics", "trading_metrics", "execution_metrics")
        for key, value in section[group].items()
        if not isinstance(value, dict)
    ]
    parts = [
        "<html><head><meta charset='utf-8'><title>IntradayJules performance report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        ".flags{color:#a00}</style></head><body>",
        "<h1>Performance report</h1>",
        f"<p>{html.escape(section['evaluation_period'])} &middot; generated "
        f"{html.escape(section['date_generated'])} &middot; costs: "
        f"{html.escape(str(section['costs']))}</p>",
        f"<h2>Red flags</h2><ul class='flags'>{flags}</ul>",
        f"<img src='data:image/png;base64,{image}' alt='equity, drawdown, rolling Sharpe, "
        "positions and regimes'/>",
        "<h2>Agent, out of sample, after costs</h2>",
        _table(summary_rows, ["metric", "value"]),
        "<h2>Baselines on the same window</h2>",
        _table(
            [{"baseline": k, **v} for k, v in section["baselines"].items()],
            [
                "baseline",
                "sharpe_ratio",
                "total_return_pct",
                "max_drawdown_pct",
                "turnover_ratio_daily",
                "avg_cost_per_fill_bps",
            ],
        ),
    ]
    if walk_forward is not None:
        folds = [
            {"fold": r.fold, "test_first": r.test_first, "test_last": r.test_last,
             "agent_sharpe": r.agent_sharpe, "passive_sharpe": r.passive_sharpe,
             "best_rule": r.best_rule, "best_rule_sharpe": r.best_rule_sharpe,
             "agent_max_drawdown": r.agent_max_drawdown,
             "passive_max_drawdown": r.passive_max_drawdown,
             "agent_daily_turnover": r.agent_daily_turnover, "psr": r.psr, "dsr": r.dsr,
             "passed": r.passed}
            for r in walk_forward.table
        ]  # fmt: skip
        parts += [
            "<h2>Walk-forward</h2>",
            _table(
                folds,
                [
                    "fold",
                    "test_first",
                    "test_last",
                    "agent_sharpe",
                    "passive_sharpe",
                    "best_rule",
                    "best_rule_sharpe",
                    "agent_max_drawdown",
                    "passive_max_drawdown",
                    "agent_daily_turnover",
                    "psr",
                    "dsr",
                    "passed",
                ],
            ),
        ]
    if stress is not None:
        rows = [
            {"scenario": s.scenario, "survived": s.survived,
             "agent_max_drawdown": s.max_drawdown,
             "risk_managed_long_max_drawdown": s.risk_managed_long.max_drawdown,
             "asset_return": s.asset_return,
             "risk_state_changes": s.agent.risk_engine.state_changes}
            for s in stress.scenarios
        ]  # fmt: skip
        parts += ["<h2>Stress scenarios</h2>", _table(rows, list(rows[0]) if rows else [])]
    parts.append("</body></html>")
    return "\n".join(parts)


def run_report(
    config: Config,
    *,
    metrics: Path,
    curve: Path,
    model_dir: Path,
    walk_forward: Path | None,
    stress: Path | None,
    output: Path,
    html_output: Path,
    rolling: Path,
    seeds: Path | None = None,
) -> dict[str, Any]:
    """Write the YAML report, the HTML page and the rolling series; log them to MLflow."""
    evaluation = MetricsReport.read(metrics)
    record = PolicyRecord.read(model_dir / POLICY_SPEC)
    wf = WalkForwardSummary.read_if_present(walk_forward)
    st = StressReport.read_if_present(stress)
    end = pd.Timestamp(evaluation.window.end).to_pydatetime()
    # Dated by the data, not the clock: the same inputs give the same report.
    spread = SeedSpread.read_if_present(seeds)
    report = build_report(config, evaluation, record, wf, st, end, spread)
    frame = pd.read_csv(curve)
    series = rolling_frame(
        frame, config.report.rolling_sharpe_bars, evaluation.window.bars_per_year
    )
    write_text(output, yaml.safe_dump(report, sort_keys=False))
    write_text(rolling, series.to_csv(index=False))
    write_text(html_output, render_html(report, _figure(frame, series), wf, st))
    _log(config, record.mlflow.run_id, report, [output, html_output])
    return report


def _log(config: Config, run_id: str, report: dict[str, Any], files: list[Path]) -> None:
    import mlflow

    from ijules.tracking import configure, run_exists

    configure(config.registry.experiment)
    if not run_exists(run_id):
        return  # the report stands on its own; the run lives in another store
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("red_flags", len(report["baseline_performance"]["red_flags"]))
        for file in files:
            mlflow.log_artifact(str(file), artifact_path="report")
