from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY, deep_merge, write_params


@dataclass
class Workspace:
    """A pipeline's files in a temporary folder, run in-process stage by stage."""

    root: Path
    config: Any

    def path(self, key: str) -> Path:
        return self.root / getattr(self.config.paths, key)

    def prepare_data(self) -> None:
        from ijules.data.features import run_features
        from ijules.data.ingest import run_ingest
        from ijules.data.validate import run_validate

        run_ingest(
            self.config, source=None, output=self.path("staged"), report=self.path("ingest_report")
        )
        run_validate(
            self.config,
            staged=self.path("staged"),
            output=self.path("bars"),
            result=self.path("validation"),
        )
        run_features(
            self.config,
            bars=self.path("bars"),
            output=self.path("features"),
            meta=self.path("feature_meta"),
        )

    def train(self, model_dir: str = "models") -> Any:
        from ijules.training.train import run_train

        return run_train(
            self.config,
            features=self.path("features"),
            meta=self.path("feature_meta"),
            model_dir=self.root / model_dir,
            checkpoints=self.root / "var" / "checkpoints",
        )

    def evaluate(self, model_dir: str = "models", metrics: str = "reports/metrics.json") -> Any:
        from ijules.evaluation.evaluate import run_evaluate

        return run_evaluate(
            self.config,
            features=self.path("features"),
            meta=self.path("feature_meta"),
            model_dir=self.root / model_dir,
            metrics=self.root / metrics,
            curve=self.path("equity_curve"),
            plot=self.path("equity_plot"),
        )


@pytest.fixture
def workspace(tmp_path: Path, mlflow_store: str) -> Any:
    """Build a Workspace whose data paths live under tmp_path, with a tiny training budget."""
    from ijules.config import load_config
    from tests.conftest import SAMPLES

    def build(overrides: dict[str, Any] | None = None) -> Workspace:
        base = deep_merge(TINY, {"data": {"source": str(SAMPLES / "btcusd_1h.csv.gz")}})
        config = load_config(write_params(tmp_path / "params", deep_merge(base, overrides or {})))
        return Workspace(tmp_path, config)

    return build
