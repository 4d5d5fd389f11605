"""The REMI-like tokenizer: exact round trips at the grid, and MIDI files in between."""

from __future__ import annotations

import pytest
from torchsuite.plugins.music.events import Note, Piece, piece_from_midi, piece_to_midi
from torchsuite.plugins.music.grammar import is_well_formed
from torchsuite.plugins.music.tokenizer import MusicTokenizer


def notes_of(piece: Piece) -> list[tuple[int, int, int, int]]:
    return [(n.start, n.track, n.pitch, n.dur) for n in piece.notes]


def test_synthetic_round_trip_is_exact(tok: MusicTokenizer, piece: Piece) -> None:
    ids = tok.encode(piece)
    back = tok.decode(ids)
    assert notes_of(back) == notes_of(piece)
    # velocities come back as their bucket's value; the bucket itself is exact
    assert [tok.vel_bucket(n.velocity) for n in back.notes] == [
        tok.vel_bucket(n.velocity) for n in piece.notes]
    assert back.meters == piece.meters
    assert [g for g, _ in back.tempos] == [g for g, _ in piece.tempos]
    assert back.style == "bach"
    assert tok.encode(back) == ids  # a second trip changes nothing
    assert is_well_formed(tok, ids)


def test_chorales_round_trip_exactly(tok: MusicTokenizer, chorales: list[Piece]) -> None:
    for piece in chorales:
        ids = tok.encode(piece)
        assert is_well_formed(tok, ids), piece.name
        back = tok.decode(ids)
        assert notes_of(back) == notes_of(piece), piece.name
        assert tok.encode(back) == ids


def test_round_trip_through_a_midi_file(tok: MusicTokenizer, chorales: list[Piece],
                                        tmp_path) -> None:
    import pretty_midi

    piece = chorales[0]
    path = tmp_path / "c.mid"
    piece_to_midi(piece).write(str(path))
    again = piece_from_midi(pretty_midi.PrettyMIDI(str(path)))
    assert notes_of(again) == notes_of(piece)
    assert tok.encode(again, style=piece.style)[3:] == tok.encode(piece)[3:]  # tempo aside


def test_header_and_vocabulary(tok: MusicTokenizer, piece: Piece) -> None:
    words = tok.describe(tok.encode(piece))
    assert words[:4] == ["Style_bach", "Meter_4", "Tempo_" + words[2].split("_")[1], "Bar"]
    assert words[-1] == "End"
    assert len(set(tok.ranges)) == len(tok.ranges)
    assert tok.vocab_size == max(r.stop for r in tok.ranges.values())
    assert tok.style_id("no-such-style") == tok.style_id("unknown")


def test_out_of_range_pitch_and_duration_are_folded(tok: MusicTokenizer) -> None:
    p = Piece([Note(0, 0, 12, 100), Note(0, 1, 120, 4)])
    back = tok.decode(tok.encode(p))
    assert [(n.pitch, n.dur) for n in back.notes] == [(24, tok.spec.max_dur), (108, 4)]


def test_tok_rejects_values_outside_the_vocabulary(tok: MusicTokenizer) -> None:
    with pytest.raises(ValueError, match="Pitch value 200"):
        tok.tok("Pitch", 200)
