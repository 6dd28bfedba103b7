"""Configuration of paper trading: the book, and the challenger's share of it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ijules.frozen import Frozen, PositiveFloat


class PaperConfig(Frozen):
    """The paper book the champion and the challenger trade (the plan's A/B).

    The champion trades ``1 - challenger_allocation`` of ``capital_usd``, the challenger the
    rest; while no version is champion, the latest registered version trades the champion's
    share in shadow, as notional capital (its P&L is recorded, nothing is allocated to it).
    """

    capital_usd: PositiveFloat = 100_000.0
    challenger_allocation: Annotated[float, Field(ge=0, lt=1)] = 0.10
