"""sb3-contrib's recurrent policy, with the LSTM run as one fused call over each sequence.

During an update RecurrentPPO cuts the rollout into sequences that start where an episode
starts (or an environment's chunk does) and pads them. Whenever any sequence in a minibatch
begins an episode, sb3-contrib's ``_process_sequence`` steps the LSTM one time step at a time in
Python, to zero the state where an episode starts; with 512-bar episodes nearly every minibatch
has such a start, so the update runs hundreds of single-step LSTM calls and their backward
passes. An episode can only start at the head of a sequence, so zeroing the initial state of
the sequences that start one and running the LSTM once over all of them computes the same
function; the loop is kept for the case where a start falls inside a sequence.
"""

from __future__ import annotations

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn


class FusedLstmPolicy(RecurrentActorCriticPolicy):
    """``MlpLstmPolicy`` whose LSTM runs each minibatch of sequences in one call."""

    @staticmethod
    def _process_sequence(
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[th.Tensor, th.Tensor]:
        n_seq = lstm_states[0].shape[1]
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
        if th.any(starts[1:] != 0.0):
            return RecurrentActorCriticPolicy._process_sequence(
                features, lstm_states, episode_starts, lstm
            )
        keep = (1.0 - starts[0]).view(1, n_seq, 1)
        sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        output, states = lstm(sequence, (keep * lstm_states[0], keep * lstm_states[1]))
        return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states
