"""Training throughput: RecurrentPPO on our environment beside the same algorithm on a trivial one.

Both train RecurrentPPO ("MlpLstmPolicy") with the configured hyper-parameters, seed and number
of environments (``ijules.training.fit.build_model``). Ours is the training environment exactly as
``ijules.training.fit.fit`` builds it on the train window of the default data (VectorTradingEnv:
costs, risk engine, safeguards, risk features). The trivial VecEnv has the same observation and
action spaces and does nothing: observations from a fixed random pool, zero rewards, episodes of
``environment.episode_bars`` steps; its rate is the algorithm's own ceiling on this machine.

The two run in the same process, alternating one rollout and update at a time (trivial, ours,
ours, trivial, ...); only ``model.learn`` is timed (environments warmed up, numba compiled, models
built beforehand). Ours also runs the training loop's own wrappers (gradient clipping with its
norm recorded, the episode-range callback); MLflow logging, a few calls per update, is left out.
Every run does the same work (fresh models, same seed), so each figure sums,
over the rollouts, the fastest of the repeats: a busy neighbour on a shared host cannot inflate
it (``--median``: the median of the runs' totals instead). The overhead is the extra training
time ours takes for the same number of steps.

Goal: our environment, wrappers and risk engine add at most 15% to training time.

Run: .venv/bin/python benchmarks/training_throughput.py
The last line reads ``training_overhead_pct: X.X``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn

from ijules.artifacts import FeatureSet
from ijules.config import Config, load_config
from ijules.data.features import run_features
from ijules.data.ingest import run_ingest
from ijules.data.validate import run_validate
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData, load_window
from ijules.env.safeguards import Safeguards
from ijules.env.vector_env import VectorTradingEnv
from ijules.training.diagnostics import Diagnostics, EpisodeRange, clip_and_watch_gradients
from ijules.training.fit import build_model, resolve_device

REPO = Path(__file__).resolve().parents[1]


class TrivialVecEnv(VecEnv):
    """Same spaces as ours; zero rewards, pooled random observations, fixed-length episodes."""

    def __init__(self, like: VecEnv, episode_bars: int, seed: int) -> None:
        self.render_mode = None
        super().__init__(like.num_envs, like.observation_space, like.action_space)
        shape = (1024, like.num_envs, *like.observation_space.shape)
        pool = np.random.default_rng(seed).standard_normal(shape)
        self._pool = pool.astype(like.observation_space.dtype)
        self._episode_bars = episode_bars
        self._rewards = np.zeros(like.num_envs, dtype=np.float32)
        self._t = 0
        self._k = 0

    def _next(self) -> Any:
        self._k = (self._k + 1) % len(self._pool)
        return self._pool[self._k].copy()

    def reset(self) -> Any:
        self._t = 0
        return self._next()

    def step_async(self, actions: Any) -> None:
        pass

    def step_wait(self) -> VecEnvStepReturn:
        self._t += 1
        observations = self._next()
        done = np.full(self.num_envs, self._t >= self._episode_bars)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done[0]:
            # Truncated like ours, so the algorithm bootstraps from the same terminal values.
            infos = [
                {"terminal_observation": observations[b], "TimeLimit.truncated": True}
                for b in range(self.num_envs)
            ]
            self._t = 0
            observations = self._next()
        return observations, self._rewards.copy(), done, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * self.num_envs

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> Any:
        return [getattr(self, method_name)(*args, **kwargs)] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs


def train_window(config: Config) -> tuple[MarketData, FeatureSet, str]:
    """The train window of the pipeline's features (built from the sample when absent)."""
    paths = config.paths
    features, meta = REPO / paths.features, REPO / paths.feature_meta
    if features.is_file() and meta.is_file():
        feature_set = FeatureSet.read(meta)
        return load_window(features, feature_set, "train", config), feature_set, paths.features
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        staged, bars = root / "staged.parquet", root / "bars.parquet"
        features, meta = root / "features.parquet", root / "meta.json"
        source = REPO / config.data.source
        run_ingest(config, source=source, output=staged, report=root / "ingest.json")
        run_validate(config, staged=staged, output=bars, result=root / "validation.json")
        feature_set = run_features(config, bars=bars, output=features, meta=meta)
        market = load_window(features, feature_set, "train", config)
        return market, feature_set, f"{config.data.source}, features built here"


def our_env(config: Config, market: MarketData, feature_set: FeatureSet) -> VectorTradingEnv:
    """The training environment, built as ``ijules.training.fit.fit`` builds it."""
    settings = EngineSettings.from_config(
        config, feature_set.norm, feature_set.clip_zscore, market.n_instruments
    )
    return VectorTradingEnv(
        market,
        settings,
        Safeguards(config.safeguards),
        n_envs=config.training.n_envs,
        episode_bars=config.environment.episode_bars,
        seed=config.seed,
    )


def warm_up(env: VecEnv, steps: int, seed: int) -> None:
    """Step with random actions (compiles the kernels, touches the buffers), then reset."""
    env.action_space.seed(seed)
    env.reset()
    for _ in range(steps):
        env.step(np.stack([env.action_space.sample() for _ in range(env.num_envs)]))
    env.reset()


class RolloutClock(BaseCallback):
    """Adds up the seconds spent collecting rollouts (environment steps and policy forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self._started = 0.0

    def _on_rollout_start(self) -> None:
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.seconds += time.perf_counter() - self._started

    def _on_step(self) -> bool:
        return True


def learn_seconds(model: Any, timesteps: int, ours: bool = False) -> tuple[float, float]:
    """Wall-clock seconds of ``model.learn`` for ``timesteps`` more steps, and of its rollouts.

    ``ours`` adds the training loop's own callback (the episode reward range), as ``fit`` does.
    """
    clock = RolloutClock()
    callbacks: list[BaseCallback] = [clock, EpisodeRange()] if ours else [clock]
    started = time.perf_counter()
    model.learn(
        total_timesteps=timesteps,
        callback=CallbackList(callbacks),
        reset_num_timesteps=model.num_timesteps == 0,
    )
    return time.perf_counter() - started, clock.seconds


def measure(
    config: Config, envs: dict[str, VecEnv], device: str, timesteps: int, repeats: int, best: bool
) -> tuple[int, dict[str, dict[str, float]]]:
    """Steps trained per run, and each environment's seconds: all, rollouts and updates.

    Each run builds fresh models (untimed; same seed, so every run does the same work) and
    alternates between them one rollout and update at a time, in ABBA order, so a busy
    neighbour slows both alike. The global random state is reset before each, so both updates
    draw the same minibatches (the recurrent update's cost depends on where they split).
    ``best`` sums the fastest run of each rollout and update; otherwise the median total.
    """
    rollout = config.training.n_steps * config.training.n_envs
    for env in envs.values():  # torch's first calls on this device, outside the timing
        learn_seconds(build_model(config, env, device), rollout)
    chunks = [min(rollout, timesteps - done) for done in range(0, timesteps, rollout)]
    seconds = {name: np.zeros((2, repeats, len(chunks))) for name in envs}
    for run in range(repeats):
        models = {name: build_model(config, env, device) for name, env in envs.items()}
        # Ours trains as fit() does: gradients clipped (and their norm recorded) by our wrapper.
        clip_and_watch_gradients(
            models["ours"],
            config.training.max_grad_norm,
            Diagnostics(config.training.entropy_floor, Safeguards(config.safeguards)),
        )
        for k, steps in enumerate(chunks):
            for name in list(models) if k % 2 == 0 else list(reversed(models)):
                # The same minibatch splits for both: the update's work depends on them.
                set_random_seed(config.seed + k)
                seconds[name][:, run, k] = learn_seconds(models[name], steps, name == "ours")
    trained = int(next(iter(models.values())).num_timesteps)

    def statistic(cells: npt.NDArray[np.float64]) -> float:
        return float(cells.min(axis=0).sum() if best else np.median(cells.sum(axis=1)))

    return trained, {
        name: {
            "all": statistic(total),
            "rollouts": statistic(rollouts),
            "updates": statistic(total - rollouts),
        }
        for name, (total, rollouts) in seconds.items()
    }


def report(device: str, trained: int, seconds: dict[str, dict[str, float]]) -> float:
    """Print one device's figures; return the overhead in percent."""
    trivial, ours = seconds["trivial"], seconds["ours"]
    overhead = 100.0 * (ours["all"] / trivial["all"] - 1.0)
    rate_trivial, rate_ours = trained / trivial["all"], trained / ours["all"]
    print(f"{'RecurrentPPO MlpLstmPolicy, ' + device:58}{'steps/s':>12}{'ratio':>8}")
    print(f"{'trivial VecEnv (zero rewards, no market)':58}{rate_trivial:>12,.0f}{1:>8.2f}")
    label = "ijules VectorTradingEnv (costs, risk engine, safeguards)"
    print(f"{label:58}{rate_ours:>12,.0f}{rate_ours / rate_trivial:>8.2f}")
    print(f"\n{f'seconds per {trained:,} steps':46}{'trivial':>10}{'ours':>10}{'added':>10}")
    for key, label in (
        ("rollouts", "collecting rollouts (env + policy forward)"),
        ("updates", "updates (the same work for both)"),
        ("all", "model.learn in all"),
    ):
        added = ours[key] - trivial[key]
        print(f"{label:46}{trivial[key]:>10.2f}{ours[key]:>10.2f}{added:>+10.2f}")
    print(f"{'training time added by our environment':46}{overhead:>+29.1f}%")
    return overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=8192, help="training steps per run, each")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each")
    parser.add_argument(
        "--warmup-steps", type=int, default=300, help="untimed random steps of each environment"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="cpu",
        help="the device of the last line (CPU runs are followed by CUDA ones when available)",
    )
    parser.add_argument(
        "--median", action="store_true", help="median of the runs' totals, not best per rollout"
    )
    args = parser.parse_args()

    config = load_config(REPO / "params.yaml")
    training = config.training
    torch.set_num_threads(training.torch_threads)
    device = resolve_device(args.device)
    devices = [device] + (["cuda"] if device == "cpu" and torch.cuda.is_available() else [])
    market, feature_set, source = train_window(config)
    ours = our_env(config, market, feature_set)
    trivial = TrivialVecEnv(ours, config.environment.episode_bars, config.seed)
    envs: dict[str, VecEnv] = {"trivial": trivial, "ours": ours}
    for env in envs.values():
        warm_up(env, args.warmup_steps, config.seed)

    print(
        f"device: {', '.join(devices)} (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads); cuda available: {torch.cuda.is_available()}"
    )
    print(
        f"data: {source}, train window {len(market):,} bars x {len(market.feature_names)} features"
    )
    print(
        f"training: n_envs {training.n_envs}, n_steps {training.n_steps}, "
        f"batch {training.batch_size}, epochs {training.n_epochs}, "
        f"lstm {training.lstm_hidden_size}, net_arch {list(training.net_arch)}, "
        f"episodes of {config.environment.episode_bars} bars"
    )
    how = "median of the totals" if args.median else "fastest per rollout"
    print(f"{args.timesteps:,} training steps per run, {args.repeats} interleaved runs, {how}\n")
    overheads: dict[str, float] = {}
    for name in devices:
        trained, seconds = measure(
            config, envs, name, args.timesteps, args.repeats, not args.median
        )
        overheads[name] = report(name, trained, seconds)
        print()
    print(f"training_overhead_pct: {overheads[device]:.1f}")


if __name__ == "__main__":
    main()
