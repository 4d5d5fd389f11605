"""Token windows over the prepared shards, batching and training-time augmentation.

A prepared record is one piece: ``{"tokens": int16 [N], "name", "style", "lyrics"}``.
:class:`PieceWindows` serves one item per piece, in two modes (chosen per loader by
:class:`WindowView`, so one dataset object serves training and evaluation alike,
also when the core wraps it in ``Subset`` for fine-tuning):

* training: one window of at most ``seq_len`` tokens starting at a random Bar, with
  a fresh header (Style, the Meter and Tempo in force there) so each window is a
  well-formed sequence on its own;
* evaluation: consecutive windows covering every token of the piece exactly once.

Items are lists of windows; :func:`collate_windows` flattens and pads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .tokenizer import MusicTokenizer

__all__ = [
    "EvalWindows",
    "PieceWindows",
    "WindowView",
    "augment_tokens",
    "collate_windows",
    "piece_tokens",
    "window_header",
]

HEADER = 3  # Style, Meter, Tempo
Window = dict[str, torch.Tensor]


def window_header(tok: MusicTokenizer, tokens: np.ndarray, start: int) -> list[int]:
    """Header for a window starting at ``start``: the piece's Style, and the latest Meter
    and Tempo before ``start``."""
    head = tokens[:start]
    meter_r, tempo_r = tok.ranges["Meter"], tok.ranges["Tempo"]
    meters = np.nonzero((head >= meter_r.start) & (head < meter_r.stop))[0]
    tempos = np.nonzero((head >= tempo_r.start) & (head < tempo_r.stop))[0]
    return [int(tokens[0]), int(head[meters[-1]]), int(head[tempos[-1]])]


def _bars(tok: MusicTokenizer, tokens: np.ndarray) -> np.ndarray:
    return np.nonzero(tokens == tok.bar_id)[0]


def _sample(header: list[int], body: np.ndarray, score_header: bool) -> Window:
    toks = torch.tensor([*header, *body.tolist()], dtype=torch.long)
    mask = torch.ones_like(toks, dtype=torch.bool)
    if not score_header:
        mask[:len(header)] = False
    return {"tokens": toks, "loss_mask": mask}


def random_window(tok: MusicTokenizer, tokens: np.ndarray, seq_len: int) -> Window:
    """A window starting at a random Bar (torch's RNG, which the trainer seeds)."""
    if len(tokens) <= seq_len:
        return _sample([], tokens, True)
    bars = _bars(tok, tokens)
    room = seq_len - HEADER
    starts = bars[bars <= max(bars[0], len(tokens) - room)]
    start = int(starts[torch.randint(len(starts), (1,)).item()])
    if start == bars[0]:  # the piece's own beginning: keep the real header
        return _sample([], tokens[:seq_len], True)
    return _sample(window_header(tok, tokens, start), tokens[start:start + room], False)


def all_windows(tok: MusicTokenizer, tokens: np.ndarray, seq_len: int) -> list[Window]:
    """Consecutive windows (cut at bar lines where possible) scoring each token once."""
    if len(tokens) <= seq_len:
        return [_sample([], tokens, True)]
    bars = [*_bars(tok, tokens).tolist(), len(tokens)]
    out: list[Window] = []
    lo, first = 0, True
    while lo < len(tokens):
        room = seq_len - (0 if first else HEADER)
        # the furthest bar boundary that fits; a single over-long bar is cut hard
        fits = [b for b in bars if lo < b <= lo + room]
        hi = fits[-1] if fits else lo + room
        header = [] if first else window_header(tok, tokens, lo)
        out.append(_sample(header, tokens[lo:hi], first))
        lo, first = hi, False
    return out


class PieceWindows(Dataset):
    """One item per piece: ``[random window]`` (``ds[i]``) or every window (``windows(i)``)."""

    def __init__(self, pieces: Any, tok: MusicTokenizer, seq_len: int) -> None:
        self.pieces, self.tok, self.seq_len = pieces, tok, seq_len

    def __len__(self) -> int:
        return len(self.pieces)

    def tokens(self, i: int) -> np.ndarray:
        return np.asarray(self.pieces[i]["tokens"], dtype=np.int64)

    def __getitem__(self, i: int) -> list[Window]:
        return [random_window(self.tok, self.tokens(i), self.seq_len)]

    def windows(self, i: int) -> list[Window]:
        return all_windows(self.tok, self.tokens(i), self.seq_len)


def _resolve(ds: Dataset, i: int) -> tuple[PieceWindows, int]:
    """Follow ``Subset`` wrappers (fine-tuning splits) down to the :class:`PieceWindows`."""
    while isinstance(ds, Subset):
        ds, i = ds.dataset, int(ds.indices[i])
    if not isinstance(ds, PieceWindows):
        raise TypeError(f"expected music PieceWindows, got {type(ds).__name__}")
    return ds, i


def piece_tokens(ds: Dataset, i: int) -> np.ndarray:
    """Token ids of piece ``i`` of a (possibly ``Subset``-wrapped) :class:`PieceWindows`."""
    base, j = _resolve(ds, i)
    return base.tokens(j)


class WindowView(Dataset):
    """``ds`` (a :class:`PieceWindows`, maybe inside ``Subset``s) in training or
    evaluation mode."""

    def __init__(self, ds: Dataset, *, train: bool) -> None:
        self.ds, self.train = ds, train

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> list[Window]:
        base, j = _resolve(self.ds, i)
        return base[j] if self.train else base.windows(j)


class EvalWindows(Dataset):
    """Every evaluation window of every piece of ``pieces``, flat (for baselines and stats)."""

    def __init__(self, pieces: Any, tok: MusicTokenizer, seq_len: int) -> None:
        self.windows: list[Window] = []
        for j in range(len(pieces)):
            tokens = np.asarray(pieces[j]["tokens"], dtype=np.int64)
            self.windows += all_windows(tok, tokens, seq_len)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> Window:
        return self.windows[i]


def collate_windows(samples: list[Window | list[Window]], pad_id: int = 0) -> dict[str, Any]:
    """Flatten per-piece lists and right-pad to the longest window:
    ``tokens`` [B, T] long, ``loss_mask`` [B, T] bool."""
    flat = [w for s in samples for w in (s if isinstance(s, list) else [s])]
    t = max(len(s["tokens"]) for s in flat)
    tokens = torch.full((len(flat), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(flat), t), dtype=torch.bool)
    for i, s in enumerate(flat):
        n = len(s["tokens"])
        tokens[i, :n] = s["tokens"]
        mask[i, :n] = s["loss_mask"]
    return {"tokens": tokens, "loss_mask": mask}


def augment_tokens(tokens: torch.Tensor, tok: MusicTokenizer, *, transpose: int, tempo: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Random transposition (semitones in ``[-transpose, transpose]``, limited per sample so
    no pitch leaves the vocabulary) and tempo stretch (``[-tempo, tempo]`` tempo buckets).

    Args:
        tokens: ``[B, T]`` ids; returns a new tensor.
    """
    out = tokens.clone()
    pr, tr = tok.ranges["Pitch"], tok.ranges["Tempo"]
    is_pitch = (out >= pr.start) & (out < pr.stop)  # [B, T]
    is_tempo = (out >= tr.start) & (out < tr.stop)
    for b in range(out.shape[0]):
        if transpose > 0 and is_pitch[b].any():
            p = out[b][is_pitch[b]]
            lo = max(-transpose, pr.start - int(p.min()))
            hi = min(transpose, pr.stop - 1 - int(p.max()))
            if hi >= lo:
                k = int(torch.randint(lo, hi + 1, (1,), generator=generator))
                out[b][is_pitch[b]] = p + k
        if tempo > 0 and is_tempo[b].any():
            d = int(torch.randint(-tempo, tempo + 1, (1,), generator=generator))
            out[b][is_tempo[b]] = (out[b][is_tempo[b]] + d).clamp(tr.start, tr.stop - 1)
    return out
