"""Training speed: the configured training beside a fixed reference, on the same bars.

The reference is how training was set up before it was tuned for speed: sb3-contrib's stock
``MlpLstmPolicy``, 4 environments, 256 steps each per rollout, minibatches of 256, 4 epochs,
LSTM 32, net [64]. The configured training is ``params.yaml``'s, built as
``ijules.training.fit.fit`` builds it (``build_model``: the fused-LSTM policy and the configured
number of environments, rollout, minibatch and epochs). Both train RecurrentPPO on
``VectorTradingEnv`` over the train window of the default data, with the same learning rate,
discount, network size and seed.

The figure is environment steps per second of the whole ``model.learn`` loop (rollouts and
updates), each run building fresh models (untimed) and the setups alternating one chunk of
``--chunk`` steps at a time (in order, then in reverse), so that a busy neighbour slows them
alike; a middle row, the fused policy at the reference's sizes, shows what the fused LSTM alone
gives; each total sums the fastest repeat of every chunk. The work per sample is stated beside
the speed: gradient passes per sample (``n_epochs``) must be at least the reference's for the
comparison to be fair.

Goal: at least 5 times the reference on a 2-core machine, with the same network size and at
least as many epochs over each sample.

Run: .venv/bin/python benchmarks/training_speed.py
The last line reads ``training_speedup_vs_reference: X.XX``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed
from training_throughput import our_env, train_window, warm_up

from ijules.config import Config, load_config
from ijules.env.vector_env import VectorTradingEnv
from ijules.training.fit import build_model, resolve_device

REFERENCE = {
    "n_envs": 4,
    "n_steps": 256,
    "batch_size": 256,
    "n_epochs": 4,
    "lstm_hidden_size": 32,
    "net_arch": (64,),
}


def reference_config(config: Config) -> Config:
    """``config`` with the reference's training setup (everything else as configured)."""
    training = config.training.model_copy(update=REFERENCE)
    return config.model_copy(update={"training": training})


def reference_model(config: Config, env: VectorTradingEnv, device: str) -> Any:
    """The reference: sb3-contrib's stock MlpLstmPolicy, built like the configured model."""
    return build_model(config, env, device, policy="MlpLstmPolicy")


def describe(config: Config, policy: str) -> str:
    t = config.training
    return (
        f"{policy}: n_envs {t.n_envs}, n_steps {t.n_steps}, batch {t.batch_size}, "
        f"epochs {t.n_epochs}, lstm {t.lstm_hidden_size}, net {list(t.net_arch)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=16384, help="steps trained per run, each")
    parser.add_argument("--chunk", type=int, default=4096, help="steps per alternation")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    args = parser.parse_args()

    configured = load_config()
    reference = reference_config(configured)
    torch.set_num_threads(configured.training.torch_threads)
    device = resolve_device(args.device)
    market, feature_set, source = train_window(configured)
    # The middle row splits the gain: the fused LSTM alone, at the reference's sizes.
    setups = {
        "reference": (reference, reference_model),
        "fused": (reference, build_model),
        "configured": (configured, build_model),
    }
    envs = {name: our_env(config, market, feature_set) for name, (config, _) in setups.items()}
    for name, env in envs.items():
        warm_up(env, 300, configured.seed)
        rollout = setups[name][0].training.n_steps * env.num_envs
        if args.chunk % rollout:
            parser.error(f"--chunk {args.chunk} is not a whole number of {name} rollouts")
        # torch's first calls on this device, outside the timing
        setups[name][1](setups[name][0], env, device).learn(rollout)

    chunks = args.timesteps // args.chunk
    seconds = {name: np.full((args.repeats, chunks), np.nan) for name in setups}
    for run in range(args.repeats):
        models = {name: make(config, envs[name], device) for name, (config, make) in setups.items()}
        for k in range(chunks):
            order = list(models) if (run + k) % 2 == 0 else list(reversed(models))
            # ABBA order: a busy neighbour slows every setup alike.
            for name in order:
                set_random_seed(configured.seed + k)
                started = time.perf_counter()
                models[name].learn(args.chunk, reset_num_timesteps=k == 0)
                seconds[name][run, k] = time.perf_counter() - started

    trained = chunks * args.chunk
    rates = {name: trained / float(s.min(axis=0).sum()) for name, s in seconds.items()}
    print(f"device: {device} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(
        f"data: {source}, train window {len(market):,} bars x {len(market.feature_names)} features"
    )
    print(f"{trained:,} steps per run, {args.repeats} interleaved runs, fastest per chunk\n")
    print(f"{'':96}{'env-steps/s':>12}{'ratio':>8}")
    for name, (config, _) in setups.items():
        policy = "stock MlpLstmPolicy" if name == "reference" else "fused-LSTM policy"
        label = f"{name:11}{describe(config, policy)}"
        print(f"{label:96}{rates[name]:>12,.0f}{rates[name] / rates['reference']:>8.2f}")
    epochs = configured.training.n_epochs
    print(f"\ngradient passes per sample: reference {REFERENCE['n_epochs']}, configured {epochs}")
    print(f"training_speedup_vs_reference: {rates['configured'] / rates['reference']:.2f}")


if __name__ == "__main__":
    main()
