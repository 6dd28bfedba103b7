"""The research study as one HTML page: every trial, and the best configuration per instrument
beside passive buy-and-hold and the rules, on the walk-forward folds and the held-out test."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ijules.artifacts import ResearchEntry, ResearchSummary
from ijules.io import write_text

_STYLE = (
    "body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:0.6em 0 1.4em}td,th{border:1px solid #ccc;"
    "padding:3px 8px;text-align:right}th{background:#f2f2f2}td:first-child{text-align:left}"
    ".conclusion{background:#fff6e0;padding:0.8em;border-left:4px solid #e0a000}"
)


def _number(value: float | int | str | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if digits == 2 else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _entry_row(name: str, entry: ResearchEntry) -> list[str]:
    return [
        html.escape(name),
        _number(entry.sharpe),
        _number(entry.psr, 3),
        _number(entry.dsr, 3),
        f"{entry.total_return:+.2%}",
        f"{entry.max_drawdown:.2%}",
        _number(entry.daily_turnover, 3),
        str(entry.num_trades),
        f"{entry.costs:,.0f}",
        "n/a" if entry.cost_share is None else f"{entry.cost_share:.0%}",
    ]


_ENTRY_HEADER = [
    "strategy",
    "Sharpe",
    "PSR",
    "DSR",
    "return",
    "max drawdown",
    "daily turnover",
    "trades",
    "costs (USD)",
    "cost share of gross",
]


def _png(figure: object) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=85)  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    return base64.b64encode(buffer.getvalue()).decode()


def _trials_plot(summary: ResearchSummary) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 3.2))
    for state, colour in (("COMPLETE", "tab:blue"), ("PRUNED", "tab:grey")):
        rows = [r for r in summary.rows if r.state == state and r.fold_sharpes]
        axis.scatter(
            [r.number for r in rows],
            [sum(r.fold_sharpes) / len(r.fold_sharpes) for r in rows],
            color=colour,
            label=state.lower(),
        )
    axis.axhline(0, color="grey", linewidth=0.6)
    axis.set_xlabel("trial")
    axis.set_ylabel("mean fold Sharpe (folds run)")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _curves_plot(curves: Mapping[str, pd.DataFrame]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(curves), 1, figsize=(10, 3.4 * len(curves)), squeeze=False)
    for axis, (symbol, frame) in zip(axes[:, 0], curves.items(), strict=True):
        for column in [c for c in frame.columns if c != "timestamp"]:
            axis.plot(
                frame["timestamp"],
                frame[column],
                label=column.replace("_", " "),
                linewidth=1.4 if column == "agent" else 0.9,
            )
        axis.set_title(f"{symbol}: held-out test window, equity after costs (USD)")
        axis.legend(fontsize=7, loc="best")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def render(summary: ResearchSummary, curves: Mapping[str, pd.DataFrame]) -> str:
    """The page."""
    parts = [
        "<html><head><meta charset='utf-8'><title>IntradayJules research report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Research: one policy pooled over "
        + html.escape(", ".join(summary.instruments))
        + "</h1>",
        f"<p class='conclusion'>{html.escape(summary.conclusion)}</p>",
        f"<p>Study <code>{html.escape(summary.study)}</code>: {summary.trials} trials "
        f"({summary.complete} complete, {summary.pruned} pruned), each trained with "
        f"{summary.seeds} seeds x {summary.total_timesteps:,} steps on {summary.folds} "
        "walk-forward folds of every instrument and scored on the folds' test bars (never the "
        f"held-out test windows). Best: trial {summary.best_number}, mean fold Sharpe "
        f"{summary.best_value:+.2f}, {html.escape(str(summary.best_params))}. It was then "
        f"trained {summary.final_seeds} times ({summary.final_timesteps:,} steps) on the "
        "development bars and tested once on each instrument's test window. The agent's figures "
        "are its seed policies run side by side, capital split equally; the DSR deflates by "
        f"the {summary.trials} trials (variance of their per-bar Sharpe ratios "
        f"{summary.trial_sharpe_variance:.2e}). All figures after costs, out of sample.</p>",
    ]
    for symbol, result in summary.results.items():
        rows = [_entry_row("agent (pooled)", result.agent)]
        rows += [_entry_row(name, entry) for name, entry in result.benchmarks.items()]
        rows.append(_entry_row("agent without volatility target", result.without_volatility_target))
        rows.append(_entry_row("agent trained on this instrument alone", result.trained_alone))
        parts += [
            f"<h2>{html.escape(symbol)}: test {html.escape(result.test_first)} to "
            f"{html.escape(result.test_last)} ({result.test_bars} bars)</h2>",
            _table(_ENTRY_HEADER, rows),
            "<p>Seed Sharpe ratios: "
            + ", ".join(f"{v:+.2f}" for v in result.seed_sharpes)
            + f". Best rule: {html.escape(result.best_rule)}.</p>",
            "<h3>Walk-forward (best configuration)</h3>",
            _table(
                ["fold", "test window", "agent Sharpe", "PSR", "DSR", "seeds", "passive"]
                + [name for name in result.benchmarks if name != "passive_buy_and_hold"],
                [
                    [
                        str(fold.fold),
                        html.escape(f"{fold.test_first[:10]} to {fold.test_last[:10]}"),
                        _number(fold.agent.sharpe),
                        _number(fold.agent.psr, 3),
                        _number(fold.agent.dsr, 3),
                        ", ".join(f"{v:+.2f}" for v in fold.seed_sharpes),
                    ]
                    + [_number(entry.sharpe) for entry in fold.benchmarks.values()]
                    for fold in result.walk_forward
                ],
            ),
        ]
    parts += [
        "<h2>Held-out test windows</h2>",
        f"<img src='data:image/png;base64,{_curves_plot(curves)}' alt='equity curves'>",
        "<h2>Every trial</h2>",
        f"<img src='data:image/png;base64,{_trials_plot(summary)}' alt='trial scores'>",
        _table(
            ["trial", "state", "mean fold Sharpe", "fold Sharpes", "parameters"],
            [
                [
                    str(row.number),
                    row.state.lower(),
                    _number(row.value),
                    ", ".join(f"{v:+.2f}" for v in row.fold_sharpes),
                    html.escape(
                        ", ".join(
                            f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in row.params.items()
                        )
                    ),
                ]
                for row in summary.rows
            ],
        ),
        "</body></html>",
    ]
    return "".join(parts)


def write_report(
    summary: ResearchSummary, curves: Mapping[str, pd.DataFrame], target: Path
) -> None:
    """Write the page to ``target`` atomically."""
    write_text(target, render(summary, curves))
