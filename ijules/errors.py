"""Expected failures: each carries a one-line cause that the CLI prints before exiting non-zero."""

from __future__ import annotations


class IjulesError(Exception):
    """A failure the user can act on; the message names the file, key or rule at fault."""


class ConfigError(IjulesError):
    """params.yaml or a phase overlay is unknown, ill-typed or asks for unimplemented work."""


class RefusedKeyError(ConfigError):
    """A parameter file sets a key of the master plan that is not built (REFUSED_KEYS)."""


class IngestError(IjulesError):
    """The bar source cannot be read into the canonical schema."""


class DataValidationError(IjulesError):
    """The bars broke one or more data-quality rules."""


class ModelCompatibilityError(IjulesError):
    """A policy does not fit the environment it is asked to act in."""


class TrainingError(IjulesError):
    """Training diverged or could not start."""


class RegistryError(IjulesError):
    """The model registry is missing what a step needs."""


class ArtifactError(IjulesError):
    """A file one stage hands another is missing, or does not hold what its writer writes."""
