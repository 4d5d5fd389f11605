"""Token windows over the prepared shards, batching and training-time augmentation.

A prepared record is one piece: ``{"tokens": int16 [N], "name", "style", "lyrics"}``.
Training samples are windows of at most ``seq_len`` tokens starting at a random Bar,
with a fresh header (Style, the Meter and Tempo in force there) so each window is a
well-formed sequence on its own. Evaluation cuts every piece into consecutive
windows so each token is scored exactly once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .tokenizer import MusicTokenizer

__all__ = ["EvalWindows", "TrainWindows", "augment_tokens", "collate_windows", "window_header"]

HEADER = 3  # Style, Meter, Tempo


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


def _sample(header: list[int], body: np.ndarray, score_header: bool) -> dict[str, torch.Tensor]:
    toks = torch.tensor([*header, *body.tolist()], dtype=torch.long)
    mask = torch.ones_like(toks, dtype=torch.bool)
    if not score_header:
        mask[:len(header)] = False
    return {"tokens": toks, "loss_mask": mask}


class TrainWindows(Dataset):
    """One random window per piece per epoch (map-style; randomness from torch's RNG,
    which the trainer seeds)."""

    def __init__(self, pieces: Dataset, tok: MusicTokenizer, seq_len: int) -> None:
        self.pieces, self.tok, self.seq_len = pieces, tok, seq_len

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        tokens = np.asarray(self.pieces[i]["tokens"], dtype=np.int64)
        if len(tokens) <= self.seq_len:
            return _sample([], tokens, True)
        bars = _bars(self.tok, tokens)
        room = self.seq_len - HEADER
        starts = bars[bars <= max(bars[0], len(tokens) - room)]
        start = int(starts[torch.randint(len(starts), (1,)).item()])
        if start == bars[0]:  # the piece's own beginning: keep the real header
            return _sample([], tokens[:self.seq_len], True)
        header = window_header(self.tok, tokens, start)
        return _sample(header, tokens[start:start + room], False)


class EvalWindows(Dataset):
    """Consecutive windows covering every token of every piece once."""

    def __init__(self, pieces: Dataset, tok: MusicTokenizer, seq_len: int) -> None:
        self.tok = tok
        self.windows: list[tuple[list[int], np.ndarray, bool]] = []
        for j in range(len(pieces)):
            tokens = np.asarray(pieces[j]["tokens"], dtype=np.int64)
            if len(tokens) <= seq_len:
                self.windows.append(([], tokens, True))
                continue
            bars = [*_bars(tok, tokens).tolist(), len(tokens)]
            lo, first = 0, True
            while lo < len(tokens):
                room = seq_len - (0 if first else HEADER)
                # the furthest bar boundary that fits; a single over-long bar is cut hard
                fits = [b for b in bars if lo < b <= lo + room]
                hi = fits[-1] if fits else lo + room
                header = [] if first else window_header(tok, tokens, lo)
                self.windows.append((header, tokens[lo:hi], first))
                lo, first = hi, False

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        header, body, first = self.windows[i]
        return _sample(header, body, first)


def collate_windows(samples: list[dict[str, torch.Tensor]], pad_id: int = 0) -> dict[str, Any]:
    """Right-pad to the longest window: ``tokens`` [B, T] long, ``loss_mask`` [B, T] bool."""
    t = max(len(s["tokens"]) for s in samples)
    tokens = torch.full((len(samples), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(samples), t), dtype=torch.bool)
    for i, s in enumerate(samples):
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
