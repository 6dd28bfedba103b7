"""`ijules` forked from a warm process (ijules/launch.py) behaves as `ijules` started cold: the
same outputs, streams, exit status, error record, working folder and environment."""

from __future__ import annotations

import os
import shutil
import signal
import socket as socketlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ijules.launch import WARM_SOCKET_ENV, warm_process
from tests.conftest import make_project

IJULES = str(Path(sys.executable).parent / "ijules")  # the console script the tasks run


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    short = Path(tempfile.mkdtemp(prefix="ijw-"))  # a Unix socket's path is short
    try:
        with warm_process(short, tmp_path_factory.mktemp("warm") / "warm.log") as path:
            yield path
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("warm-project") / "project")


def ijules(
    project: Path, *args: str, socket: Path | None, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "IJULES_PROJECT_DIR": str(project), **env}
    full.pop(WARM_SOCKET_ENV, None)
    if socket is not None:
        full[WARM_SOCKET_ENV] = str(socket)
    return subprocess.run(
        [IJULES, *args], cwd=project, env=full, capture_output=True, text=True, timeout=300
    )


def test_a_stage_writes_the_same_bytes_and_says_the_same_warm_or_cold(warm, project) -> None:
    runs = {}
    for mode, socket in (("cold", None), ("warm", warm)):
        staged = f"data/staging/{mode}.parquet"
        runs[mode] = ijules(
            project, "ingest", "--output", staged, "--report", f"reports/{mode}.json",
            socket=socket,
        )  # fmt: skip
        assert runs[mode].returncode == 0, runs[mode].stderr
    assert runs["warm"].stdout == runs["cold"].stdout
    assert runs["warm"].stdout.startswith("ingested ")
    assert (project / "data/staging/warm.parquet").read_bytes() == (
        project / "data/staging/cold.parquet"
    ).read_bytes()


def test_a_failure_exits_1_with_its_line_and_record_in_the_commands_folder(warm, project) -> None:
    """The error record's relative path resolves in the caller's folder, from its environment."""
    results = {}
    for mode, socket in (("cold", None), ("warm", warm)):
        results[mode] = ijules(
            project, "validate", "--staged", "missing.parquet", socket=socket,
            IJULES_ERROR_FILE=f"var/{mode}.error",
        )  # fmt: skip
    for mode, result in results.items():
        assert result.returncode == 1, result
        assert result.stderr.strip() == (
            "error: staged bars not found: missing.parquet (run `ijules ingest` first)"
        )
        record = project / "var" / f"{mode}.error"
        assert record.read_text() == result.stderr.strip().removeprefix("error: ") + "\n"
    # A usage error: click's status 2 and its message, no traceback, and the record.
    usage = [
        ijules(project, "validate", "--no-such", socket=s, IJULES_ERROR_FILE="var/usage.error")
        for s in (None, warm)
    ]
    assert [r.returncode for r in usage] == [2, 2]
    assert usage[0].stderr == usage[1].stderr
    assert usage[0].stderr.endswith("Error: No such option: --no-such\n")
    assert "Traceback" not in usage[0].stderr
    assert (project / "var" / "usage.error").read_text() == "No such option: --no-such\n"


def test_the_warm_path_is_taken_and_no_warm_process_means_cold(warm, project) -> None:
    cold = ijules(project, "config", socket=None)
    assert cold.returncode == 0 and cold.stdout.startswith("seed:")
    probe = (
        "import sys; sys.argv = ['ijules', 'config']\n"
        "from ijules.launch import _run_warm\n"
        f"print('status', _run_warm({str(warm)!r}))\n"
        "print('status', _run_warm('/nonexistent/ijules.sock'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=120,
        env={**os.environ, "IJULES_PROJECT_DIR": str(project)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The warm child wrote the parameters to this process's stdout, then its status came back;
    # with no warm process there, nothing ran and the caller is told to run cold.
    assert result.stdout == cold.stdout + "status 0\nstatus None\n"
    missing = ijules(project, "config", socket=Path("/nonexistent/ijules.sock"))
    assert (missing.returncode, missing.stdout) == (0, cold.stdout)


@pytest.fixture
def silent_tracking_server() -> Iterator[str]:
    """An MLflow address that accepts connections and never answers: a command there waits."""
    with socketlib.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_signal_to_the_command_stops_the_forked_child_as_it_would_a_cold_one(
    warm, project, silent_tracking_server
) -> None:
    """Airflow stops a task by signalling its process: the warm child must stop with it."""
    stopped = {}
    for mode, socket in (("cold", None), ("warm", warm)):
        env = {
            **os.environ,
            "IJULES_PROJECT_DIR": str(project),
            "MLFLOW_TRACKING_URI": silent_tracking_server,
        }
        env.pop(WARM_SOCKET_ENV, None)
        if socket is not None:
            env[WARM_SOCKET_ENV] = str(socket)
        command = subprocess.Popen(
            [IJULES, "rollback", "--reason", "waits on the registry"], cwd=project, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(10)  # past a cold start's imports: waiting on the registry's answer
        assert command.poll() is None, command.communicate()
        command.send_signal(signal.SIGTERM)
        command.communicate(timeout=60)  # returns once the child's end has closed: it exited
        stopped[mode] = command.returncode
    assert stopped == {"cold": -signal.SIGTERM, "warm": -signal.SIGTERM}
