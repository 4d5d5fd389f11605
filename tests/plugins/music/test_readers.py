"""Reading a directory of MIDI files: bad files are counted and named, never fatal."""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest
from torchsuite.plugins.music.events import Piece, piece_to_midi
from torchsuite.plugins.music.readers import piece_from_json, piece_to_json, read_midi_dir


def _midi_tree(root: Path, piece: Piece) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    piece_to_midi(piece).write(str(root / "good.mid"))
    piece_to_midi(piece).write(str(root / "sub" / "deeper" / "Good2.MIDI"))
    (root / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage" * 3)
    (root / "empty.mid").write_bytes(b"")
    drums = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes.append(pretty_midi.Note(100, 36, 0.0, 0.5))
    drums.instruments.append(kit)
    drums.write(str(root / "sub" / "drums.mid"))
    (root / "notes.txt").write_text("not a midi file")


def test_bad_files_are_skipped_and_counted(tmp_path: Path, piece: Piece) -> None:
    _midi_tree(tmp_path, piece)
    result = read_midi_dir(tmp_path, style="unknown")
    assert result.files == 5  # .txt ignored, upper-case suffix found recursively
    assert len(result.pieces) == 2
    failed = {Path(p).name: err for p, err in result.errors}
    assert set(failed) == {"corrupt.mid", "empty.mid", "drums.mid"}
    assert "no notes" in failed["drums.mid"]
    summary = result.summary()
    assert "5 files, 2 pieces, 3 failed" in summary and "corrupt.mid" in summary
    assert [n.pitch for n in result.pieces[0].notes] == [n.pitch for n in piece.notes]


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_reading_gives_the_same_pieces(tmp_path: Path, piece: Piece,
                                                workers: int) -> None:
    _midi_tree(tmp_path, piece)
    result = read_midi_dir(tmp_path, workers=workers)
    assert sorted(Path(p.name).name for p in result.pieces) == ["Good2.MIDI", "good.mid"]


def test_piece_json_round_trip(piece: Piece) -> None:
    assert piece_from_json(piece_to_json(piece)) == piece
