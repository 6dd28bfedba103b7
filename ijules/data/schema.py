"""The canonical bar schema every stage after ingest relies on."""

from __future__ import annotations

TIMESTAMP = "timestamp"
SYMBOL = "symbol"
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
BAR_COLUMNS: tuple[str, ...] = (TIMESTAMP, SYMBOL, *NUMERIC_COLUMNS)
