"""Training diagnostics: NaN losses and gradients abort; entropy collapse is counted."""

from __future__ import annotations

import math
from types import SimpleNamespace

import mlflow
import pytest
import torch

from ijules.env.config import SafeguardsConfig
from ijules.env.safeguards import Safeguards
from ijules.errors import TrainingError
from ijules.training.diagnostics import (
    GRAD_NORM,
    Diagnostics,
    MlflowDiagnostics,
    clip_and_watch_gradients,
)


@pytest.fixture
def diagnostics() -> Diagnostics:
    return Diagnostics(entropy_floor=-0.25, safeguards=Safeguards(SafeguardsConfig()))


@pytest.fixture
def run(mlflow_store: str):
    with mlflow.start_run() as active:
        yield active


class Recorder:
    def __init__(self) -> None:
        self.means: dict[str, list[float]] = {}

    def record_mean(self, key: str, value: float) -> None:
        self.means.setdefault(key, []).append(value)


def tiny_model(max_grad_norm: float) -> SimpleNamespace:
    torch.manual_seed(0)
    policy = torch.nn.Linear(3, 2)
    policy.optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)  # type: ignore[assignment]
    return SimpleNamespace(
        policy=policy, max_grad_norm=max_grad_norm, logger=Recorder(), num_timesteps=128
    )


def test_gradients_are_clipped_here_and_their_norm_before_clipping_logged(diagnostics) -> None:
    model = tiny_model(0.5)
    clip_and_watch_gradients(model, 0.5, diagnostics)
    assert math.isinf(model.max_grad_norm)  # SB3's own clipping is now a no-op
    loss = (model.policy(torch.ones(4, 3)) * 100).sum()
    loss.backward()
    expected = torch.sqrt(sum((p.grad**2).sum() for p in model.policy.parameters())).item()
    model.policy.optimizer.step()
    assert model.logger.means[GRAD_NORM] == [pytest.approx(expected)]
    after = torch.sqrt(sum((p.grad**2).sum() for p in model.policy.parameters())).item()
    assert expected > 0.5 and after == pytest.approx(0.5, rel=1e-5)


def test_a_nan_gradient_aborts_before_the_weights_move(diagnostics, run) -> None:
    model = tiny_model(0.5)
    clip_and_watch_gradients(model, 0.5, diagnostics)
    before = [p.detach().clone() for p in model.policy.parameters()]
    (model.policy(torch.full((1, 3), float("nan")))).sum().backward()
    with pytest.raises(TrainingError, match="the gradient norm is not finite"):
        model.policy.optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    assert diagnostics.nan_incidents == 1
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged["nan_incidents"] == 1


def test_a_nan_loss_aborts_and_is_counted(diagnostics, run) -> None:
    writer = MlflowDiagnostics(diagnostics)
    with pytest.raises(TrainingError, match="train/value_loss is not finite"):
        writer.write({"train/value_loss": float("nan"), "train/entropy_loss": -1.0}, {}, step=256)
    assert diagnostics.nan_incidents == 1


def test_entropy_below_the_floor_is_a_counted_warning(diagnostics, run, caplog) -> None:
    writer = MlflowDiagnostics(diagnostics)
    writer.write({"train/entropy_loss": -1.4, "train/explained_variance": 0.2}, {}, step=1)
    writer.write({"train/entropy_loss": 0.6}, {}, step=2)  # entropy -0.6 < -0.25
    assert diagnostics.entropy_warnings == 1 and diagnostics.updates == 2
    assert "entropy collapse" in caplog.text
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "train_entropy")
    assert [(m.step, m.value) for m in history] == [(1, 1.4), (2, -0.6)]
    assert diagnostics.summary()["entropy_collapse_warnings"] == 1.0
