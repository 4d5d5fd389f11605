"""The style classifier learns styles from content alone and judges pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torchsuite.plugins.music.dataset import PieceWindows
from torchsuite.plugins.music.events import GRID, Note, Piece
from torchsuite.plugins.music.style_classifier import (
    load_classifier,
    piece_accuracy,
    save_classifier,
    train_style_classifier,
)
from torchsuite.plugins.music.tokenizer import MusicTokenizer


def _piece(seed: int, style: str) -> Piece:
    """'bach' here: diatonic quarter notes up high; 'irish': chromatic eighths down low."""
    rng = np.random.default_rng(seed)
    diatonic = style == "bach"
    dur, base = (4, 72) if diatonic else (2, 48)
    steps = [0, 2, 4, 5, 7, 9, 11] if diatonic else list(range(12))
    notes = [Note(t, 0, base + int(rng.choice(steps)), dur) for t in range(0, 8 * 4 * GRID, dur)]
    return Piece(notes, style=style, name=f"{style}-{seed}")


def _set(tok: MusicTokenizer, seeds: range) -> PieceWindows:
    records = [{"tokens": np.asarray(tok.encode(_piece(s, style)), dtype=np.int16)}
               for s in seeds for style in ("bach", "irish")]
    return PieceWindows(records, tok, seq_len=64)


def test_classifier_learns_styles_and_round_trips(tok: MusicTokenizer, tmp_path: Path) -> None:
    train, test = _set(tok, range(10)), _set(tok, range(100, 106))
    clf = train_style_classifier(train, tok, steps=30, batch_size=8, seq_len=64, log_every=0)
    assert piece_accuracy(clf, tok, test) >= 0.9
    disguised = Piece(_piece(7, "irish").notes, style="bach")  # the Style token is ignored
    probs = clf.predict_proba(tok, disguised)
    assert max(probs, key=probs.get) == "irish"
    assert abs(sum(probs.values()) - 1.0) < 1e-5
    again = load_classifier(save_classifier(clf, tmp_path / "clf.pt"))
    assert again.predict_proba(tok, _piece(3, "bach")) == clf.predict_proba(tok, _piece(3, "bach"))
