# IntradayJules. `make run` sets everything up and runs the lifecycle once; `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# Embedded defaults: project-local Airflow (SQLite), MLflow (SQLite), DVC remote and mail sink.
export IJULES_PROJECT_DIR := $(CURDIR)
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM := 4
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS := True
export IJULES_SMTP_PORT ?= 1025
export AIRFLOW_CONN_SMTP_DEFAULT ?= {"conn_type":"smtp","host":"127.0.0.1","port":$(IJULES_SMTP_PORT),"extra":{"disable_tls":true,"disable_ssl":true,"from_email":"ijules@localhost"}}
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/var/mlflow/mlflow.db
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export GX_ANALYTICS_ENABLED := False
export DO_NOT_TRACK := 1
export PATH := $(BIN):$(PATH)

.PHONY: help setup system-deps run test test-fast lint type bench research phases replay up down up-cluster down-cluster clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install the lock (torch first)

system-deps:  ## Install Debian's redis-server, PostgreSQL 15 and Chromium where missing (root)
	bash scripts/system-deps.sh

run: setup  ## Run the whole lifecycle once through Airflow (weekly, then nightly) and summarise it
	bash scripts/run-lifecycle.sh

test: setup system-deps  ## Run the test suite (unit, integration, DAG, end-to-end, the cluster and the UIs)
	$(BIN)/python -m pytest

test-fast: setup  ## Run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"

lint: setup  ## ruff (with Airflow's AIR rules on dags/) and the package's layering contract
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ruff check --preview --select AIR dags
	$(BIN)/lint-imports

type: setup  ## mypy, strict
	$(BIN)/mypy

research: setup  ## The research study behind reports/research (about 25 min on 2 cores; resumes)
	$(BIN)/ijules research

phases: setup  ## Run each phase overlay that loads as a DVC experiment, report in reports/phases (5 pipeline runs)
	bash scripts/phases.sh

replay: setup  ## Replay 3 weeks through the DAGs a day at a time (FROM=, TO= dates): reports/operations/
	$(BIN)/python scripts/replay.py $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO))

bench: setup  ## Run the benchmarks (installs their reference environments first)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/risk_latency.py
	$(BIN)/python benchmarks/training_throughput.py
	$(BIN)/python benchmarks/training_speed.py
	$(BIN)/python benchmarks/rollback_latency.py
	$(BIN)/python benchmarks/mapped_folds.py

up: setup  ## Start the Airflow UI (:8080), the MLflow UI (:5000) and the mail sink in the background
	bash scripts/services.sh up

down:  ## Stop what `make up` started
	bash scripts/services.sh down

up-cluster: setup system-deps  ## The Celery deployment natively: PostgreSQL, Redis, Airflow, 2 workers, MLflow with auth (var/cluster)
	$(BIN)/python scripts/cluster.py up $(if $(GPU_WORKERS),--gpu-workers $(GPU_WORKERS))
	@$(BIN)/python scripts/cluster.py env | grep -E 'MLFLOW_TRACKING_URI|EXECUTION_API' | sed 's/^export /  /'
	@echo "  users and passwords: var/cluster/airflow-passwords.json; secrets: var/cluster/secrets.env"

down-cluster:  ## Stop what `make up-cluster` started (its data stays in var/cluster)
	$(BIN)/python scripts/cluster.py down

clean:  ## Remove local state (Airflow, MLflow, DVC remote and run-cache, mail), so `make run` rebuilds it all; keep .venv
	bash scripts/services.sh down
	# What DVC recorded (dvc.lock, its run-cache) names MLflow runs in var/: without them the next
	# run would restore a model whose training run is gone. dvc.lock is rewritten by `make run`.
	rm -rf var .dvc/cache/runs dvc.lock
