"""The name an Airflow process reports as its host (``[core] hostname_callable``).

Two Celery workers on one machine (the native cluster, scripts/cluster.py) would both report the
machine's name, and a task instance's ``hostname`` could not tell which worker ran it. Each
worker is started with IJULES_WORKER_NAME; in containers (docker/compose.yaml) it is the
service's name too. Without it: the machine's fully qualified name, Airflow's default.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "IJULES_WORKER_NAME"


def worker_hostname() -> str:
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()
