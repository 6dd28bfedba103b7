"""A person's answer to a reviewed version: approve (the aliases move) or reject (nothing moves).

Only a version whose automatic review passed (``awaiting_approval``) can be answered. Approving
it gives it the alias the review proposed, after two last checks: the served weights are still
the ones reviewed, and the champion is still the one the review compared it with (a champion
that changed since invalidates the comparison). The answer, with who gave it and why, is written
to the audit trail before any alias moves, and ``reports/registry.json`` is rewritten with it,
as is the version's model card (:mod:`ijules.registry.card`), which then names who decided.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ijules.artifacts import Registration
from ijules.config import Config
from ijules.errors import RegistryError
from ijules.registry.audit import append, default_actor, mirror
from ijules.registry.card import publish
from ijules.registry.register import (
    AWAITING,
    CHALLENGER,
    CHAMPION,
    DECIDED_BY_TAG,
    DECISION_REASON_TAG,
    DECLINED,
    PREVIOUS_CHAMPION_TAG,
    PROPOSED_TAG,
    REASONS_TAG,
    REVIEWED_AGAINST_TAG,
    STATUS_TAG,
    WEIGHTS_TAG,
    alias_version,
    recorded,
    registered_version,
)
from ijules.registry.review import verify_weights

log = logging.getLogger(__name__)


def approve(
    config: Config,
    version: str,
    *,
    reason: str,
    audit: Path,
    output: Path | None = None,
    actor: str | None = None,
    cards: Path | None = None,
) -> Registration:
    """Give ``version`` the alias its review proposed; return what the registry now says."""
    client, name, target = _awaiting(config, version)
    proposed = target.tags.get(PROPOSED_TAG)
    if proposed not in (CHAMPION, CHALLENGER):
        raise RegistryError(f"{name} v{version} records no proposed alias; review it again")
    verify_weights(name, version, target.tags.get(WEIGHTS_TAG))
    champion = alias_version(client, name, CHAMPION)
    now = "none" if champion is None else str(champion.version)
    against = target.tags.get(REVIEWED_AGAINST_TAG, "none")
    if proposed == CHAMPION and now != against:
        raise RegistryError(
            f"{name} v{version} was reviewed against champion {against}, but the champion is now "
            f"{now}; review it again before approving"
        )
    who = actor or default_actor()
    entry = append(
        audit,
        action="approve",
        model=name,
        version=version,
        alias=proposed,
        reason=reason,
        checks=[f"automatic review passed; proposed {proposed}", "weights sha256 verified"],
        actor=who,
    )
    if proposed == CHAMPION:
        if champion is not None:
            client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, now)
        client.set_registered_model_alias(name, CHAMPION, version)
        challenger = alias_version(client, name, CHALLENGER)
        if challenger is not None and str(challenger.version) == version:
            client.delete_registered_model_alias(name, CHALLENGER)
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, DECIDED_BY_TAG, who)
    client.set_model_version_tag(name, version, DECISION_REASON_TAG, reason or "-")
    mirror(client, entry)
    client.set_model_version_tag(name, version, STATUS_TAG, proposed)
    log.info("%s v%s approved by %s: @%s (%s)", name, version, who, proposed, reason)
    return _record(client, name, version, output, cards)


def reject(
    config: Config,
    version: str,
    *,
    reason: str,
    audit: Path,
    output: Path | None = None,
    actor: str | None = None,
    cards: Path | None = None,
) -> Registration:
    """Decline ``version``: audited with the reason; no alias moves."""
    if not reason.strip():
        raise RegistryError("a rejection needs a reason")
    client, name, target = _awaiting(config, version)
    who = actor or default_actor()
    entry = append(
        audit,
        action="reject",
        model=name,
        version=version,
        alias=None,
        reason=reason,
        checks=[f"automatic review passed; proposed {target.tags.get(PROPOSED_TAG)}"],
        actor=who,
    )
    client.set_model_version_tag(name, version, REASONS_TAG, f"rejected by {who}: {reason}")
    client.set_model_version_tag(name, version, DECIDED_BY_TAG, who)
    client.set_model_version_tag(name, version, DECISION_REASON_TAG, reason or "-")
    mirror(client, entry)
    client.set_model_version_tag(name, version, STATUS_TAG, DECLINED)
    log.info("%s v%s rejected by %s: %s", name, version, who, reason)
    return _record(client, name, version, output, cards)


def _awaiting(config: Config, version: str) -> tuple[Any, str, Any]:
    client, name, target = registered_version(config, version)
    status = target.tags.get(STATUS_TAG)
    if status != AWAITING:
        raise RegistryError(
            f"{name} v{version} is not awaiting approval (status {status or 'none'}): only a "
            "version whose automatic review passed can be approved or rejected"
        )
    return client, name, target


def _record(
    client: Any, name: str, version: str, output: Path | None, cards: Path | None
) -> Registration:
    result = recorded(client, name, client.get_model_version(name, version))
    if output is not None:
        result.write(output)
    if cards is not None:
        publish(client, result, cards)
    return result
