"""Risk latency: VaR/ES on one year of returns, the risk check per action, and its overhead.

1. The time each VaR method takes to give VaR and ES at 95% and 99% on one year (252 days) of
   S&P 500 returns (median of repeats).
2. The environment's steps/s on the btcusd_1h sample, random actions, with the risk engine on
   beside off (same costs, risk features and safeguards), interleaved in the same run; the
   per-action latency of the risk check is the difference in time per step.

Run: .venv/bin/python benchmarks/risk_latency.py
The last line reads ``risk_gate_overhead_pct: X.X`` (goal: under 20).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sample_env import sample_env

from ijules.env.trading_env import TradingEnv
from ijules.risk.var import estimators

REPO = Path(__file__).resolve().parents[1]


def var_timings(repeats: int) -> list[tuple[str, float]]:
    frame = pd.read_csv(REPO / "data" / "samples" / "sp500_daily_close.csv.gz")
    returns = np.log(frame["SP500"]).diff().dropna().to_numpy()[-252:]
    timings = []
    for name, estimate in estimators(paths=20_000, seed=0).items():
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            for confidence in (0.95, 0.99):
                estimate(returns, confidence)
            runs.append(time.perf_counter() - started)
        timings.append((name, statistics.median(runs)))
    return timings


def rate(env: TradingEnv, actions: np.ndarray, steps: int) -> float:
    env.reset(seed=0)
    started = time.perf_counter()
    for k in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[k % len(actions)])
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"{'VaR + ES at 95% and 99%, 252 daily returns':46}{'ms':>10}")
    timings = var_timings(args.repeats)
    for name, seconds in timings:
        print(f"{name:46}{1000 * seconds:>10.1f}")
    print(f"{'all methods':46}{1000 * sum(s for _, s in timings):>10.1f}")

    actions = np.random.default_rng(0).uniform(-1, 1, size=(100_000, 1)).astype(np.float32)
    on = sample_env(risk_on=True, episode_bars=512)
    off = sample_env(risk_on=False, episode_bars=512)
    rate(on, actions, 5_000), rate(off, actions, 5_000)  # compile and warm up
    rates_on, rates_off = [], []
    for _ in range(args.repeats):
        rates_off.append(rate(off, actions, args.steps))
        rates_on.append(rate(on, actions, args.steps))
    with_gate, without = statistics.median(rates_on), statistics.median(rates_off)
    per_action_us = (1 / with_gate - 1 / without) * 1e6
    print(f"\n{'environment (btcusd_1h, random actions)':46}{'steps/s':>12}")
    print(f"{'risk engine off':46}{without:>12,.0f}")
    print(f"{'risk engine on':46}{with_gate:>12,.0f}")
    print(f"{'risk check per action (difference)':46}{per_action_us:>11.2f}us")
    print(f"risk_gate_overhead_pct: {100 * (1 - with_gate / without):.1f}")


if __name__ == "__main__":
    main()
