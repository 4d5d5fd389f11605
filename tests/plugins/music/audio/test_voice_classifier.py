"""The voice classifier normalizes its log-mel features with training-set statistics
(core ``FeatureStats`` + ``Normalize``) and tells a pure tone from a bright one."""

from __future__ import annotations

import math

import torch
from torchsuite.core.data.preprocess import FeatureStats
from torchsuite.plugins.music.audio.features import FeatureSpec
from torchsuite.plugins.music.audio.quality import VoiceClassifier

SPEC = FeatureSpec(sample_rate=8000, hop=64, n_fft=256, n_mels=24)


def _tones(kind: str, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(4000) / SPEC.sample_rate
    f0 = 150 + 250 * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * f0 * t  # [n, 4000]
    if kind == "flute":
        return 0.3 * torch.sin(phase)
    return 0.3 * sum(torch.sin(k * phase) / k for k in range(1, 12))  # saw-like: bright


def test_features_are_normalized_with_training_statistics() -> None:
    feats = VoiceClassifier.features(torch.cat([_tones("flute", 8, 0), _tones("reed", 8, 1)]),
                                     SPEC)
    clf = VoiceClassifier(["flute", "reed"], SPEC.n_mels, FeatureStats().update(feats))
    z = clf.norm(feats)
    assert torch.allclose(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4)
    assert torch.allclose(z.std(0), torch.ones(z.shape[1]), atol=1e-3)
    assert set(dict(clf.named_buffers())) >= {"norm.mean", "norm.inv_std"}  # in its state


def test_a_trained_classifier_separates_two_timbres() -> None:
    torch.manual_seed(0)
    audio = torch.cat([_tones("flute", 16, 2), _tones("reed", 16, 3)])
    labels = torch.tensor([0] * 16 + [1] * 16)
    feats = VoiceClassifier.features(audio, SPEC)
    clf = VoiceClassifier(["flute", "reed"], SPEC.n_mels, FeatureStats().update(feats))
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(clf(feats), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_out = torch.cat([_tones("flute", 4, 7), _tones("reed", 4, 8)])
    assert clf.predict(held_out, SPEC) == ["flute"] * 4 + ["reed"] * 4
