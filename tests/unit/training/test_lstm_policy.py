"""The fused LSTM computes what sb3-contrib's step-by-step loop computes, gradients included."""

from __future__ import annotations

import pytest
import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn

from ijules.training.lstm_policy import FusedLstmPolicy

N_SEQ, LENGTH, INPUTS, HIDDEN = 6, 9, 5, 4


def run(process, starts: th.Tensor) -> tuple[th.Tensor, ...]:
    """Outputs, final states and the gradients of a loss over them, for ``process``."""
    th.manual_seed(0)
    lstm = nn.LSTM(INPUTS, HIDDEN)
    features = th.randn(N_SEQ * LENGTH, INPUTS, requires_grad=True)
    states = (th.randn(1, N_SEQ, HIDDEN), th.randn(1, N_SEQ, HIDDEN))
    output, (hidden, cell) = process(features, states, starts.flatten(), lstm)
    (output.square().sum() + hidden.sum() + cell.sum()).backward()
    gradients = [parameter.grad for parameter in lstm.parameters()]
    assert features.grad is not None
    return output, hidden, cell, features.grad, *gradients


def starts_at_heads() -> th.Tensor:
    """Sequences as RecurrentPPO cuts them: an episode starts only at a sequence's head."""
    starts = th.zeros(N_SEQ, LENGTH)
    starts[[0, 2, 3], 0] = 1.0
    return starts


@pytest.mark.parametrize("where", ["heads", "inside", "none"])
def test_the_fused_lstm_matches_the_loop(where: str) -> None:
    starts = starts_at_heads() if where != "none" else th.zeros(N_SEQ, LENGTH)
    if where == "inside":
        starts[4, 5] = 1.0  # not how the buffer cuts, but it must still be right
    fused = run(FusedLstmPolicy._process_sequence, starts)
    loop = run(RecurrentActorCriticPolicy._process_sequence, starts)
    for ours, theirs in zip(fused, loop, strict=True):
        th.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_start_at_a_head_resets_that_sequence_only() -> None:
    """Zeroing the wrong state (or none) would change these outputs."""
    lstm = nn.LSTM(INPUTS, HIDDEN)
    features = th.randn(N_SEQ * LENGTH, INPUTS)
    states = (th.randn(1, N_SEQ, HIDDEN), th.randn(1, N_SEQ, HIDDEN))
    starts = starts_at_heads()
    with th.no_grad():
        output, _ = FusedLstmPolicy._process_sequence(features, states, starts.flatten(), lstm)
        fresh, _ = lstm(features.reshape(N_SEQ, LENGTH, INPUTS)[0].unsqueeze(1))
        carried, _ = lstm(
            features.reshape(N_SEQ, LENGTH, INPUTS)[1].unsqueeze(1),
            (states[0][:, 1:2], states[1][:, 1:2]),
        )
    th.testing.assert_close(output[:LENGTH], fresh.squeeze(1))
    th.testing.assert_close(output[LENGTH : 2 * LENGTH], carried.squeeze(1))
