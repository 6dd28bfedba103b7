"""The nightly e-mail's small inline charts, drawn from the health history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ijules.artifacts import HealthDay
from ijules.io import write_with

CHARTS = ("health.png", "drift.png", "pnl.png")


def draw_charts(days: Sequence[HealthDay], folder: Path) -> list[Path]:
    """The health score, the drift share and each book's paper P&L over ``days``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    when = pd.to_datetime([day.data_end for day in days], utc=True)
    paths = [folder / name for name in CHARTS]
    series = {
        "health.png": ("health score", {"score": [day.score for day in days]}),
        "drift.png": ("share of features drifted", {"drift": [day.drift_share for day in days]}),
        "pnl.png": ("paper P&L, cumulative (USD)", _pnl(days)),
    }
    for path in paths:
        title, lines = series[path.name]

        def draw(
            target: Path,
            title: str = title,
            lines: dict[str, list[float | None]] = lines,
            scored: bool = path.name != "pnl.png",
        ) -> None:
            figure, axis = plt.subplots(figsize=(4.0, 1.8), dpi=80)
            for label, values in lines.items():
                numbers = [float("nan") if value is None else value for value in values]
                axis.plot(when, numbers, marker="o", markersize=2, linewidth=1, label=label)
            if scored:
                axis.set_ylim(0.0, 1.0)
            elif lines:
                axis.legend(fontsize=6, loc="best")
            axis.set_title(title, fontsize=8)
            axis.tick_params(labelsize=6)
            figure.autofmt_xdate()
            figure.tight_layout()
            figure.savefig(target, format="png")
            plt.close(figure)

        write_with(path, draw)
    return paths


def _pnl(days: Sequence[HealthDay]) -> dict[str, list[float | None]]:
    books = sorted({book for day in days for book in day.pnl_usd})
    return {book: [day.pnl_usd.get(book) for day in days] for book in books}
