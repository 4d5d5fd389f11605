"""Quality measures: an n-gram baseline over tokens and musical statistics of pieces."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from .events import GRID, Piece

__all__ = ["NGramModel", "compare_stats", "piece_stats"]

#: Major-scale pitch classes relative to the tonic.
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])


class NGramModel:
    """Interpolated n-gram model (Jelinek-Mercer with fixed weights, add-k smoothed
    unigram): the baseline next to the Transformer's NLL. ``n = 1`` is the unigram model.

    Args:
        vocab_size: Number of token ids.
        n: Order (1 = unigram, 2 = bigram, ...).
        lambdas: Interpolation weights from the highest order down to the unigram
            (default: halving per order, normalised).
        k: Add-k smoothing of the unigram distribution (every id gets some mass).
    """

    def __init__(self, vocab_size: int, n: int = 3, lambdas: Sequence[float] | None = None,
                 k: float = 0.1) -> None:
        if n < 1:
            raise ValueError("n-gram order must be >= 1")
        raw = list(lambdas) if lambdas is not None else [0.5 ** i for i in range(n)]
        if len(raw) != n:
            raise ValueError("need one interpolation weight per order")
        self.v, self.n, self.k = vocab_size, n, k
        self.lambdas = [w / sum(raw) for w in raw]
        # counts[o][ctx] = Counter of next tokens after the (o)-token context ctx
        self.counts: list[dict[tuple[int, ...], Counter[int]]] = [{} for _ in range(n)]
        self.unigram = np.zeros(vocab_size, dtype=np.float64)

    def fit(self, sequences: Iterable[Sequence[int]]) -> NGramModel:
        """Count every n-gram of every sequence (each sequence is a separate piece)."""
        for seq in sequences:
            seq = [int(t) for t in seq]
            self.unigram += np.bincount(seq, minlength=self.v)[: self.v]
            for order in range(1, self.n):
                table = self.counts[order]
                for i in range(order, len(seq)):
                    table.setdefault(tuple(seq[i - order:i]), Counter())[seq[i]] += 1
        return self

    def prob(self, history: Sequence[int], token: int) -> float:
        """P(token | the last n-1 tokens of history)."""
        p = (self.unigram[token] + self.k) / (self.unigram.sum() + self.k * self.v)
        out = self.lambdas[-1] * p
        for order in range(1, self.n):
            lam = self.lambdas[self.n - 1 - order]
            nxt = self.counts[order].get(tuple(history[-order:])) if len(
                history) >= order else None
            out += lam * (nxt[token] / sum(nxt.values()) if nxt else p)
        return float(out)

    def nll(self, sequences: Iterable[tuple[Sequence[int], Sequence[bool]]]) -> float:
        """Mean negative log-likelihood (nats/token) of the tokens whose mask is true,
        each predicted from the tokens before it in its own sequence."""
        total, count = 0.0, 0
        for seq, mask in sequences:
            seq = [int(t) for t in seq]
            for i in range(1, len(seq)):
                if mask[i]:
                    total -= math.log(self.prob(seq[max(0, i - self.n + 1):i], seq[i]))
                    count += 1
        return total / max(count, 1)


def piece_stats(piece: Piece) -> dict[str, float | np.ndarray]:
    """Statistics of one piece.

    Returns:
        ``pitch_classes`` (12-bin histogram, sums to 1), ``note_density`` (onsets per
        quarter note), ``polyphony`` (mean sounding notes where any sound), ``in_scale``
        (fraction of notes in the best-fitting major scale, i.e. also its relative
        minor), ``durations`` (histogram over 1, 2, 3, 4, 6, 8, 12, 16+ grid steps).
    """
    notes = piece.notes
    if not notes:
        return {"pitch_classes": np.zeros(12), "note_density": 0.0, "polyphony": 0.0,
                "in_scale": 0.0, "durations": np.zeros(8)}
    pcs = np.bincount([n.pitch % 12 for n in notes], minlength=12).astype(float)
    pcs /= pcs.sum()
    end = max(n.start + n.dur for n in notes)
    onsets = len({n.start for n in notes})
    sounding = np.zeros(end, dtype=np.int32)
    for n in notes:
        sounding[n.start:n.start + n.dur] += 1
    active = sounding[sounding > 0]
    in_scale = max(pcs[(_MAJOR + tonic) % 12].sum() for tonic in range(12))
    bins = np.array([1, 2, 3, 4, 6, 8, 12, 16])
    idx = [int(np.searchsorted(bins, min(n.dur, 16))) for n in notes]
    durs = np.bincount(idx, minlength=8)[:8].astype(float)
    durs /= durs.sum()
    return {"pitch_classes": pcs, "note_density": onsets / (end / GRID),
            "polyphony": float(active.mean()), "in_scale": float(in_scale), "durations": durs}


def _mean(stats: list[dict[str, float | np.ndarray]], key: str) -> float | np.ndarray:
    return np.mean([s[key] for s in stats], axis=0)


def compare_stats(generated: list[Piece], real: list[Piece]) -> dict[str, float]:
    """Side-by-side statistics: ``gen.<stat>`` and ``real.<stat>`` plus distances.

    ``pitch_class_distance`` and ``duration_distance`` are total-variation distances
    between the pooled histograms of the two sets (0 = identical, 1 = disjoint).
    """
    g = [piece_stats(p) for p in generated if p.notes]
    r = [piece_stats(p) for p in real if p.notes]
    out: dict[str, float] = {"gen.pieces": float(len(g)), "real.pieces": float(len(r))}
    if not g or not r:
        return out
    for key in ("note_density", "polyphony", "in_scale"):
        out[f"gen.{key}"] = float(_mean(g, key))
        out[f"real.{key}"] = float(_mean(r, key))
    out["pitch_class_distance"] = 0.5 * float(np.abs(_mean(g, "pitch_classes")
                                                     - _mean(r, "pitch_classes")).sum())
    out["duration_distance"] = 0.5 * float(np.abs(_mean(g, "durations")
                                                  - _mean(r, "durations")).sum())
    return out
