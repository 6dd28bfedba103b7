"""MLflow tracking, the model registry and the promotion gate."""
