from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLES


@pytest.fixture(scope="session")
def sp500() -> pd.Series:
    frame = pd.read_csv(SAMPLES / "sp500_daily_close.csv.gz")
    return pd.Series(frame["SP500"].to_numpy(), index=pd.to_datetime(frame["date"], utc=True))


@pytest.fixture(scope="session")
def sp500_returns(sp500: pd.Series) -> np.ndarray:
    return np.log(sp500).diff().dropna().to_numpy()
