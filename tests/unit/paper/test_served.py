"""Who trades in paper, with what share, and the checksum that comes before any trade."""

from __future__ import annotations

import pytest

from ijules.paper.served import WeightsMismatch, assignments, served_policy
from ijules.registry.register import WEIGHTS_TAG
from tests.conftest import stub_registry

NAME = "ijules-policy"


@pytest.fixture
def config(make_config, mlflow_store):
    return make_config({"paper": {"capital_usd": 200_000.0, "challenger_allocation": 0.25}})


def by_slot(config) -> dict[str, tuple[str, str | None, bool, float, float]]:
    return {
        a.slot: (a.version, a.alias, a.approved, a.allocation, a.capital_usd)
        for a in assignments(config)
    }


def test_the_aliases_decide_who_trades_and_with_what_share(config) -> None:
    assert assignments(config) == []  # nothing registered, nothing trades
    statuses: dict[str, str | None] = {str(n): "rejected" for n in range(1, 11)}
    client = stub_registry(config, statuses | {"2": "challenger", "3": "champion"})
    # No champion: the latest version (10, not "9") trades the champion's share in shadow, as
    # notional capital: no allocation, not approved.
    assert by_slot(config) == {"shadow": ("10", None, False, 0.0, 150_000.0)}
    client.set_registered_model_alias(NAME, "challenger", "2")
    assert by_slot(config) == {
        "challenger": ("2", "challenger", True, 0.25, 50_000.0),
        "shadow": ("10", None, False, 0.0, 150_000.0),
    }
    client.set_registered_model_alias(NAME, "champion", "3")
    assert by_slot(config) == {
        "champion": ("3", "champion", True, 0.75, 150_000.0),
        "challenger": ("2", "challenger", True, 0.25, 50_000.0),
    }
    # A version forced onto an alias trades its share, unapproved.
    client.set_registered_model_alias(NAME, "champion", "7")
    assert by_slot(config)["champion"] == ("7", "champion", False, 0.75, 150_000.0)
    # The latest is the challenger: no shadow beside it.
    client.delete_registered_model_alias(NAME, "champion")
    client.set_registered_model_alias(NAME, "challenger", "10")
    assert set(by_slot(config)) == {"challenger"}


def test_served_weights_that_fail_their_checksum_are_refused_before_loading(config) -> None:
    client = stub_registry(config, {"1": "champion"})
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_model_version_tag(NAME, "1", WEIGHTS_TAG, "f" * 64)
    (champion,) = assignments(config)
    with pytest.raises(WeightsMismatch, match=r"v1 \(champion\): the served weights' sha256"):
        served_policy(config, champion)
    client.delete_model_version_tag(NAME, "1", WEIGHTS_TAG)
    (champion,) = assignments(config)
    with pytest.raises(WeightsMismatch, match="no recorded weights checksum"):
        served_policy(config, champion)
