"""Shared test set-up: isolated stores, real data samples and builders.

Tests never download anything and never touch the project's own var/: Airflow, MLflow and the
mail sink get per-session or per-test folders. The environment is set here, before any test
module imports Airflow, because Airflow reads its configuration once, at import.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
# The E-mini trades sample as ingest reads it: a row per trade, price and size, no bar columns.
TRADE_COLUMNS = {
    "timestamp": "DateTime",
    "symbol": None,
    "open": None,
    "high": None,
    "low": None,
    "close": None,
    "volume": None,
    "price": "Price",
    "size": "Volume",
}
# The daily S&P 500 sample as a close-only series: no open, high, low or volume.
SP500_CLOSE_ONLY = {
    "source": str(SAMPLES / "sp500_daily_close.csv.gz"),
    "symbol": "SP500",
    "columns": {
        "timestamp": "date",
        "symbol": None,
        "open": None,
        "high": None,
        "low": None,
        "close": "SP500",
        "volume": None,
    },
    "frequency": "1D",
}
ES_TRADES = {
    "source": str(SAMPLES / "es_trades_2013-09-01_02.csv.gz"),
    "symbol": "ES",
    "timezone": "America/Chicago",
    "kind": "trades",
    "columns": TRADE_COLUMNS,
    "frequency": "1min",
}
BIN = Path(sys.executable).parent

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="ijules-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "GX_ANALYTICS_ENABLED": "False",
        "DO_NOT_TRACK": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "TQDM_DISABLE": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_DIR / 'mlflow' / 'mlflow.db'}",
        "IJULES_TASK_RETRIES": "0",
    }
)
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"

# Files a project copy needs to run the pipeline on its own.
PROJECT_FILES = (
    "ijules", "dags", "config", "great_expectations/gx", "data/samples", "params.yaml", "dvc.yaml",
    "as_of.yaml", ".dvc/config", ".dvcignore", "pyproject.toml",
    "reports/research/summary.json",  # the research study whose trials the DSR counts
    "scripts/phases.sh",  # `make phases`
)  # fmt: skip

# A small budget: the pipeline's plumbing, not the agent's skill, is under test.
TINY = {
    "data": {"end": "2017-10-15T00:00:00Z"},
    "split": {"embargo_bars": 24},
    "environment": {"episode_bars": 64},
    "training": {
        "total_timesteps": 256,
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 1,
    },
    "walk_forward": {
        "test_bars": 150,
        "min_train_bars": 300,
        "embargo_bars": 12,
        "total_timesteps": 128,
    },
    "seeds": {"count": 2},
    "tuning": {"trials": 2, "total_timesteps": 128},
    "drift": {"window_bars": 120},
    "regimes": {"markov_probabilities": False},
    "features": {"regime_signals": ["efficiency_ratio"]},  # no Markov model to read from
    "risk_models": {"monte_carlo_paths": 2000, "refit_every": 60},
    "risk_report": {"var_start": "2021-06-01"},
}


# The review opened for tests: the thresholds no model of a few hundred training steps meets; the
# integrity rows (weights, recomputed figures, compatibility, NaN incidents) and the VaR zone stay.
OPEN_GATE = {
    "min_sharpe": -100.0,
    "max_drawdown": 1.0,
    "max_daily_turnover": 100.0,
    "min_trades": 0,
    "min_walk_forward_pass_rate": 0.0,
    "require_stress_survival": False,
    "beat_passive_buy_and_hold": False,
    "beat_best_rule": False,
    "max_full_capital_fill_cost_bps": 1e6,  # a few weeks of 2017 volume: thin
    "min_psr": 0.0,
    "min_dsr": 0.0,
}


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_params(folder: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write params.yaml (the repository's, with ``overrides``) and the overlays into ``folder``."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "params.yaml"
    target.write_text(yaml.safe_dump(deep_merge(raw, overrides or {}), sort_keys=False))
    if not (folder / "config").exists():
        shutil.copytree(REPO / "config", folder / "config")
    return target


@pytest.fixture
def make_config(tmp_path: Path) -> Any:
    """Build a Config from params.yaml with overrides, through the real loader."""
    from ijules.config import load_config

    def build(overrides: dict[str, Any] | None = None, phase: str | None = None) -> Any:
        return load_config(write_params(tmp_path / "params", overrides), phase)

    return build


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """The clean BTC/USD hourly sample in the canonical schema."""
    frame = pd.read_csv(SAMPLES / "btcusd_1h.csv.gz")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return frame


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store for one test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # MLflow keeps the URI of the last set_tracking_uri call process-wide; start each test afresh.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


class MailSink:
    """A real SMTP server (aiosmtpd) that stores what it receives in a Maildir."""

    def __init__(self, folder: Path) -> None:
        import mailbox

        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Mailbox

        self.folder = folder
        mailbox.Maildir(str(folder), create=True)
        self.port = free_port()
        self._controller = Controller(Mailbox(str(folder)), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def messages(self) -> list[Any]:
        import mailbox

        return list(mailbox.Maildir(str(self.folder), create=False))

    def airflow_connection(self) -> str:
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": self.port,
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "ijules@test"},
            }
        )


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail") as sink:
        yield sink


def make_project(folder: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the project into ``folder`` as its own git + DVC repository, with tiny parameters."""
    for name in PROJECT_FILES:
        source = REPO / name
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    write_params(folder, deep_merge(TINY, overrides or {}))
    # A fresh clone's as-of: none, the whole history. The checkout's own as_of.yaml holds the
    # data-interval end of its last DAG run, which is not the tests' to inherit.
    (folder / "as_of.yaml").write_text("as_of: null\n")
    run(["git", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], folder)
    return folder


def run(
    args: list[str], cwd: Path, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd`` with the test environment plus ``env``."""
    full_env = {**os.environ, "IJULES_PROJECT_DIR": str(cwd), **env}
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
            f"stderr:\n{result.stderr[-5000:]}"
        )
    return result


def stub_registry(config: Any, statuses: dict[str, str | None]) -> Any:
    """A registered model with one version per entry of ``statuses`` (see
    :func:`tests.registry_stub.stub_registry`). Returns the MLflow client."""
    from tests.registry_stub import stub_registry as build

    return build(config, statuses)
