"""The slice of a feature table an environment trades over."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.data.features import SPLIT, FeatureSet, Window
from ijules.data.schema import TIMESTAMP
from ijules.errors import IngestError


@dataclass(frozen=True)
class MarketData:
    """Aligned arrays for one instrument: bar t's features use bars 0..t only."""

    timestamps: npt.NDArray[np.datetime64]
    close: npt.NDArray[np.float64]
    features: npt.NDArray[np.float64]
    feature_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.close)


def load_window(features: Path, meta: FeatureSet, window: Window) -> MarketData:
    """Read one time window (train, validation or test) of a feature table."""
    if not features.is_file():
        raise IngestError(f"features not found: {features} (run `ijules features` first)")
    table = pd.read_parquet(features)
    return window_of(table, meta, window)


def window_of(table: pd.DataFrame, meta: FeatureSet, window: Window) -> MarketData:
    """Select ``window`` rows of ``table`` as :class:`MarketData`."""
    rows = table.loc[table[SPLIT] == window]
    if len(rows) < 2:
        raise IngestError(f"the {window} window holds {len(rows)} bar(s); need at least 2")
    names = meta.feature_names
    return MarketData(
        timestamps=rows[TIMESTAMP].to_numpy(dtype="datetime64[ns]"),
        close=rows["close"].to_numpy(dtype=np.float64),
        features=rows[list(names)].to_numpy(dtype=np.float64),
        feature_names=names,
    )
