"""Quality of a music generator: token NLL/perplexity next to unigram and n-gram
baselines over exactly the same tokens, and (``suite eval music`` on ``test``/``target``)
musical statistics of generated pieces next to the held-out real ones."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torchsuite.core import DataError

from .dataset import WindowView, piece_tokens
from .stats import NGramModel, compare_stats

if TYPE_CHECKING:
    from .task import MusicTask

__all__ = ["baseline_nll", "evaluate_music", "token_nll"]


def token_nll(task: MusicTask, model: nn.Module, split: str) -> tuple[float, int]:
    """Token-weighted mean NLL (nats) over every token of ``split`` and the token count."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for batch in task.dataloader(split, train=False):
            batch = {k: v.to(device) for k, v in batch.items()}
            out = task.validation_step(model, batch)
            total += float(out.loss) * out.weight
            count += int(out.weight)
    model.train(was_training)
    if count == 0:
        raise DataError(f"split '{split}' of the music data is empty; nothing to evaluate.")
    return total / count, count


def baseline_nll(task: MusicTask, split: str) -> dict[str, float]:
    """Unigram and n-gram (order ``eval.ngram``) NLL, fitted on ``train`` and scored on
    the same windows and tokens as the model. Cached on the task (it never changes)."""
    cache: dict[str, dict[str, float]] = task.__dict__.setdefault("_baseline_cache", {})
    if split in cache:
        return cache[split]
    sets = task.datasets()
    train = sets["train"]
    seqs = [piece_tokens(train, i).tolist() for i in range(len(train))]  # type: ignore[arg-type]
    view = WindowView(sets[split], train=False)
    scored = [(w["tokens"].tolist(), w["loss_mask"].tolist())
              for i in range(len(view)) for w in view[i]]
    out: dict[str, float] = {}
    n = task.cfg.eval.ngram
    for name, order in (("unigram", 1), ("ngram", n)):
        nll = NGramModel(task.tok.vocab_size, order).fit(seqs).nll(scored)
        out[f"{name}_nll"] = nll
        out[f"{name}_ppl"] = math.exp(min(nll, 50.0))
    cache[split] = out
    return out


def evaluate_music(task: MusicTask, model: nn.Module, split: str) -> dict[str, float]:
    """See :meth:`MusicTask.evaluate`."""
    nll, count = token_nll(task, model, split)
    out: dict[str, float] = {"nll": nll, "ppl": math.exp(min(nll, 50.0)), "tokens": float(count)}
    out.update(baseline_nll(task, split))
    return out


def music_stats(task: MusicTask, model: nn.Module, split: str, n: int,
                bars: int) -> dict[str, Any]:
    """Statistics of ``n`` generated pieces (styles cycling through the split's pieces)
    side by side with the split's real pieces."""
    from .generation import sample_piece

    ds = task.datasets()[split]
    real = [task.tok.decode(piece_tokens(ds, i).tolist()) for i in range(len(ds))]  # type: ignore[arg-type]
    t0 = time.perf_counter()
    s = task.cfg.sample
    generated = []
    for i in range(n):
        style = real[i % len(real)].style
        generated.append(sample_piece(model, task.tok, style=style, bars=bars, seed=s.seed + i,
                                      temperature=s.temperature, top_k=s.top_k, top_p=s.top_p))
        if (i + 1) % max(1, n // 10) == 0:
            print(f"generated {i + 1}/{n} pieces for the statistics", file=sys.stderr, flush=True)
    stats = compare_stats(generated, real)
    stats["gen.seconds_per_piece"] = (time.perf_counter() - t0) / n
    return stats
