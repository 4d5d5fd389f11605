"""Autoregressive generation: KV-cached (or full recompute, the benchmark's baseline),
temperature / top-k / top-p sampling, grammar-constrained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .grammar import Grammar, MelodyConstraint
from .model import MusicTransformer
from .tokenizer import MusicTokenizer

__all__ = ["SamplingOptions", "filter_logits", "generate"]


@dataclass
class SamplingOptions:
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 0.95  # 1.0: off
    max_tokens: int = 2048


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the ``top_k`` best and the smallest set with probability mass >= ``top_p``."""
    logits = logits.clone()  # [V]
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits[logits < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        cum = torch.cumsum(probs, dim=-1)
        drop = cum - probs > top_p  # tokens after the mass is already reached
        logits[order[drop]] = float("-inf")
    return logits


@torch.no_grad()
def generate(
    model: MusicTransformer,
    tok: MusicTokenizer,
    prompt: Sequence[int],
    *,
    options: SamplingOptions | None = None,
    max_bars: int | None = None,
    constraint: MelodyConstraint | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    constrained: bool = True,
) -> list[int]:
    """Continue ``prompt`` until End (or ``max_tokens``) and return the whole sequence.

    Args:
        model: The generator (put into eval mode here).
        tok: Tokenizer whose grammar constrains sampling.
        prompt: Prefix ids; must be grammatical (at least the Style token is typical).
        options: Sampling settings.
        max_bars: Close the piece after this many bars.
        constraint: Optional melody to force (style transfer, lyrics).
        use_cache: KV-cached incremental decoding; ``False`` recomputes the whole context
            each step (the benchmark baseline; same result).
        generator: RNG for reproducible sampling.
        constrained: Apply the grammar mask (``False`` only for benchmarking).
    """
    opts = options or SamplingOptions()
    model.eval()
    device = model.embed.weight.device
    grammar = Grammar(tok, max_bars=max_bars).feed(prompt)
    seq = list(prompt)
    limit = min(opts.max_tokens, model.spec.max_len)
    cache = model.new_cache(1, limit) if use_cache else None
    pending = torch.tensor([seq], device=device)
    while len(seq) < limit and not grammar.done:
        if use_cache:
            logits = model(pending, cache=cache)[0, -1]
        else:
            logits = model(torch.tensor([seq], device=device))[0, -1]
        logits = logits.float().cpu()
        if constrained:
            if grammar.max_bars is not None and grammar.bars >= grammar.max_bars:
                # at the bar limit a new Bar is not allowed: the model's wish to close the
                # bar becomes End, instead of spilling into extra notes in the last bar
                logits[tok.end_id] = torch.logaddexp(logits[tok.end_id], logits[tok.bar_id])
            allowed = grammar.allowed()
            if constraint is not None:
                allowed = constraint.restrict(grammar, allowed, tok)
            logits = logits.masked_fill(~allowed, float("-inf"))
        if constrained and int(allowed.sum()) == 1:
            nxt = int(allowed.nonzero()[0])  # forced: no need to sample
        else:
            logits = filter_logits(logits / max(opts.temperature, 1e-4), opts.top_k, opts.top_p)
            probs = torch.softmax(logits, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        if constrained:
            grammar.step(nxt)
            if constraint is not None:
                constraint.after(grammar, nxt, tok)
        seq.append(nxt)
        pending = torch.tensor([[nxt]], device=device)
    if constrained and not grammar.done:  # ran out of room: close the piece properly
        if grammar.state in ("pitch", "track", "vel", "pos", "pos_tempo"):
            seq = _drop_open_note(tok, seq)
        seq.append(tok.end_id)
    return seq


def _drop_open_note(tok: MusicTokenizer, seq: list[int]) -> list[int]:
    """Cut back to the last complete note (or bar) so the sequence can be closed with End."""
    while seq and tok.kind(seq[-1]) not in ("Dur", "Bar", "Meter"):
        seq = seq[:-1]
    return seq
