"""Normalize: statistics as buffers, the same numbers in eager, export and a reloaded state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchsuite.core.data.preprocess import FeatureStats, Normalize


def test_normalises_to_zero_mean_unit_std_and_inverts() -> None:
    x = torch.randn(500, 6, dtype=torch.float64) * torch.arange(1, 7) + 100
    x[:, 5] = 3.0  # a constant feature must not become inf/NaN
    norm = Normalize.from_stats(FeatureStats().update(x))
    y = norm(x.float())
    assert torch.allclose(y[:, :5].mean(0), torch.zeros(5), atol=1e-4)
    assert torch.allclose(y[:, :5].std(0), torch.ones(5), atol=1e-4)
    assert torch.equal(y[:, 5], torch.zeros(500))
    assert torch.allclose(norm.inverse(y), x.float(), atol=1e-3)
    clipped = Normalize.from_stats(FeatureStats().update(x), clip=0.5)(x.float())
    assert clipped.abs().max() <= 0.5


def test_feature_dim_for_spectrograms() -> None:
    spec = torch.rand(3, 8, 50) * torch.arange(1, 9)[:, None]  # [B, n_mels, T]
    norm = Normalize.from_stats(FeatureStats(feature_dim=-2).update(spec))
    y = norm(spec)
    per_mel = y.transpose(1, 2).reshape(-1, 8)
    assert torch.allclose(per_mel.mean(0), torch.zeros(8), atol=1e-4)
    assert norm(spec[0]).shape == (8, 50)  # works without the batch dimension


def test_export_and_weights_only_reload_apply_the_same_transform(tmp_path: Path) -> None:
    x = torch.randn(64, 5) * 10 + 3
    model = nn.Sequential(Normalize.from_stats(FeatureStats().update(x)), nn.Linear(5, 2))
    model.eval()
    expect = model(x)
    exported = torch.export.export(model, (x[:4],))
    assert torch.allclose(exported.module()(x[:4]), expect[:4], atol=1e-5)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    fresh = nn.Sequential(Normalize(np.zeros(5), np.ones(5)), nn.Linear(5, 2))
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert torch.allclose(fresh(x), expect)
