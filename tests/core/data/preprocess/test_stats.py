"""FeatureStats: merged partial statistics equal the statistics of the whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchsuite.core.data import DatasetWriter
from torchsuite.core.data.preprocess import FeatureStats, compute_stats, load_stats, save_stats
from torchsuite.core.errors import DataError


def _data(n: int = 3000, f: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Very different scales and offsets: a naive sum-of-squares variance would lose digits.
    return rng.normal(size=(n, f)) * np.logspace(-3, 3, f) + np.linspace(-1e4, 1e4, f)


def test_merged_equals_whole_for_any_partition_and_order() -> None:
    x = _data()
    edges = (-10.0, 10.0)
    whole = FeatureStats(bins=16, hist_range=edges).update(x)
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=12, replace=False))
    parts = [FeatureStats(bins=16, hist_range=edges).update(p) for p in np.split(x, cuts)]
    for order in (parts, parts[::-1], [parts[i] for i in rng.permutation(len(parts))]):
        m = FeatureStats.merged(order)
        np.testing.assert_array_equal(m.count, whole.count)
        np.testing.assert_allclose(m.mean, whole.mean, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(m.var, whole.var, rtol=1e-9)
        np.testing.assert_array_equal(m.min, whole.min)
        np.testing.assert_array_equal(m.max, whole.max)
        np.testing.assert_array_equal(m.histogram, whole.histogram)
    # ... and the whole equals numpy.
    np.testing.assert_allclose(whole.mean, x.mean(0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(whole.var, x.var(0, ddof=1), rtol=1e-9)
    expect = np.stack([np.histogram(np.clip(c, *edges), 16, range=edges)[0] for c in x.T])
    np.testing.assert_array_equal(whole.histogram, expect)
    assert whole.histogram.sum() == x.size


def test_nonfinite_values_are_skipped_and_counted() -> None:
    x = _data(200, 3)
    x[5, 0] = np.nan
    x[9, 2] = np.inf
    s = FeatureStats().update(torch.from_numpy(x))
    assert s.nonfinite.tolist() == [1, 0, 1] and s.count.tolist() == [199, 200, 199]
    np.testing.assert_allclose(s.mean, np.nanmean(np.where(np.isinf(x), np.nan, x), 0))
    assert np.isfinite(s.max).all()


def test_feature_dim_and_round_trip() -> None:
    spec = torch.randn(4, 8, 30)  # [batch, n_mels, time]
    s = FeatureStats(feature_dim=-2).update(spec)
    flat = spec.transpose(1, 2).reshape(-1, 8).double().numpy()
    np.testing.assert_allclose(s.mean, flat.mean(0), atol=1e-12)
    back = FeatureStats.from_dict(s.to_dict())
    np.testing.assert_array_equal(back.m2, s.m2)
    assert back.feature_dim == -2 and back.rows == s.rows
    with pytest.raises(ValueError, match="expected 8 features"):
        s.update(torch.randn(3, 4, 30))


def _write_features(path: Path, x: np.ndarray) -> Path:
    with DatasetWriter(path, salt="s", shard_bytes=2048) as w:
        for i in range(0, len(x), 7):  # records of up to 7 rows, [F, T] layout
            w.add({"feat": torch.from_numpy(x[i:i + 7].T.copy()), "id": i}, "train")
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_compute_stats_over_shards_equals_whole(tmp_path: Path, workers: int) -> None:
    x = _data(700, 4)
    path = _write_features(tmp_path / "d", x)
    s = compute_stats(path, "train", key="feat", feature_dim=-2, bins=8,
                      num_workers=workers)
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s.var, x.var(0, ddof=1), rtol=1e-9)
    assert s.min.tolist() == x.min(0).tolist() and s.max.tolist() == x.max(0).tolist()
    assert (s.histogram.sum(1) == 700).all() and s.hist_range == (x.min(), x.max())


def test_save_and_load_with_the_manifest(tmp_path: Path) -> None:
    x = _data(70, 4)
    path = _write_features(tmp_path / "d", x)
    s = compute_stats(path, key="feat", feature_dim=-2)
    save_stats(path, "feat", s)
    got = load_stats(path, "feat")
    np.testing.assert_array_equal(got.mean, s.mean)
    with pytest.raises(DataError, match=r"no feature statistics called 'other' .*\['feat'\]"):
        load_stats(path, "other")
    with pytest.raises(DataError, match="no field 'nope'"):
        compute_stats(path, key="nope")
    # Rewriting the data set drops the old statistics with the old manifest.
    with DatasetWriter(path, overwrite=True) as w:
        w.add({"feat": torch.zeros(4, 1)}, "train")
    with pytest.raises(DataError, match="no feature statistics"):
        load_stats(path, "feat")


def test_records_with_another_feature_count_are_named(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "d") as w:
        w.add({"x": torch.zeros(3, 4)}, "train")
        w.add({"x": torch.zeros(3, 5)}, "train")
    with pytest.raises(DataError, match="Record 1 of split 'train' has 5 features"):
        compute_stats(tmp_path / "d", key="x")


def test_writer_stores_stats_gathered_while_writing(tmp_path: Path) -> None:
    x = _data(50, 3)
    stats = FeatureStats()
    with DatasetWriter(tmp_path / "d") as w:
        for row in x:
            split = w.add({"x": torch.from_numpy(row.copy())}, "train")
            if split == "train":
                stats.update(row[None])
        w.add_stats("x", stats)
    got = load_stats(tmp_path / "d", "x")
    np.testing.assert_allclose(got.mean, x.mean(0))
    assert got.count.tolist() == [50, 50, 50]


def test_manifest_lists_saved_entries(tmp_path: Path) -> None:
    from torchsuite.core.data import read_manifest

    path = _write_features(tmp_path / "d", _data(30, 4))
    assert read_manifest(path).preprocess == {}
    save_stats(path, "feat", compute_stats(path, key="feat", feature_dim=-2))
    entry = read_manifest(path).preprocess["feat"]
    assert entry["kind"] == "feature_stats" and entry["split"] == "train"
