"""Walk-forward windows: ordered, disjoint, purged and embargoed; too little history is refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ijules.artifacts import Fold
from ijules.errors import ConfigError
from ijules.evaluation.config import WalkForwardConfig
from ijules.evaluation.walk_forward import fold_norm, fold_windows


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(500, 30_000),
    folds=st.integers(1, 6),
    test_bars=st.integers(50, 3000),
    purge=st.integers(0, 10),
    embargo=st.integers(0, 200),
    scheme=st.sampled_from(["expanding", "rolling"]),
    train_bars=st.integers(100, 8000),
)
def test_windows_never_overlap_after_purge_and_embargo(
    rows: int,
    folds: int,
    test_bars: int,
    purge: int,
    embargo: int,
    scheme: str,
    train_bars: int,
) -> None:
    config = WalkForwardConfig(
        scheme=scheme,  # type: ignore[arg-type]
        fold_ids=tuple(range(folds)),
        test_bars=test_bars,
        train_bars=train_bars,
        min_train_bars=100,
        purge_bars=purge,
        embargo_bars=embargo,
    )
    try:
        windows = fold_windows(rows, config)
    except ConfigError as error:
        assert "min_train_bars" in str(error)
        return
    assert [w.fold for w in windows] == list(range(folds))
    for window in windows:
        assert 0 <= window.train_start < window.train_end
        # The gap between the last training bar and the first test bar is purge + embargo.
        assert window.test_start - window.train_end == purge + embargo
        assert window.test_end - window.test_start == test_bars
        assert window.test_end <= rows
        if scheme == "rolling":
            assert window.train_end - window.train_start <= train_bars
        else:
            assert window.train_start == 0
    for earlier, later in itertools.pairwise(windows):
        assert earlier.test_end == later.test_start  # test windows tile, never overlap
        assert later.train_end > earlier.train_end  # each fold trains on more recent data
    assert windows[-1].test_end == rows


def test_the_default_layout_on_the_default_data() -> None:
    windows = fold_windows(17_053, WalkForwardConfig())
    assert [(w.train_end, w.test_start, w.test_end) for w in windows] == [
        (12_504, 12_553, 14_053),
        (14_004, 14_053, 15_553),
        (15_504, 15_553, 17_053),
    ]


def test_too_little_history_is_refused_naming_the_keys() -> None:
    config = WalkForwardConfig(test_bars=1000, min_train_bars=2000)
    with pytest.raises(ConfigError, match=r"fold 0 would train on 951 bars.*min_train_bars=2000"):
        fold_windows(4000, config)


def test_fold_normalisation_sees_only_its_training_bars() -> None:
    values = np.arange(100, dtype=np.float64)[:, None]
    fold = Fold(fold=0, train_start=10, train_end=30, test_start=40, test_end=60)
    norm = fold_norm(values, fold)
    assert norm.mean == pytest.approx((19.5,))
    assert norm.std == pytest.approx((np.arange(10, 30).std(),))
