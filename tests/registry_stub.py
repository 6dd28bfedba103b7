"""A registry of stand-in versions, for the promotion and rollback tests and the rollback
benchmark: they need versions with weights to verify, not trained policies."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlflow.pyfunc import PythonModel


class _Stub(PythonModel):
    """Carries a policy's files as artifacts; nothing here is served."""

    def predict(self, context: Any, model_input: list[float]) -> list[float]:
        return model_input


def stub_registry(config: Any, statuses: dict[str, str | None]) -> Any:
    """A registered model with one version per entry of ``statuses`` (version -> the status its
    review and approval left, None: never reviewed), each pointing at a small model holding a
    ``policy.zip`` (random bytes) and ``policy.json``, with the weights checksum recorded as at
    registration. Returns the MLflow client."""
    import mlflow
    from mlflow import MlflowClient

    from ijules.artifacts import POLICY_SPEC, POLICY_ZIP
    from ijules.registry.register import STATUS_TAG, WEIGHTS_TAG
    from ijules.registry.review import sha256_of
    from ijules.tracking import configure

    with tempfile.TemporaryDirectory() as folder:
        weights, spec = Path(folder) / POLICY_ZIP, Path(folder) / POLICY_SPEC
        weights.write_bytes(bytes(range(256)) * 64)
        spec.write_text("{}")
        with mlflow.start_run(experiment_id=configure(config.registry.experiment)):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=_Stub(),
                artifacts={"policy_zip": str(weights), "policy_spec": str(spec)},
            )
        checksum = sha256_of(weights)
    client = MlflowClient()
    name = config.registry.model_name
    client.create_registered_model(name)
    for version, status in statuses.items():
        created = client.create_model_version(name, info.model_uri, run_id=info.run_id)
        assert str(created.version) == version
        client.set_model_version_tag(name, version, WEIGHTS_TAG, checksum)
        if status is not None:
            client.set_model_version_tag(name, version, STATUS_TAG, status)
    return client
