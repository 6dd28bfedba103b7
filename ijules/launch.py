"""The `ijules` command's entry point: cold, or forked from a warm process.

Cold (the default, and every Airflow worker's way): this process imports the CLI and runs the
command. Each command then pays for its libraries' import first (Great Expectations, Evidently,
torch, MLflow: 2 to 6 s a process on two cores), and a nightly run starts six of them.

Warm: where IJULES_WARM_SOCKET names the socket of a warm process (``warm_process`` starts one;
it has imported the CLI and those libraries once), this process hands it the command
line, the working folder, the umask, the environment and its own standard streams; the warm
process forks a child that runs the command as a cold process would (the same code, streams,
environment, threads waited for, exit handlers and exit status). This process relays SIGTERM,
SIGINT and SIGHUP to the child and exits as the child did, once it has exited. With no warm
process listening there, the command runs cold. The code that runs is the warm process's, as
imported when it started: start it from the environment (and the checkout) its commands would
have. The replay (scripts/replay.py) runs its weeks of DAG runs this way.

Only the standard library is imported here until the command runs: that is the point.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

WARM_SOCKET_ENV = "IJULES_WARM_SOCKET"
# What the commands import: loaded once, by the warm process, before it listens.
WARM_MODULES = (
    "ijules.cli",
    "ijules.data.ingest",
    "ijules.data.validate",
    "ijules.data.features",
    "ijules.monitoring.drift",
    "ijules.paper.night",
    "ijules.health.night",
    "ijules.registry.review",
    "ijules.training.train",
    "ijules.evaluation.evaluate",
    "ijules.evaluation.walk_forward",
    "ijules.evaluation.stress",
    "great_expectations",
    "evidently",
    "mlflow",
    "sb3_contrib",
    "torch",
)
_NUMBER = struct.Struct("!i")  # the request's length, the child's pid, its exit status
_RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_STREAMS = (0, 1, 2)
_SERVE = "import sys, pathlib, ijules.launch as l; l.serve(pathlib.Path(sys.argv[1]))"


def main() -> None:
    """The `ijules` console script: forked from the warm process if one listens, else cold."""
    folder = os.environ.get(WARM_SOCKET_ENV)
    status = _run_warm(folder) if folder else None
    if status is not None:
        raise SystemExit(status)
    from ijules.cli import main as run_cli

    run_cli()


def _run_warm(path: str) -> int | None:
    """Run this command in a child of the warm process; None when none listens at ``path``."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except OSError:
        client.close()
        return None
    umask = os.umask(0)
    os.umask(umask)
    request = json.dumps(
        {"argv": sys.argv, "cwd": str(Path.cwd()), "umask": umask, "env": dict(os.environ)}
    ).encode()
    with client:
        socket.send_fds(client, [_NUMBER.pack(len(request))], list(_STREAMS))
        client.sendall(request)
        pid = _read_number(client)
        if pid is None:
            sys.stderr.write(f"ijules: the warm process at {path} did not start the command\n")
            return 1
        relayed: list[int] = []

        def relay(received: int, _frame: Any) -> None:
            relayed.append(received)
            os.kill(pid, received)

        for number in _RELAYED:
            signal.signal(number, relay)
        status = _read_number(client)
        # The child's end closes when it exits: wait for that, as a shell waits for a process.
        while client.recv(4096):
            pass
    if status is not None:
        return status
    if relayed:  # the child died of the signal it was sent: so does this process, as if cold
        signal.signal(relayed[-1], signal.SIG_DFL)
        os.kill(os.getpid(), relayed[-1])
    sys.stderr.write(f"ijules: the command's process {pid} ended without an exit status\n")
    return 1


@contextmanager
def warm_process(folder: Path, log: Path, wait_s: float = 300.0) -> Iterator[Path]:
    """Start a warm process listening in ``folder``; yield its socket once it accepts; stop it.

    Point IJULES_WARM_SOCKET at the socket for the commands to start from it. A Unix socket's
    path has a length limit (about 100 bytes): keep ``folder`` short.
    """
    path = folder / "ijules.sock"
    with log.open("w") as output:
        server = subprocess.Popen(
            # -c, not -m: the children's __main__ is then a script's, as the console script's
            # is (click names the program from it); -P keeps the folder out of sys.path.
            [sys.executable, "-P", "-c", _SERVE, str(path)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + wait_s
            while not _accepts(path):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the warm ijules process did not start; see {log}")
                time.sleep(0.5)
            yield path
        finally:
            server.terminate()
            server.wait(timeout=60)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        probe.sendall(_NUMBER.pack(-1))  # a probe, not a command: the process drops it
        return True


def _read_number(connection: socket.socket) -> int | None:
    data = b""
    while len(data) < _NUMBER.size:
        chunk = connection.recv(_NUMBER.size - len(data))
        if not chunk:
            return None
        data += chunk
    return int(_NUMBER.unpack(data)[0])


def serve(path: Path) -> None:
    """Import the commands' libraries, then fork a child for each command sent to ``path``."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    server = os.getpid()
    # Children are reaped as they exit; each reports its status over its own connection.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(16)
        while True:
            connection, _address = listener.accept()
            with connection:
                streams: list[int] = []
                try:
                    header, streams, _flags, _address = socket.recv_fds(
                        connection, _NUMBER.size, len(_STREAMS)
                    )
                    request = _read_request(connection, header)
                except _Probe:
                    continue
                except (OSError, ValueError, struct.error) as err:
                    # That client gets no pid and says so; the next one is served.
                    sys.stderr.write(f"ijules warm process: a request was dropped: {err}\n")
                    for stream in streams:
                        os.close(stream)
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                if os.fork() == 0:
                    listener.close()
                    _child(connection, streams, request)
                for stream in streams:
                    os.close(stream)
    finally:
        if os.getpid() == server:  # a child leaves through here too, and must not remove it
            listener.close()
            path.unlink(missing_ok=True)


def _stop(_number: int, _frame: Any) -> NoReturn:
    raise SystemExit(0)


class _Probe(Exception):
    """A readiness probe (``warm_process``), not a command."""


def _read_request(connection: socket.socket, header: bytes) -> dict[str, Any]:
    (length,) = _NUMBER.unpack(header)
    if length < 0:
        raise _Probe
    data = b""
    while len(data) < length:
        chunk = connection.recv(length - len(data))
        if not chunk:
            raise ConnectionError("the ijules client left before its request was complete")
        data += chunk
    request: dict[str, Any] = json.loads(data)
    return request


def _child(connection: socket.socket, streams: list[int], request: dict[str, Any]) -> NoReturn:
    """Become the command's process: its streams, folder, umask, environment and arguments."""
    for number in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    for target, stream in zip(_STREAMS, streams, strict=True):
        os.dup2(stream, target)
        os.close(stream)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    # Kept open (never closed by Python) until the process ends: the client waits for that.
    client = connection.detach()
    os.write(client, _NUMBER.pack(os.getpid()))
    died_of: int | None = None
    try:
        from ijules.cli import main as run_cli

        run_cli()
        status = 0
    except SystemExit as exit_:
        status = _exit_status(exit_.code)
    except KeyboardInterrupt:  # Python ends such a process by SIGINT, after its exit handlers
        traceback.print_exc()
        status, died_of = 1, signal.SIGINT
    except Exception:  # noqa: BLE001  uncaught: the traceback and status 1, as Python gives
        traceback.print_exc()
        status = 1
    # The end of a cold process's life, less tearing the modules down (3 s with these loaded):
    # its threads are waited for and its exit handlers run (CPython's Py_FinalizeEx calls these
    # two first), its streams flushed.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if died_of is not None:
        signal.signal(died_of, signal.SIG_DFL)
        os.kill(os.getpid(), died_of)
    os.write(client, _NUMBER.pack(status))
    os._exit(status)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1
