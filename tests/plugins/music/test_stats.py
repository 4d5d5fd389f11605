"""Baselines and musical statistics used by `suite eval music`."""

from __future__ import annotations

import math

import numpy as np
import pytest
from torchsuite.plugins.music.events import GRID, Note, Piece
from torchsuite.plugins.music.stats import NGramModel, compare_stats, piece_stats


def test_unigram_nll_is_the_smoothed_entropy() -> None:
    seqs = [[0, 1, 1, 2, 2, 2]]
    uni = NGramModel(3, n=1, k=0.0).fit(seqs)
    # the scored tokens are seq[1:] = 1 1 2 2 2, with P(1) = 2/6 and P(2) = 3/6
    expected = -np.mean([math.log(2 / 6)] * 2 + [math.log(3 / 6)] * 3)
    assert uni.nll([(seqs[0], [True] * 6)]) == pytest.approx(expected)


def test_bigram_beats_unigram_on_a_repeating_pattern() -> None:
    seqs = [[1, 2, 3, 4] * 20]
    held = ([1, 2, 3, 4] * 5, [True] * 20)
    uni = NGramModel(6, n=1).fit(seqs).nll([held])
    tri = NGramModel(6, n=3).fit(seqs).nll([held])
    assert tri < 0.5 * uni
    mask = [False] * 10 + [True] * 10  # only masked-in tokens count
    assert NGramModel(6, n=1).fit(seqs).nll([(held[0], mask)]) == pytest.approx(uni, rel=0.05)


def test_piece_stats_on_a_known_piece() -> None:
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    notes = [Note(i * GRID, 0, p, GRID) for i, p in enumerate(c_major)]
    notes += [Note(0, 1, 48, 8 * GRID)]  # a held bass note under all of it
    s = piece_stats(Piece(sorted(notes)))
    assert s["in_scale"] == pytest.approx(1.0)
    assert s["polyphony"] == pytest.approx(2.0)
    assert s["note_density"] == pytest.approx(8 / 8)  # 8 onsets in 8 quarter notes
    assert s["pitch_classes"][0] == pytest.approx(3 / 9)
    assert s["durations"].sum() == pytest.approx(1.0)
    chromatic = Piece([Note(i, 0, 60 + i, 1) for i in range(12)])
    assert piece_stats(chromatic)["in_scale"] == pytest.approx(7 / 12)


def test_compare_stats_distances() -> None:
    a = [Piece([Note(0, 0, 60, 4), Note(4, 0, 64, 4)])]
    b = [Piece([Note(0, 0, 61, 1), Note(1, 0, 66, 1)])]
    same = compare_stats(a, a)
    assert same["pitch_class_distance"] == 0.0 and same["duration_distance"] == 0.0
    diff = compare_stats(a, b)
    assert diff["pitch_class_distance"] == pytest.approx(1.0)
    assert diff["duration_distance"] == pytest.approx(1.0)
    assert diff["gen.note_density"] != diff["real.note_density"]
