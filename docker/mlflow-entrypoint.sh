#!/usr/bin/env bash
# MLflow's basic-auth app reads its admin and its user database from an ini file; the secrets
# come from the container's environment, so the file is written at start, readable by no one else.
set -euo pipefail
umask 077
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = postgresql+psycopg://ijules:${POSTGRES_PASSWORD}@postgres:5432/mlflow_auth
admin_username = admin
admin_password = ${MLFLOW_ADMIN_PASSWORD}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
exec "$@"
