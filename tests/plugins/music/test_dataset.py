"""Training windows, evaluation windows and augmentation over prepared token sequences."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Subset
from torchsuite.plugins.music.dataset import (
    EvalWindows,
    PieceWindows,
    WindowView,
    augment_tokens,
    collate_windows,
    piece_tokens,
)
from torchsuite.plugins.music.events import Piece
from torchsuite.plugins.music.grammar import Grammar
from torchsuite.plugins.music.tokenizer import MusicTokenizer


def _records(tok: MusicTokenizer, pieces: list[Piece]) -> list[dict[str, np.ndarray]]:
    return [{"tokens": np.asarray(tok.encode(p), dtype=np.int16)} for p in pieces]


def test_train_windows_are_grammatical_prefixes(tok: MusicTokenizer,
                                                 chorales: list[Piece]) -> None:
    ds = PieceWindows(_records(tok, chorales), tok, seq_len=64)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        for i in range(len(ds)):
            (s,) = ds[i]
            ids = s["tokens"].tolist()
            assert len(ids) <= 64
            Grammar(tok).feed(ids)  # raises on an ill-formed window
            assert tok.kind(ids[3]) == "Bar"
            if not s["loss_mask"][0]:  # a mid-piece window: its header is context only
                assert not s["loss_mask"][:3].any() and s["loss_mask"][3:].all()
            starts.add(tuple(ids[3:8]))
    assert len(starts) > 10  # windows start at many different bars


def test_eval_windows_score_every_token_once(tok: MusicTokenizer,
                                             chorales: list[Piece]) -> None:
    records = _records(tok, chorales)
    ds = EvalWindows(records, tok, seq_len=64)
    scored = 0
    rebuilt: list[int] = []
    for i in range(len(ds)):
        s = ds[i]
        ids, mask = s["tokens"].tolist(), s["loss_mask"]
        if len(ids) > 3 and ids[3] == tok.bar_id:  # (a bar longer than a window is cut hard)
            Grammar(tok).feed(ids)
        scored += int(mask[1:].sum())
        rebuilt += ids if mask[0] else ids[3:]  # later windows repeat a 3-token header
    total = sum(len(r["tokens"]) for r in records)
    assert scored == total - len(records)  # each piece's first token has no context
    assert rebuilt == [t for r in records for t in r["tokens"].tolist()]
    short, long = sorted((ds[0], ds[1]), key=lambda s: len(s["tokens"]))  # type: ignore[misc]
    batch = collate_windows([short, long], pad_id=tok.pad_id)
    n = len(short["tokens"])
    assert batch["tokens"].shape == (2, len(long["tokens"]))
    assert (batch["tokens"][0, n:] == tok.pad_id).all() and not batch["loss_mask"][0, n:].any()


def test_transposition_shifts_every_pitch_alike(tok: MusicTokenizer, piece: Piece) -> None:
    ids = torch.tensor([tok.encode(piece)] * 8)
    out = augment_tokens(ids, tok, transpose=5, tempo=0, generator=torch.Generator().manual_seed(1))
    pr = tok.ranges["Pitch"]
    is_pitch = (ids >= pr.start) & (ids < pr.stop)
    shifts = set()
    for b in range(8):
        diff = (out[b] - ids[b])[is_pitch[b]]
        assert (diff == diff[0]).all() and -5 <= int(diff[0]) <= 5
        shifts.add(int(diff[0]))
        assert torch.equal(out[b][~is_pitch[b]], ids[b][~is_pitch[b]])
    assert len(shifts) > 1


def test_transposition_stays_inside_the_pitch_range(tok: MusicTokenizer) -> None:
    top = tok.tok("Pitch", tok.spec.max_pitch)
    ids = torch.tensor([[tok.style_id("bach"), tok.tok("Meter", 16), tok.tok("Tempo", 8),
                         tok.bar_id, tok.tok("Position", 0), top, tok.tok("Dur", 4)]] * 16)
    out = augment_tokens(ids, tok, transpose=6, tempo=0)
    assert int(out[:, 5].max()) <= top and int(out[:, 5].min()) >= top - 6


def test_tempo_stretch_moves_tempo_tokens_only(tok: MusicTokenizer, piece: Piece) -> None:
    ids = torch.tensor([tok.encode(piece)] * 8)
    out = augment_tokens(ids, tok, transpose=0, tempo=2, generator=torch.Generator().manual_seed(0))
    tr = tok.ranges["Tempo"]
    is_tempo = (ids >= tr.start) & (ids < tr.stop)
    assert torch.equal(out[~is_tempo], ids[~is_tempo])
    assert ((out - ids)[is_tempo].abs() <= 2).all()
    assert not torch.equal(out, ids)


def test_window_view_modes_through_subsets(tok: MusicTokenizer, chorales: list[Piece]) -> None:
    """Fine-tuning wraps the dataset in Subsets; both modes must still reach the pieces."""
    records = _records(tok, chorales)
    sub = Subset(PieceWindows(records, tok, seq_len=64), [2, 0])
    assert piece_tokens(sub, 0).tolist() == records[2]["tokens"].tolist()
    evals = WindowView(sub, train=False)[1]
    expected = EvalWindows(records[:1], tok, 64).windows
    assert len(evals) == len(expected) > 1
    assert all(torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["loss_mask"], b["loss_mask"])
               for a, b in zip(evals, expected, strict=True))
    (train,) = WindowView(sub, train=True)[1]
    assert len(train["tokens"]) <= 64
    batch = collate_windows([WindowView(sub, train=False)[0], [train]], pad_id=tok.pad_id)
    assert batch["tokens"].shape[0] == len(WindowView(sub, train=False)[0]) + 1
