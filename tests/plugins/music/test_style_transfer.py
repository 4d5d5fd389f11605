"""Style transfer: the input's melody is kept note for note, the other voices regenerated."""

from __future__ import annotations

import torch
from torchsuite.plugins.music.events import Piece
from torchsuite.plugins.music.grammar import is_well_formed
from torchsuite.plugins.music.model import MusicTransformer, TransformerSpec
from torchsuite.plugins.music.style_transfer import melody_preservation, stylize
from torchsuite.plugins.music.tokenizer import MusicTokenizer


def _melody(piece: Piece) -> list[tuple[int, int, int]]:
    return [(n.start, n.pitch, n.dur) for n in piece.melody(0)]


def test_stylize_keeps_the_melody_exactly(tok: MusicTokenizer, piece: Piece) -> None:
    piece = Piece([n for n in piece.notes if n.start < 20], piece.meters[:2], piece.tempos[:1])
    torch.manual_seed(0)
    model = MusicTransformer(TransformerSpec(tok.vocab_size, 32, 2, 2, 64, 0.0, 4096)).eval()
    for seed in range(3):
        out = stylize(model, tok, piece, "palestrina", seed=seed, temperature=1.5)
        assert out.style == "palestrina"
        assert _melody(out) == _melody(piece)
        assert melody_preservation(piece, out) == 1.0
        assert is_well_formed(tok, tok.encode(out))
        assert out.meters[:2] == piece.meters[:2]
        others = [n for n in out.notes if n.track != 0]
        assert others, "the other voices are regenerated"


def test_melody_preservation_counts_missing_notes(piece: Piece) -> None:
    half = Piece([n for i, n in enumerate(piece.notes) if n.track != 0 or i % 2], piece.meters)
    kept = melody_preservation(piece, half)
    assert 0.0 < kept < 1.0
    assert melody_preservation(Piece([]), piece) == 0.0
