"""A trained recurrent policy with what it needs to act: its feature spec and LSTM state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ijules.data.features import NormStats
from ijules.errors import ModelCompatibilityError
from ijules.io import read_json

POLICY_ZIP = "policy.zip"
POLICY_SPEC = "policy.json"


@dataclass(frozen=True)
class PolicySpec:
    """What a policy was trained on; saved beside its weights and frozen at evaluation."""

    feature_names: tuple[str, ...]
    norm: NormStats
    clip_zscore: float
    observation_shape: tuple[int, ...]
    action_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> PolicySpec:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            feature_names=tuple(payload["feature_names"]),
            norm=NormStats(tuple(payload["norm"]["mean"]), tuple(payload["norm"]["std"])),
            clip_zscore=float(payload["clip_zscore"]),
            observation_shape=tuple(payload["observation_shape"]),
            action_shape=tuple(payload["action_shape"]),
        )


class RecurrentPolicy:
    """A RecurrentPPO policy that carries its LSTM state from one call to the next.

    Recurrent policies must always get their state and ``episode_start`` at inference; this
    class owns both so callers cannot forget them.
    """

    def __init__(self, model: Any, spec: PolicySpec) -> None:
        self.model = model
        self.spec = spec
        self._state: tuple[npt.NDArray[np.float32], ...] | None = None
        self._episode_start = True

    @classmethod
    def load(cls, model_dir: Path, *, device: str = "cpu") -> RecurrentPolicy:
        """Load ``policy.zip`` and ``policy.json`` from ``model_dir``."""
        return cls.load_files(model_dir / POLICY_ZIP, model_dir / POLICY_SPEC, device=device)

    @classmethod
    def load_files(cls, zip_path: Path, spec_path: Path, *, device: str = "cpu") -> RecurrentPolicy:
        """Load a policy from its SB3 zip and its spec."""
        from sb3_contrib import RecurrentPPO

        for path in (zip_path, spec_path):
            if not path.is_file():
                raise ModelCompatibilityError(f"model file not found: {path} (run `ijules train`)")
        spec = PolicySpec.from_dict(read_json(spec_path)["spec"])
        return cls(RecurrentPPO.load(zip_path, device=device), spec)

    def reset(self) -> None:
        """Forget the LSTM state: the next observation starts a new episode."""
        self._state = None
        self._episode_start = True

    def act(self, observation: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Return the deterministic action for one observation, advancing the LSTM state."""
        action, self._state = self.model.predict(
            observation,
            state=self._state,
            episode_start=np.array([self._episode_start]),
            deterministic=True,
        )
        self._episode_start = False
        return np.asarray(action, dtype=np.float32)

    def check_compatible(
        self,
        observation_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        names: tuple[str, ...],
    ) -> None:
        """Refuse an environment whose spaces or features differ from the policy's, naming both."""
        model_obs = tuple(self.model.observation_space.shape)
        model_act = tuple(self.model.action_space.shape)
        if model_obs != observation_shape:
            raise ModelCompatibilityError(
                f"observation space mismatch: policy expects {model_obs}, "
                f"environment produces {observation_shape}"
            )
        if model_act != action_shape:
            raise ModelCompatibilityError(
                f"action space mismatch: policy outputs {model_act}, "
                f"environment expects {action_shape}"
            )
        if names != self.spec.feature_names:
            raise ModelCompatibilityError(
                f"feature mismatch: policy was trained on {list(self.spec.feature_names)}, "
                f"data has {list(names)}"
            )
