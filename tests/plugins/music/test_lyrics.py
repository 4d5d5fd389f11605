"""Lyrics to melody: one note per syllable (melisma with '_'), lyrics in the MIDI file."""

from __future__ import annotations

import itertools
from pathlib import Path

import pretty_midi
import pytest
import torch
from torchsuite.core import SuiteError
from torchsuite.plugins.music.events import write_midi
from torchsuite.plugins.music.grammar import is_well_formed
from torchsuite.plugins.music.lyrics import lyrics_melody, note_syllables, syllables
from torchsuite.plugins.music.model import MusicTransformer, TransformerSpec
from torchsuite.plugins.music.tokenizer import MusicTokenizer

TEXT = "Ach Gott, vom Him-mel sieh _ da-rein."


def test_syllables_follow_the_corpus_convention() -> None:
    assert syllables(TEXT) == ["Ach", "Gott,", "vom", "Him-", "mel", "sieh", "_", "da-", "rein."]
    assert note_syllables("la _ _ li") == ["la", None, None, "li"]
    with pytest.raises(SuiteError, match="cannot start"):
        note_syllables("_ la")
    with pytest.raises(SuiteError, match="empty"):
        note_syllables("   ")


@pytest.mark.parametrize("seed", range(3))
def test_melody_has_one_note_per_syllable(tok: MusicTokenizer, tmp_path: Path,
                                          seed: int) -> None:
    torch.manual_seed(seed)
    model = MusicTransformer(TransformerSpec(tok.vocab_size, 32, 2, 2, 64, 0.0, 2048)).eval()
    piece = lyrics_melody(model, tok, TEXT, seed=seed, temperature=1.5)
    notes = piece.notes
    assert len(notes) == 9 and {n.track for n in notes} == {0}
    assert [n.lyric for n in notes] == ["Ach", "Gott,", "vom", "Him-", "mel", "sieh", None,
                                        "da-", "rein."]
    assert all(a.start + a.dur <= b.start for a, b in itertools.pairwise(notes))
    assert notes[1].dur >= 8 and notes[-1].dur >= 8  # phrase ends are held
    assert is_well_formed(tok, tok.encode(piece))
    path = write_midi(piece, tmp_path / "song.mid")
    pm = pretty_midi.PrettyMIDI(str(path))
    assert [ly.text for ly in pm.lyrics] == [s for s in note_syllables(TEXT) if s]
    onsets = sorted(n.start for n in pm.instruments[0].notes)
    assert [round(ly.time, 6) for ly in pm.lyrics] == [
        round(t, 6) for t, s in zip(onsets, note_syllables(TEXT), strict=True) if s]
