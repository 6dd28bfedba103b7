"""Promotion rules as a property: no sequence of promotions and rollbacks without --force gives
``champion`` to a version whose gate failed or never ran, and each move is on the audit trail."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from ijules.errors import RegistryError
from ijules.registry.aliases import PASSED, promote, rollback
from ijules.registry.audit import verify
from ijules.registry.register import CHAMPION, PREVIOUS_CHAMPION_TAG, STATUS_TAG, alias_version
from tests.conftest import stub_registry

pytestmark = pytest.mark.slow

NAME = "ijules-policy"
# Version -> the gate's verdict on it (None: registered, never decided).
STATUSES = {"1": "champion", "2": "challenger", "3": "rejected", "4": None}

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("promote"),
            st.sampled_from(sorted(STATUSES)),
            st.sampled_from(["champion", "challenger"]),
        ),
        st.tuples(st.just("rollback"), st.just(""), st.just("")),
    ),
    max_size=8,
)


@pytest.fixture
def registry(mlflow_store, make_config):
    config = make_config()
    return config, stub_registry(config, STATUSES)


def _reset(client: MlflowClient) -> None:
    """Every example starts from v1 champion, v2 challenger, and no rollback history."""
    for version, status in STATUSES.items():
        if status is None:
            client.delete_model_version_tag(NAME, version, STATUS_TAG)
        else:
            client.set_model_version_tag(NAME, version, STATUS_TAG, status)
        client.delete_model_version_tag(NAME, version, PREVIOUS_CHAMPION_TAG)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")


_EXAMPLES = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS)
def test_without_force_only_a_passed_version_is_ever_champion(
    registry, tmp_path: Path, operations
) -> None:
    config, client = registry
    _reset(client)
    trail = tmp_path / f"trail-{next(_EXAMPLES)}.jsonl"
    moves = 0
    for kind, version, alias in operations:
        try:
            if kind == "promote":
                promote(config, version, alias, reason="property", force=False, audit=trail)
            else:
                rollback(config, reason="property", audit=trail)
            moves += 1
        except RegistryError:
            pass  # refused: the registry must be as it was
        champion = alias_version(client, NAME, CHAMPION)
        assert champion is not None
        assert STATUSES[str(champion.version)] in PASSED, (operations, champion.version)
    # Every move that happened, and only those, is on the trail, whose chain holds.
    assert len(verify(trail)) == moves
