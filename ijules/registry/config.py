"""Configuration of the MLflow names the registry and the runs use."""

from __future__ import annotations

from ijules.frozen import Frozen


class RegistryConfig(Frozen):
    """MLflow names."""

    model_name: str = "ijules-policy"
    experiment: str = "ijules"
