"""An Airflow api-server a named person answers approvals through (the HITL REST API).

The replay's approver and the end-to-end tests' answer the weekly run's approval over HTTP, as a
risk officer does from the UI's Required Actions page: this starts the api-server on the current
Airflow home and metadata database, with one named user (simple auth manager; the password is
generated into AIRFLOW_HOME), never all-admins, so the answer is recorded under that name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ijules.errors import IjulesError


@contextmanager
def approvals_api(user: str, log: Path, wait_s: float = 180.0) -> Iterator[str]:
    """Start the api-server on a free loopback port; yield its address; stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
    }
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + wait_s
            while not _listening(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise IjulesError(f"the Airflow api-server did not start; see {log}")
                time.sleep(1)
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
