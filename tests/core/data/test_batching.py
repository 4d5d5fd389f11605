"""Token-budget bucketing and padding collate."""

from __future__ import annotations

import random

import torch
from torchsuite.core.data import (
    TokenBudgetBatcher,
    TokenBudgetBatchSampler,
    pad_collate,
    padding_ratio,
)


def test_pad_collate_shapes_and_mask() -> None:
    a, b = torch.ones(3, 2), torch.ones(5, 2) * 2
    padded, mask = pad_collate([a, b], pad_value=-1)
    assert padded.shape == (2, 5, 2) and mask.shape == (2, 5)
    assert mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert (padded[0, 3:] == -1).all() and (padded[1] == 2).all()
    assert abs(padding_ratio(mask) - 0.2) < 1e-9


def test_budget_respected_and_all_samples_once() -> None:
    rnd = random.Random(0)
    seqs = [torch.zeros(rnd.randint(1, 200)) for _ in range(2000)]
    batches = list(TokenBudgetBatcher(seqs, len, max_tokens=1024, bucket_size=512))
    seen = sorted(id(s) for b in batches for s in b)
    assert seen == sorted(id(s) for s in seqs)
    for b in batches:
        assert len(b) * max(len(s) for s in b) <= 1024


def test_padding_much_lower_than_random_batches() -> None:
    rnd = random.Random(1)
    lengths = [rnd.randint(5, 300) for _ in range(4000)]
    bucketed = [[lengths[i] for i in b]
                for b in TokenBudgetBatchSampler(lengths, max_tokens=2048, bucket_size=1024)]
    # Random batches with the same number of sequences per batch on average.
    mean_bs = len(lengths) // len(bucketed)
    shuffled = lengths[:]
    rnd.shuffle(shuffled)
    random_batches = [shuffled[i:i + mean_bs] for i in range(0, len(shuffled), mean_bs)]
    r_bucket, r_random = padding_ratio(bucketed), padding_ratio(random_batches)
    assert r_bucket < 0.05 and r_random > 0.3
    assert r_bucket < r_random / 5


def test_batch_sampler_epochs_differ_and_cover() -> None:
    lengths = list(range(1, 301))
    s = TokenBudgetBatchSampler(lengths, max_tokens=600, bucket_size=100, seed=3)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(i for b in e0 for i in b) == list(range(300))
    assert e0 != e1
