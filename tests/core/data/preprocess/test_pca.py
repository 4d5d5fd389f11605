"""PCA / whitening: reconstruction error matches numpy's SVD; bounded sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchsuite.core.data import DatasetWriter
from torchsuite.core.data.preprocess import fit_pca, sample_rows


def _low_rank_data(n: int = 600, f: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(f, f)))[0]
    scales = 10.0 ** np.linspace(1, -2, f)  # decaying spectrum
    return (rng.normal(size=(n, f)) * scales) @ basis.T + rng.normal(size=f) * 5


def _numpy_tail_error(x: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    c = x - x.mean(0)
    s = np.linalg.svd(c, compute_uv=False)
    return float((s[k:] ** 2).sum()), s


@pytest.mark.parametrize(("method", "rtol"), [("exact", 1e-7), ("lowrank", 1e-3)])
def test_reconstruction_error_matches_numpy_svd(method: str, rtol: float) -> None:
    x = _low_rank_data()
    k = 6
    pca, report = fit_pca(x, k, method=method)
    recon = pca.inverse(pca(torch.from_numpy(x))).double().numpy()
    err = float(((x - recon) ** 2).sum())
    expect, s = _numpy_tail_error(x, k)
    # float32 projection: compare against the SVD's optimum with a float32-sized floor.
    assert err == pytest.approx(expect, rel=max(rtol, 1e-4), abs=1e-6 * (s ** 2).sum())
    ratio = (s[:k] ** 2) / (s ** 2).sum()
    np.testing.assert_allclose(report.explained_variance_ratio, ratio, rtol=max(rtol, 1e-6))
    assert report.cumulative[-1] == pytest.approx(ratio.sum(), rel=1e-3)
    assert "cumulative" in str(report) and report.method == method


def test_whitening_gives_identity_covariance() -> None:
    x = _low_rank_data()
    pca, _ = fit_pca(x, 5, whiten=True)
    z = pca(torch.from_numpy(x)).double()
    cov = torch.cov(z.T)
    assert torch.allclose(cov, torch.eye(5, dtype=torch.float64), atol=1e-4)
    exported = torch.export.export(pca, (torch.from_numpy(x[:3]).float(),))
    assert torch.allclose(exported.module()(torch.from_numpy(x[:3]).float()), z[:3].float(),
                          atol=1e-4)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be"):
        fit_pca(np.zeros((10, 3)), 4)
    x = _low_rank_data(50, 4)
    x[3, 1] = np.nan
    with pytest.raises(Exception, match="NaN"):
        fit_pca(x, 2)


def test_sample_rows_is_bounded_and_deterministic(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "d", shard_bytes=4096) as w:
        for i in range(300):
            w.add({"x": torch.full((5, 3), float(i))}, "train")  # 5 rows per record
    a = sample_rows(tmp_path / "d", key="x", max_rows=101, seed=1)
    b = sample_rows(tmp_path / "d", key="x", max_rows=101, seed=1)
    c = sample_rows(tmp_path / "d", key="x", max_rows=101, seed=2)
    assert a.shape == (101, 3) and torch.equal(a, b) and not torch.equal(a, c)
    recs = a[:, 0].unique()
    assert len(recs) == 21 and recs.max() > 150  # 21 distinct records spread over the split
