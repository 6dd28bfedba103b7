"""Manual alias moves and rollback: seconds, written to the audit trail before they happen."""

from __future__ import annotations

import logging
from pathlib import Path

from ijules.config import Config
from ijules.errors import RegistryError
from ijules.registry.audit import append, mirror
from ijules.registry.register import (
    AWAITING,
    CHALLENGER,
    CHAMPION,
    DECLINED,
    PREVIOUS_CHAMPION_TAG,
    REASONS_TAG,
    REJECTED,
    STATUS_TAG,
    WEIGHTS_TAG,
    alias_version,
    registered_version,
)
from ijules.registry.review import verify_weights
from ijules.tracking import configure

log = logging.getLogger(__name__)

ROLLED_BACK_TAG = "ijules.rolled_back_to"


# The statuses of a version whose review passed and a person approved.
PASSED = (CHAMPION, CHALLENGER)


def promote(
    config: Config,
    version: str,
    alias: str,
    *,
    reason: str,
    force: bool,
    audit: Path,
    actor: str | None = None,
) -> str | None:
    """Point ``alias`` at ``version``; return the version it pointed at before, if any.

    Only a version whose automatic review passed and whose approval a person gave (status
    champion or challenger) may take an alias. Any other (rejected by the review, declined,
    awaiting approval, never reviewed) is refused unless ``force`` is set with a ``reason``: the
    override is written to the audit trail with the actor, the time and the checks it overrides,
    before the alias moves.
    """
    if alias not in (CHAMPION, CHALLENGER):
        raise RegistryError(f"alias must be {CHAMPION} or {CHALLENGER}, got {alias!r}")
    client, name, target = registered_version(config, version)
    status = target.tags.get(STATUS_TAG)
    overridden = [r for r in target.tags.get(REASONS_TAG, "").split("; ") if r]
    if status not in PASSED:
        why = {
            REJECTED: f"was rejected by the automatic review ({'; '.join(overridden)})",
            DECLINED: f"was declined at approval ({'; '.join(overridden)})",
            AWAITING: "awaits a person's approval (`ijules approve` or the Airflow approval)",
        }.get(status or "", "was never reviewed (no decision is recorded on it)")
        if not force:
            raise RegistryError(
                f"{name} v{version} {why}; pass --force with a --reason to override"
            )
        if not reason.strip():
            raise RegistryError(f"{name} v{version} {why}: --force needs a --reason")
    previous = _current(client, name, alias)
    forced = status not in PASSED
    entry = append(
        audit,
        action="force_promote" if forced else "promote",
        model=name,
        version=version,
        alias=alias,
        reason=reason,
        checks=(overridden or [f"status: {status or 'none'}"]) if forced else [],
        actor=actor,
    )
    if alias == CHAMPION and previous is not None and previous != version:
        client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, previous)
    client.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION and _current(client, name, CHALLENGER) == version:
        # Promoted from challenger: it leaves that slot (one version, one paper book).
        client.delete_registered_model_alias(name, CHALLENGER)
    mirror(client, entry)
    log.info("%s@%s -> v%s (was %s) by %s: %s", name, alias, version, previous, entry.actor, reason)
    return previous


def rollback(
    config: Config, *, reason: str, audit: Path, actor: str | None = None
) -> tuple[str, str]:
    """Move ``champion`` back to the version it replaced; return (from, to).

    Only to a version that was champion before (recorded when it was replaced), whose review
    passed and whose served weights still match the checksum recorded at registration; the
    rollback is written to the audit trail before the alias moves.
    """
    from mlflow import MlflowClient

    name = config.registry.model_name
    if not reason.strip():
        raise RegistryError(f"{name}: a rollback needs a reason, for the audit trail")
    configure(config.registry.experiment)
    client = MlflowClient()
    current = _current(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    restored = client.get_model_version(name, current).tags.get(PREVIOUS_CHAMPION_TAG)
    if not restored:
        raise RegistryError(f"{name} champion v{current} replaced no earlier version")
    restored_version = client.get_model_version(name, restored)
    status = restored_version.tags.get(STATUS_TAG)
    if status not in PASSED:
        raise RegistryError(
            f"{name} v{restored} (the champion before v{current}) has status {status!r}: "
            "its gate did not pass, so it cannot be reinstated by a rollback"
        )
    verify_weights(name, restored, restored_version.tags.get(WEIGHTS_TAG))
    entry = append(
        audit,
        action="rollback",
        model=name,
        version=restored,
        alias=CHAMPION,
        reason=reason,
        checks=[f"replaces v{current}", "weights sha256 verified"],
        actor=actor,
    )
    client.set_registered_model_alias(name, CHAMPION, restored)
    client.set_model_version_tag(name, current, ROLLED_BACK_TAG, restored)
    mirror(client, entry)
    log.info("%s@champion rolled back: v%s -> v%s by %s", name, current, restored, entry.actor)
    return current, restored


def _current(client: object, name: str, alias: str) -> str | None:
    found = alias_version(client, name, alias)
    return None if found is None else str(found.version)
