#!/usr/bin/env bash
# Debian packages the cluster deployment and the browser test need, installed when missing:
# redis-server (Celery's broker), PostgreSQL 15 (Airflow's and MLflow's database) and Chromium
# (the UI test drives it through Playwright; no browser is downloaded). Needs root (apt-get).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
