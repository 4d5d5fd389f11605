"""Greedy and batched beam search, incremental (cached keys/values) or full-prefix.

Both decoders take the same :class:`DecodeOptions`; with ``incremental=False`` they
re-run the decoder over the whole prefix each step (the baseline of
``benchmarks/translation_beam.py`` and the reference the tests compare against).

Beam search follows the usual recipe: each step scores ``beam x vocab`` extensions
per sentence, keeps the best ``2 * beam``; an end-of-sentence among the first
``beam`` of them finishes a hypothesis (score / length ** length_penalty), the
first ``beam`` others continue. A sentence is done once it has ``beam`` finished
hypotheses or reaches ``max_len_a + max_len_b * source_length`` tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .model import DecoderCache, Seq2SeqTransformer
from .vocab import BOS, EOS, PAD

__all__ = ["DecodeOptions", "batches_by_length", "beam_search", "greedy"]


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings (see :class:`~.config.DecodeConfig`)."""

    beam: int = 5
    length_penalty: float = 1.0
    max_len_a: int = 10
    max_len_b: float = 1.5
    no_repeat_ngram: int = 0
    incremental: bool = True


class _Stepper:
    """Next-token log-probabilities for the current prefixes, cached or not."""

    def __init__(self, model: Seq2SeqTransformer, memory: torch.Tensor, mask: torch.Tensor,
                 incremental: bool) -> None:
        self.model, self.memory, self.mask = model, memory, mask
        self.cache: DecoderCache | None = model.start_cache(memory) if incremental else None

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` ``[N, t]`` (bos first) -> log-probs ``[N, V]`` of token t+1."""
        if self.cache is not None:
            logits = self.model.decode_step(tokens[:, -1], self.mask, self.cache)
        else:
            logits = self.model.decode(tokens, self.memory, self.mask)[:, -1]
        lp = torch.log_softmax(logits.float(), dim=-1)
        lp[:, PAD] = -math.inf
        lp[:, BOS] = -math.inf
        return lp

    def reorder(self, index: torch.Tensor) -> None:
        """New parents; they come from the same sentence, so memory and mask stay."""
        if self.cache is not None:
            self.cache.reorder(index)


def _ban_repeats(lp: torch.Tensor, tokens: torch.Tensor, n: int) -> None:
    """Set -inf on tokens that would repeat an n-gram already in ``tokens`` ``[N, L]``."""
    if n <= 0 or tokens.shape[1] < n:
        return
    windows = tokens.unfold(1, n, 1)  # [N, W, n]
    last = tokens[:, tokens.shape[1] - (n - 1):]  # [N, n-1]
    match = (windows[:, :, : n - 1] == last[:, None, :]).all(-1) if n > 1 else torch.ones(
        windows.shape[:2], dtype=torch.bool, device=tokens.device)
    rows, cols = match.nonzero(as_tuple=True)
    lp[rows, windows[rows, cols, n - 1]] = -math.inf


def _max_lengths(src: torch.Tensor, opts: DecodeOptions, limit: int) -> torch.Tensor:
    """``[B]`` output-token limits (eos included): a + b * source length, within ``limit``."""
    src_len = (src != PAD).sum(1).float()
    return (opts.max_len_a + opts.max_len_b * src_len).long().clamp(1, limit)


def _force_eos(lp: torch.Tensor, at_max: torch.Tensor) -> None:
    if at_max.any():
        lp[at_max] = -math.inf
        lp[at_max, EOS] = 0.0


@torch.no_grad()
def greedy(model: Seq2SeqTransformer, src: torch.Tensor, opts: DecodeOptions) -> list[list[int]]:
    """Greedy decoding of ``src`` ``[B, S]``; returns token ids without bos/eos per sentence."""
    model.eval()
    memory, mask = model.encode(src)
    max_len = _max_lengths(src, opts, model.spec.max_positions - 1)
    stepper = _Stepper(model, memory, mask, opts.incremental)
    b = src.shape[0]
    tokens = torch.full((b, 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    for t in range(int(max_len.max())):
        lp = stepper(tokens)
        _ban_repeats(lp, tokens, opts.no_repeat_ngram)
        _force_eos(lp, t + 1 >= max_len)
        nxt = lp.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], 1)
        done |= nxt == EOS
        if bool(done.all()):
            break
    out = []
    for row in tokens[:, 1:].tolist():
        out.append(row[: row.index(EOS)] if EOS in row else [x for x in row if x != PAD])
    return out


@torch.no_grad()
def beam_search(model: Seq2SeqTransformer, src: torch.Tensor, opts: DecodeOptions
                ) -> list[list[int]]:
    """Batched beam search of ``src`` ``[B, S]``; token ids without bos/eos per sentence."""
    model.eval()
    b, k = src.shape[0], opts.beam
    device = src.device
    memory, mask = model.encode(src)  # [B, S, D], [B, 1, 1, S]
    max_len = _max_lengths(src, opts, model.spec.max_positions - 1)
    stepper = _Stepper(model, memory.repeat_interleave(k, 0), mask.repeat_interleave(k, 0),
                       opts.incremental)
    tokens = torch.full((b * k, 1), BOS, dtype=torch.long, device=device)  # [N, t]
    scores = torch.zeros(b, k, device=device)
    scores[:, 1:] = -math.inf  # all beams start identical: expand only the first
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    done = [False] * b
    rank = torch.arange(2 * k, device=device)
    base = torch.arange(b, device=device)[:, None] * k
    for t in range(int(max_len.max())):
        lp = stepper(tokens)  # [N, V]
        _ban_repeats(lp, tokens, opts.no_repeat_ngram)
        _force_eos(lp, (t + 1 >= max_len).repeat_interleave(k))
        v = lp.shape[1]
        cand = (scores[:, :, None] + lp.view(b, k, v)).view(b, k * v)
        top_s, top_i = cand.topk(min(2 * k, k * v), dim=1)  # [B, 2K]
        parent, tok = top_i // v, top_i % v
        is_eos = tok == EOS
        new_eos = is_eos & (rank[None, : top_s.shape[1]] < k) & torch.isfinite(top_s)
        if bool(new_eos.any()):
            for i, r in new_eos.nonzero().tolist():
                if done[i]:
                    continue
                seq = tokens[i * k + int(parent[i, r]), 1:].tolist()
                norm = float(top_s[i, r]) / (len(seq) + 1) ** opts.length_penalty
                finished[i].append((norm, seq))
                if len(finished[i]) >= k:
                    done[i] = True
        if all(done):
            break
        # continue with the first K candidates that are not end-of-sentence
        order = (is_eos.long() * (2 * k) + rank[None, : top_s.shape[1]]).argsort(1)[:, :k]
        scores = top_s.gather(1, order)
        flat = (base + parent.gather(1, order)).view(-1)  # [N] parent rows
        tokens = torch.cat([tokens.index_select(0, flat), tok.gather(1, order).view(-1, 1)], 1)
        stepper.reorder(flat)
    out = []
    for i in range(b):
        if finished[i]:
            out.append(max(finished[i], key=lambda h: h[0])[1])
        else:  # cannot happen with forced eos; keep the best open beam to be safe
            out.append(tokens[i * k + int(scores[i].argmax()), 1:].tolist())
    return out


def batches_by_length(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut so that ``len(batch) * longest <= max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = max(lengths[i], max((lengths[j] for j in cur[-1:]), default=0))
        if cur and (len(cur) + 1) * longest > max_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches
