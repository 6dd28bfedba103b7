"""Checkpoints: an interrupted training resumes where its last checkpoint left it.

A checkpoint is the SB3 zip (weights, optimiser, step count) and a JSON state (the MLflow run to
continue, the curriculum's position). Both are written atomically, the state last, so a crash
while saving leaves the previous checkpoint whole. Checkpoints live in a folder keyed by
everything that shapes the result (parameters, data, seed): a run with other inputs never
resumes from them. They are deleted once the model is saved.

A resumed run continues the same MLflow run and reaches the same number of steps; its numbers
are not bit-identical to an uninterrupted run's (the rollout that was cut off is replayed with
fresh random draws).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from ijules.io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

MODEL_FILE = "checkpoint.zip"
STATE_FILE = "checkpoint.json"


def checkpoint_folder(root: Path, *parts: str) -> Path:
    """The folder for a run defined by ``parts`` (digests of params and data, the seed...)."""
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
    return root / key


@dataclass(frozen=True)
class Checkpoint:
    """A saved point of a training run."""

    model: Path
    timesteps: int
    state: dict[str, Any]


def latest(folder: Path | None) -> Checkpoint | None:
    """The checkpoint in ``folder``, if a complete one is there."""
    if folder is None or not (folder / STATE_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        return None
    state = read_json(folder / STATE_FILE)
    return Checkpoint(folder / MODEL_FILE, int(state["timesteps"]), state)


def discard(folder: Path | None) -> None:
    """Remove a finished run's checkpoints."""
    if folder is not None and folder.exists():
        shutil.rmtree(folder)


class CheckpointEvery(BaseCallback):
    """Saves the model every ``every`` steps, between updates (never mid-rollout)."""

    def __init__(self, folder: Path, every: int, state: Any) -> None:
        super().__init__()
        self.folder = folder
        self.every = every
        self.state = state  # called for the JSON state to save beside the weights
        self._saved_at = -1

    def _init_callback(self) -> None:
        self._saved_at = int(self.model.num_timesteps)

    def _on_rollout_start(self) -> None:
        steps = int(self.model.num_timesteps)
        if steps - self._saved_at < self.every:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / MODEL_FILE) as tmp, tmp.open("wb") as handle:
            self.model.save(handle)
        write_json(self.folder / STATE_FILE, {"timesteps": steps, **self.state()})
        self._saved_at = steps
        log.info("checkpoint at %d steps in %s", steps, self.folder)

    def _on_step(self) -> bool:
        return True
