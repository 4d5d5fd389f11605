"""Benchmark: token-budget bucketing vs naive random batches (padding and compute).

Draws sequence lengths from a long-tailed (log-normal) distribution like sentence
or phrase lengths, then batches the same sequences two ways:

* **bucketed** — :class:`~torchsuite.core.data.TokenBudgetBatcher` (sort within a
  bucket, cut by ``max_tokens``, shuffle batches);
* **naive** — a shuffled list cut into fixed-size batches, with the batch size chosen
  so both give the same number of batches (same optimizer steps per epoch).

Prints the padding ratio of each, the padded tokens, and the time of one forward
pass of a small Transformer encoder layer over every batch, with the ratios.

    python benchmarks/data_bucketing.py
    python benchmarks/data_bucketing.py --sequences 4000 --max-tokens 2048
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
from torch import nn
from torchsuite.core.data import TokenBudgetBatcher, pad_collate, padding_ratio


def log(msg: str) -> None:
    print(msg, flush=True)


def lengths_lognormal(n: int, seed: int, mean_len: float, max_len: int) -> list[int]:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(mean=np.log(mean_len), sigma=0.7, size=n)
    return np.clip(np.round(x), 1, max_len).astype(int).tolist()


def forward_seconds(layer: nn.Module, batches: list[list[torch.Tensor]]) -> float:
    """Wall time of one forward pass over every batch (padded, key-padding-masked)."""
    t0 = time.perf_counter()
    with torch.inference_mode():
        for seqs in batches:
            x, mask = pad_collate(seqs)  # [B, T, D], [B, T]
            layer(x, src_key_padding_mask=~mask)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=20_000)
    ap.add_argument("--mean-len", type=float, default=30.0)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--bucket-size", type=int, default=2048)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--time-sequences", type=int, default=4000,
                    help="sequences used for the forward-pass timing (0: skip it)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    lengths = lengths_lognormal(args.sequences, args.seed, args.mean_len, args.max_len)
    log(f"{len(lengths)} sequences, lengths mean {np.mean(lengths):.1f} / median "
        f"{np.median(lengths):.0f} / max {max(lengths)}; max_tokens {args.max_tokens}, "
        f"bucket {args.bucket_size}")
    ids = list(range(len(lengths)))

    bucketed = list(TokenBudgetBatcher(ids, lambda i: lengths[i], args.max_tokens,
                                       args.bucket_size, seed=args.seed))
    bs = max(1, round(len(ids) / len(bucketed)))
    shuffled = ids[:]
    random.Random(args.seed).shuffle(shuffled)
    naive = [shuffled[i:i + bs] for i in range(0, len(shuffled), bs)]

    def padded_tokens(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    real = sum(lengths)
    rows = {}
    for name, batches in (("bucketed", bucketed), ("naive", naive)):
        lens = [[lengths[i] for i in b] for b in batches]
        rows[name] = {"batches": len(batches), "pad": padding_ratio(lens),
                      "padded": padded_tokens(batches)}
        log(f"  {name:9s} {len(batches):6d} batches  padding ratio {rows[name]['pad']:.3f}  "
            f"padded tokens {rows[name]['padded']:,} (real {real:,})")

    log("ratios (naive / bucketed):")
    log(f"  padding ratio:  {rows['naive']['pad'] / max(rows['bucketed']['pad'], 1e-9):.1f}x")
    log(f"  padded tokens:  {rows['naive']['padded'] / rows['bucketed']['padded']:.2f}x")

    if args.time_sequences > 0:
        keep = set(range(min(args.time_sequences, len(ids))))
        feats = {i: torch.randn(lengths[i], args.d_model) for i in keep}
        layer = nn.TransformerEncoderLayer(args.d_model, nhead=4, dim_feedforward=4 * args.d_model,
                                           batch_first=True, dropout=0.0).eval()

        def sub(batches: list[list[int]]) -> list[list[torch.Tensor]]:
            out = [[feats[i] for i in b if i in keep] for b in batches]
            return [b for b in out if b]

        fb, fn = sub(bucketed), sub(naive)
        forward_seconds(layer, fb[:5])  # warm-up
        tb, tn = forward_seconds(layer, fb), forward_seconds(layer, fn)
        log(f"  forward pass over {len(keep)} sequences: bucketed {tb:.2f} s, naive {tn:.2f} s "
            f"-> {tn / tb:.2f}x faster")


if __name__ == "__main__":
    main()
