"""Monophonic note lines: from MIDI files or the bundled Bach chorales, to frame features.

The sound-source model renders one melodic line at a time (one part of a
chorale, one singer), so a piece is split into parts and each part is reduced
to a monophonic line (the highest sounding note wins where notes overlap).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch
from torchsuite.core.errors import DataError

from .features import FeatureSpec, midi_to_hz

__all__ = [
    "Line",
    "NoteEvent",
    "chorale_lines",
    "line_features",
    "lines_from_midi",
    "load_midi",
    "sine_render",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NoteEvent:
    """One note: MIDI pitch, start/end in seconds, velocity 1..127."""

    pitch: int
    start: float
    end: float
    velocity: int = 90


@dataclass
class Line:
    """A monophonic note line with a name (``bwv269/part0``, ``song/track1``)."""

    name: str
    notes: list[NoteEvent]

    @property
    def duration(self) -> float:
        """End of the last note in seconds."""
        return max((n.end for n in self.notes), default=0.0)

    def clipped(self, seconds: float) -> Line:
        """The line cut at ``seconds`` (0: unchanged)."""
        if seconds <= 0:
            return self
        notes = [
            NoteEvent(n.pitch, n.start, min(n.end, seconds), n.velocity)
            for n in self.notes
            if n.start < seconds
        ]
        return Line(self.name, notes)

    def to_midi(self, program: int = 0) -> pretty_midi.PrettyMIDI:
        """The line as a one-instrument MIDI file using General MIDI ``program``."""
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=program)
        inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end) for n in self.notes]
        pm.instruments.append(inst)
        return pm


def load_midi(path: str | Path) -> pretty_midi.PrettyMIDI:
    """Read a MIDI file; a non-MIDI or corrupt file is a :class:`DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MIDI file '{path}' does not exist. Check the path.")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # pretty_midi/mido raise many types for bad files
        raise DataError(
            f"'{path}' could not be read as MIDI ({type(e).__name__}: {e}). Expected a "
            "Standard MIDI File (.mid); re-export it from your editor."
        ) from e


def _skyline(notes: list[NoteEvent]) -> list[NoteEvent]:
    """Reduce overlapping notes to one line: a later note cuts the previous one short;
    among simultaneous onsets the highest pitch wins."""
    notes = sorted(notes, key=lambda n: (n.start, -n.pitch))
    out: list[NoteEvent] = []
    for n in notes:
        if out and abs(out[-1].start - n.start) < 1e-4:
            continue  # same onset, lower note: dropped
        if out and out[-1].end > n.start:
            prev = out[-1]
            out[-1] = NoteEvent(prev.pitch, prev.start, n.start, prev.velocity)
        if n.end - n.start > 1e-3:
            out.append(n)
    return [n for n in out if n.end - n.start > 1e-3]


def lines_from_midi(pm: pretty_midi.PrettyMIDI, name: str, *, part: int | None = None,
                    merge: bool = False) -> list[Line]:
    """Monophonic lines of a MIDI file: one per non-drum instrument, or one merged skyline.

    Args:
        pm: The MIDI data.
        name: Prefix of the line names.
        part: Keep only this instrument index (0-based) of the non-drum instruments.
        merge: Merge all instruments into one top line (the melody for ``synthesize``).
    """
    insts = [i for i in pm.instruments if not i.is_drum and i.notes]
    if part is not None:
        if not 0 <= part < len(insts):
            raise DataError(
                f"MIDI '{name}' has {len(insts)} non-drum part(s); --part {part} does not "
                f"exist. Use a value from 0 to {max(len(insts) - 1, 0)}."
            )
        insts = [insts[part]]
    def events(inst: pretty_midi.Instrument) -> list[NoteEvent]:
        return [NoteEvent(n.pitch, n.start, n.end, n.velocity) for n in inst.notes]

    if merge:
        merged = [e for inst in insts for e in events(inst)]
        return [Line(name, _skyline(merged))] if merged else []
    return [Line(f"{name}/part{k}", _skyline(events(i))) for k, i in enumerate(insts)]


def chorale_lines(max_pieces: int, parts: int) -> Iterator[tuple[str, list[Line]]]:
    """Bach chorales from music21's bundled corpus as (piece id, lines).

    ``parts`` picks the outer voices first (soprano, bass, then alto, tenor).
    Chorales that fail MIDI export (about 1 in 80: malformed repeats) are logged
    and skipped.
    """
    from music21 import corpus  # heavy import: only when chorales are asked for

    seen: set[str] = set()
    produced = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in corpus.getComposer("bach"):
            if produced >= max_pieces:
                break
            piece = Path(str(path)).stem
            if piece in seen or not piece.startswith("bwv"):
                continue
            seen.add(piece)
            try:
                score = corpus.parse(str(path))
                midi_path = Path(tmp) / f"{piece}.mid"
                score.write("midi", fp=str(midi_path))
                pm = pretty_midi.PrettyMIDI(str(midi_path))
            except Exception as e:  # music21 raises many types (ExpanderException, ...)
                log.warning("skipping chorale %s: %s: %s", piece, type(e).__name__, e)
                continue
            lines = lines_from_midi(pm, piece)
            if len(lines) < 2:
                continue
            order = [0, len(lines) - 1, *range(1, len(lines) - 1)]
            yield piece, [lines[k] for k in order[:parts]]
            produced += 1


def line_features(line: Line, n_frames: int, spec: FeatureSpec) -> dict[str, torch.Tensor]:
    """Per-frame note features: f0 (Hz), voiced, onset and velocity, each [n_frames]."""
    f0 = torch.zeros(n_frames)
    voiced = torch.zeros(n_frames)
    onset = torch.zeros(n_frames)
    velocity = torch.zeros(n_frames)
    fr = spec.frame_rate
    for n in line.notes:
        a, b = round(n.start * fr), round(n.end * fr)
        a, b = max(a, 0), min(b, n_frames)
        if b <= a:
            continue
        f0[a:b] = float(midi_to_hz(torch.tensor(float(n.pitch))))
        voiced[a:b] = 1.0
        velocity[a:b] = n.velocity / 127.0
        onset[a : min(a + 3, b)] = 1.0
    return {"f0": f0, "voiced": voiced, "onset": onset, "velocity": velocity}


def sine_render(f0: torch.Tensor, voiced: torch.Tensor, spec: FeatureSpec,
                amplitude: float = 0.3) -> torch.Tensor:
    """A plain sine wave following a frame f0 track: the floor reference of the quality
    report (right pitch, no timbre). [T] -> [T * hop]."""
    n = f0.shape[-1] * spec.hop
    f = torch.repeat_interleave(f0.double(), spec.hop)[:n]
    amp = torch.repeat_interleave(voiced.double(), spec.hop)[:n]
    # Short ramps so note edges do not click.
    k = np.hanning(2 * spec.hop + 1)
    kern = torch.from_numpy(k / k.sum()).view(1, 1, -1)
    amp = torch.nn.functional.conv1d(amp.view(1, 1, -1), kern, padding=spec.hop).view(-1)[:n]
    phase = 2 * np.pi * torch.cumsum(f / spec.sample_rate, 0)
    return (amplitude * amp * torch.sin(phase)).float()
