"""Cleaning helpers: NaN/Inf, duplicates and robust z-score outliers, counted."""

from __future__ import annotations

import numpy as np
import pytest
from torchsuite.core.data.preprocess import (
    RecordCleaner,
    RobustScale,
    clean_rows,
    duplicate_rows,
    robust_zscore,
)


def _planted() -> tuple[np.ndarray, dict[str, list[int]]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    x[[3, 50, 120]] = [[np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, 0, -np.inf]]
    x[[60, 61]] = x[[10, 11]]  # exact duplicates of earlier rows
    x[[80, 150]] = [[25.0, 0, 0, 0], [0, 0, -30.0, 0]]
    return x, {"nonfinite": [3, 50, 120], "duplicate": [60, 61], "outlier": [80, 150]}


def test_clean_rows_finds_and_counts_each_planted_problem() -> None:
    x, planted = _planted()
    kept, masks, report = clean_rows(x, outliers=5.0)
    for reason, rows in planted.items():
        assert np.flatnonzero(masks[reason]).tolist() == rows, reason
    assert report.found == {"nonfinite": 3, "duplicate": 2, "outlier": 2}
    assert report.kept == 193 == len(kept) and report.records == 200
    flagged, _, rep2 = clean_rows(x, outliers=5.0, mode="flag")
    assert len(flagged) == 200 and rep2.kept == 200 and "flagged" in str(rep2)


def test_robust_zscore_definition_and_constant_features() -> None:
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 6.0]])
    z = robust_zscore(x)
    med, mad = 3.0, 1.0  # column 0: |x - 3| = 2,1,0,1,97 -> MAD 1
    np.testing.assert_allclose(z[:, 0], 0.6745 * (x[:, 0] - med) / mad)
    assert z[:4, 1].tolist() == [0.0] * 4 and z[4, 1] == np.inf  # MAD 0: any change is out


def test_duplicates_ignore_signed_zero() -> None:
    x = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 2.0]])
    assert duplicate_rows(x).tolist() == [False, True, False]


@pytest.mark.parametrize("mode", ["drop", "flag"])
def test_record_cleaner_counts_for_the_prepare_report(mode: str) -> None:
    rng = np.random.default_rng(3)
    scale = RobustScale.fit(rng.normal(size=(1000, 3)))
    cleaner = RecordCleaner(outliers=scale, threshold=6.0, mode=mode)
    recs = [rng.normal(size=(10, 3)) for _ in range(20)]
    recs[4][2, 1] = np.nan
    recs[7] = recs[2].copy()
    recs[9][5] = [0.0, 40.0, 0.0]
    keep = cleaner.run(recs)
    assert cleaner.report.found == {"nonfinite": 1, "duplicate": 1, "outlier": 1}
    if mode == "drop":
        assert [i for i, k in enumerate(keep) if not k] == [4, 7, 9]
    else:
        assert all(keep)
    assert cleaner.report.to_dict()["kept"] == (17 if mode == "drop" else 20)
