"""Environment throughput: our environment beside gym-anytrading's stocks-v0, in the same run.

Both step the btcusd_1h sample with uniformly random actions; each figure is the median of
several timed runs. Ours has the full cost engine, risk features and safeguards on; it is timed
without and with the risk engine (whose own overhead benchmarks/risk_latency.py measures). Then
the vectorised environment steps N copies in one kernel call (env-steps/s for N = 1, 8, 64).

Run: .venv/bin/python benchmarks/env_throughput.py   (needs `pip install gym-anytrading==2.0.0`)
The last line reads ``speedup_vs_gym_anytrading: X.XX`` (single environment, risk engine on).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from sample_env import sample_bars, sample_env, sample_vector_env


def median_rate(run: Callable[[int], None], steps: int, repeats: int) -> float:
    """Median steps per second over ``repeats`` timed runs of ``steps`` steps (after a warm-up)."""
    run(min(steps, 2_000))
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(steps)
        rates.append(steps / (time.perf_counter() - started))
    return statistics.median(rates)


def stepper(env, actions: np.ndarray) -> Callable[[int], None]:
    env.reset(seed=0)

    def run(steps: int) -> None:
        for k in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[k % len(actions)])
            if terminated or truncated:
                env.reset()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from gym_anytrading.envs import StocksEnv

    bars = sample_bars()
    rng = np.random.default_rng(0)

    theirs = StocksEnv(
        df=bars.rename(columns=str.capitalize), window_size=10, frame_bound=(10, len(bars))
    )
    their_actions = rng.integers(0, 2, size=100_000)
    our_actions = rng.uniform(-1.0, 1.0, size=(100_000, 1)).astype(np.float32)

    # Interleave the runs so a noisy neighbour slows them alike.
    rates: dict[str, list[float]] = {"theirs": [], "ours": [], "ours_risk": []}
    runs = {
        "theirs": stepper(theirs, their_actions),
        "ours": stepper(sample_env(risk_on=False), our_actions),
        "ours_risk": stepper(sample_env(risk_on=True), our_actions),
    }
    for _ in range(args.repeats):
        for name, run in runs.items():
            rates[name].append(median_rate(run, args.steps, 1))
    theirs_rate, ours_rate, risk_rate = (statistics.median(rates[k]) for k in runs)
    print(f"{'environment':58}{'steps/s':>12}{'ratio':>8}")
    print(f"{'gym-anytrading stocks-v0 (2 actions, no costs)':58}{theirs_rate:>12,.0f}{1:>8.2f}")
    label = "ijules TradingEnv (costs, risk features, safeguards)"
    print(f"{label:58}{ours_rate:>12,.0f}{ours_rate / theirs_rate:>8.2f}")
    label = "  ... and the risk engine on every action"
    print(f"{label:58}{risk_rate:>12,.0f}{risk_rate / theirs_rate:>8.2f}")

    print(f"\n{'vectorised (one kernel call per step)':40}{'N':>6}{'env-steps/s':>16}")
    for n in (1, 8, 64):
        vec = sample_vector_env(n)
        vec.seed(0)
        vec.reset()
        batch = rng.uniform(-1.0, 1.0, size=(256, n, 1)).astype(np.float32)

        def run(steps: int, vec=vec, batch=batch, n=n) -> None:
            for k in range(max(steps // n, 1)):
                vec.step(batch[k % len(batch)])

        rate = median_rate(run, args.steps, args.repeats)
        print(f"{'VectorTradingEnv':40}{n:>6}{rate:>16,.0f}")
    # The headline is the environment as training uses it: the risk engine on every action.
    print(f"speedup_vs_gym_anytrading: {risk_rate / theirs_rate:.2f}")


if __name__ == "__main__":
    main()
