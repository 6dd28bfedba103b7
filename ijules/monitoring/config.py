"""Configuration of monitoring: drift against the training window, and who gets the reports."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from ijules.frozen import Frozen


class DriftConfig(Frozen):
    """Drift of the newest bars' features against the training window."""

    window_bars: Annotated[int, Field(ge=30)] = 500
    drift_share: Annotated[float, Field(gt=0, le=1)] = 0.5


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class NotifyConfig(Frozen):
    """Who receives the nightly reports (the risk team) and the failure alerts (both lists)."""

    risk_team: tuple[str, ...] = ("risk-team@example.com",)
    on_call: tuple[str, ...] = ("on-call@example.com",)
    sender: str = "ijules@localhost"

    @field_validator("risk_team", "on_call")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one address is needed")
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"not an e-mail address: {address!r}")
        return value
