"""Manual alias moves and rollback: seconds, recorded on the versions involved."""

from __future__ import annotations

import logging

from ijules.config import Config
from ijules.errors import RegistryError
from ijules.registry.register import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    REASONS_TAG,
    STATUS_TAG,
    alias_version,
)
from ijules.tracking import configure

log = logging.getLogger(__name__)

ROLLED_BACK_TAG = "ijules.rolled_back_to"


def promote(config: Config, version: str, alias: str, *, reason: str, force: bool) -> str | None:
    """Point ``alias`` at ``version``; return the version it pointed at before, if any.

    A version the gate rejected is refused unless ``force`` is set: a human overriding the gate
    must say so.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if alias not in (CHAMPION, CHALLENGER):
        raise RegistryError(f"alias must be {CHAMPION} or {CHALLENGER}, got {alias!r}")
    configure(config.registry.experiment)
    client = MlflowClient()
    name = config.registry.model_name
    try:
        target = client.get_model_version(name, version)
    except MlflowException:
        raise RegistryError(f"{name} has no version {version}") from None
    if target.tags.get(STATUS_TAG) == "rejected" and not force:
        raise RegistryError(
            f"{name} v{version} was rejected by the gate ({target.tags.get(REASONS_TAG)}); "
            "pass --force to override"
        )
    previous = _current(client, name, alias)
    if alias == CHAMPION and previous is not None and previous != version:
        client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, previous)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, f"ijules.promoted_to_{alias}", reason)
    log.info("%s@%s -> v%s (was %s): %s", name, alias, version, previous, reason)
    return previous


def rollback(config: Config) -> tuple[str, str]:
    """Move ``champion`` back to the version it replaced; return (from, to)."""
    from mlflow import MlflowClient

    configure(config.registry.experiment)
    client = MlflowClient()
    name = config.registry.model_name
    current = _current(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    restored = client.get_model_version(name, current).tags.get(PREVIOUS_CHAMPION_TAG)
    if not restored:
        raise RegistryError(f"{name} champion v{current} replaced no earlier version")
    client.set_registered_model_alias(name, CHAMPION, restored)
    client.set_model_version_tag(name, current, ROLLED_BACK_TAG, restored)
    log.info("%s@champion rolled back: v%s -> v%s", name, current, restored)
    return current, restored


def _current(client: object, name: str, alias: str) -> str | None:
    found = alias_version(client, name, alias)
    return None if found is None else str(found.version)
