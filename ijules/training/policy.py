"""A trained recurrent policy with what it needs to act: its observation spec and LSTM state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ijules.artifacts import POLICY_SPEC, POLICY_ZIP, PolicyRecord, PolicySpec, Record
from ijules.config import Config
from ijules.env.engine import EngineSettings
from ijules.env.parts import ContinuousWeights, DiscreteWeights, ObservationBuilder, PortfolioLimits
from ijules.env.safeguards import check_compatible
from ijules.errors import ModelCompatibilityError


def observation_builder(spec: PolicySpec) -> ObservationBuilder:
    """The observation builder the policy was trained with."""
    return ObservationBuilder(spec.norm, spec.clip_zscore, spec.risk_features)


def input_columns(spec: PolicySpec) -> list[str]:
    """The observation's entries by name (the served model's input columns)."""
    return observation_builder(spec).names(spec.feature_names, spec.instruments)


def policy_spec(
    settings: EngineSettings, feature_names: tuple[str, ...], instruments: tuple[str, ...]
) -> PolicySpec:
    """The spec of a policy trained with ``settings`` on these features and instruments."""
    observation = settings.observation
    space = settings.observation.space(len(feature_names), len(instruments))
    action_space = settings.actions.space
    return PolicySpec(
        feature_names=feature_names,
        norm=observation.norm,
        clip_zscore=observation.clip_zscore,
        instruments=instruments,
        risk_features=observation.risk_features,
        action_space="discrete" if isinstance(settings.actions, DiscreteWeights) else "continuous",
        observation_shape=tuple(int(n) for n in space.shape or ()),
        action_shape=tuple(int(n) for n in action_space.shape or ()),
        volatility_target=settings.actions.volatility_target,
    )


class RecurrentMemory(Record):
    """What a recurrent policy remembers between calls: its LSTM arrays (flat, with their
    shapes; None before its first observation) and whether the next observation starts an
    episode. float32 values are exact in JSON's float64."""

    arrays: tuple[tuple[float, ...], ...] | None
    shapes: tuple[tuple[int, ...], ...] | None
    episode_start: bool


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
        spec = PolicyRecord.read(spec_path).spec
        return cls(RecurrentPPO.load(zip_path, device=device), spec)

    def reset(self) -> None:
        """Forget the LSTM state: the next observation starts a new episode."""
        self._state = None
        self._episode_start = True

    def memory(self) -> RecurrentMemory:
        """The LSTM state now, for :meth:`remember` in a later session."""
        if self._state is None:
            return RecurrentMemory(arrays=None, shapes=None, episode_start=self._episode_start)
        arrays = [np.asarray(array, dtype=np.float32) for array in self._state]
        return RecurrentMemory(
            arrays=tuple(tuple(float(x) for x in array.ravel()) for array in arrays),
            shapes=tuple(tuple(int(n) for n in array.shape) for array in arrays),
            episode_start=self._episode_start,
        )

    def remember(self, memory: RecurrentMemory) -> None:
        """Continue from ``memory``: the next observation is acted on as if no session ended."""
        if memory.arrays is None or memory.shapes is None:
            self._state = None
        else:
            self._state = tuple(
                np.asarray(values, dtype=np.float32).reshape(shape)
                for values, shape in zip(memory.arrays, memory.shapes, strict=True)
            )
        self._episode_start = memory.episode_start

    def act(self, observation: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Return the deterministic action for one observation, advancing the LSTM state."""
        action, self._state = self.model.predict(
            observation,
            state=self._state,
            episode_start=np.array([self._episode_start]),
            deterministic=True,
        )
        self._episode_start = False
        return np.asarray(action)

    def check_compatible(
        self,
        observation_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        feature_names: tuple[str, ...],
    ) -> None:
        """Refuse an environment whose spaces or features differ from the policy's, naming both."""
        check_compatible(
            tuple(self.model.observation_space.shape),
            tuple(self.model.action_space.shape),
            observation_shape,
            action_shape,
        )
        if feature_names != self.spec.feature_names:
            raise ModelCompatibilityError(
                f"feature mismatch: policy was trained on {list(self.spec.feature_names)}, "
                f"data has {list(feature_names)}"
            )


def policy_settings(config: Config, spec: PolicySpec) -> EngineSettings:
    """Economics from ``config`` (costs, limits, reward); observations and actions from ``spec``."""
    base = EngineSettings.from_config(config, spec.norm, spec.clip_zscore, len(spec.instruments))
    limits = PortfolioLimits.from_config(config)
    n_instruments = len(spec.instruments)
    target = spec.volatility_target
    actions: ContinuousWeights | DiscreteWeights = (
        DiscreteWeights(n_instruments, limits, target)
        if spec.action_space == "discrete"
        else ContinuousWeights(n_instruments, limits, target)
    )
    return replace(base, observation=observation_builder(spec), actions=actions)
