"""Fixtures for the symbolic music tests: a few real chorales and small synthetic pieces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torchsuite.plugins.music.events import GRID, Note, Piece
from torchsuite.plugins.music.tokenizer import MusicTokenizer


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy machine the
    threads' spin-waiting makes them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tok() -> MusicTokenizer:
    return MusicTokenizer()


@pytest.fixture(scope="session")
def chorales() -> list[Piece]:
    """Three Bach chorales from music21's bundled corpus (parsed once per session)."""
    pytest.importorskip("music21", reason="the [music] extra (music21) is not installed")
    from torchsuite.plugins.music.readers import read_corpus

    result = read_corpus({"bach": 3}, workers=1)
    assert not result.errors, result.summary()
    return result.pieces


@pytest.fixture
def piece() -> Piece:
    """Two voices, a pickup bar, a 3/4 section, a tempo change, varied velocities and a
    chord: the corner cases of the tokenizer in one small piece."""
    notes = [
        Note(0, 0, 72, 4, 80),  # pickup bar of one quarter
        Note(4, 0, 74, 8, 80), Note(4, 1, 60, 4, 50), Note(4, 1, 64, 4, 50),  # chord in voice 1
        Note(12, 0, 76, 2, 100), Note(14, 0, 77, 2, 100), Note(8, 1, 62, 12, 50),
        Note(20, 0, 79, 12, 30), Note(20, 1, 55, 12, 30),  # 3/4 bar from step 20
        Note(32, 0, 81, 64, 64),  # longest duration, crosses into later bars
    ]
    meters = [(0, GRID), (4, 4 * GRID), (20, 3 * GRID), (32, 4 * GRID)]
    tempos = [(0, 90.0), (20, 140.0)]
    return Piece(sorted(notes), meters, tempos, "bach", "synthetic")


def random_piece(seed: int, bars: int = 4) -> Piece:
    """A seeded four-voice piece in C major (quarter and eighth notes, 4/4)."""
    rng = np.random.default_rng(seed)
    scale = [0, 2, 4, 5, 7, 9, 11]
    notes = []
    for voice, base in enumerate((72, 64, 57, 45)):
        t = 0
        while t < bars * 4 * GRID:
            dur = int(rng.choice([2, 4, 4, 8]))
            pitch = base + scale[int(rng.integers(7))]
            notes.append(Note(t, voice, pitch, dur, 64 + 8 * voice))
            t += dur
    return Piece(sorted(notes), style="unknown", name=f"random-{seed}")


@pytest.fixture
def midi_dir(tmp_path: Path) -> Path:
    """Twenty seeded random pieces as MIDI files (no music21 needed)."""
    from torchsuite.plugins.music.events import write_midi

    root = tmp_path / "midi"
    for seed in range(20):
        write_midi(random_piece(seed), root / f"piece{seed:02d}.mid")
    return root
