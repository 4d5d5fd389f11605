"""Symbolic music on a time grid: :class:`Note`, :class:`Piece` and pretty_midi conversion.

All times are integer grid steps of ``1 / GRID`` quarter notes (``GRID = 4``: sixteenth
notes). Readers quantise once, so everything downstream (tokenizer, statistics,
generation) works on exact integers and the tokenizer round trip is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pretty_midi

__all__ = [
    "DEFAULT_BPM",
    "GRID",
    "Note",
    "Piece",
    "piece_from_midi",
    "piece_to_midi",
    "write_midi",
]

#: Grid steps per quarter note.
GRID = 4
#: Tempo assumed when a source has none (music21 chorales carry no tempo mark).
DEFAULT_BPM = 100.0


@dataclass(frozen=True, order=True)
class Note:
    """One note on the grid. Ordering is (start, track, pitch, ...) = the token order."""

    start: int
    track: int
    pitch: int
    dur: int
    velocity: int = 64
    lyric: str | None = field(default=None, compare=False)


@dataclass
class Piece:
    """A piece: notes plus meter and tempo maps, all on the grid.

    Attributes:
        notes: Sorted notes.
        meters: ``(grid_step, steps_per_bar)`` changes, the first at step 0.
        tempos: ``(grid_step, bpm)`` changes, the first at step 0.
        style: Style/collection name (a key of the tokenizer's style list).
        name: Where it came from (corpus path or file path), used as the split group key.
    """

    notes: list[Note]
    meters: list[tuple[int, int]] = field(default_factory=lambda: [(0, 4 * GRID)])
    tempos: list[tuple[int, float]] = field(default_factory=lambda: [(0, DEFAULT_BPM)])
    style: str = "unknown"
    name: str = ""

    @property
    def end(self) -> int:
        """Grid step after the last note ends (0 for an empty piece)."""
        return max((n.start + n.dur for n in self.notes), default=0)

    def melody(self, track: int = 0) -> list[Note]:
        """Notes of one track (voice 0 is the top voice in the chorales)."""
        return [n for n in self.notes if n.track == track]


def _meter_fraction(steps: int) -> tuple[int, int]:
    """Time signature for a bar of ``steps`` grid steps (16 -> 4/4, 12 -> 3/4, 6 -> 3/8)."""
    quarters, rem = divmod(steps, GRID)
    if rem == 0:
        return quarters, 4
    if steps % 2 == 0:
        return steps // 2, 8
    return steps, 16


def piece_from_midi(pm: pretty_midi.PrettyMIDI, *, style: str = "unknown", name: str = "",
                    max_tracks: int = 16) -> Piece:
    """Quantise a PrettyMIDI to the grid (drum tracks are left out; tracks past
    ``max_tracks`` are dropped). Lyrics are attached to the note starting where they are."""
    res = pm.resolution

    def grid(t: float) -> int:
        return round(pm.time_to_tick(t) * GRID / res)

    lyric_at = {grid(ly.time): ly.text for ly in pm.lyrics}
    notes: list[Note] = []
    melodic = [inst for inst in pm.instruments if not inst.is_drum][:max_tracks]
    for track, inst in enumerate(melodic):
        for n in inst.notes:
            start = grid(n.start)
            dur = max(1, grid(n.end) - start)
            lyric = lyric_at.pop(start, None) if track == 0 else None
            notes.append(Note(start, track, n.pitch, dur, n.velocity, lyric))
    meters = [(grid(ts.time), ts.numerator * 4 * GRID // ts.denominator)
              for ts in pm.time_signature_changes
              if ts.numerator * 4 * GRID // ts.denominator > 0]
    if not meters or meters[0][0] != 0:
        meters.insert(0, (0, meters[0][1] if meters else 4 * GRID))
    times, bpms = pm.get_tempo_changes()
    tempos = [(grid(t), float(b)) for t, b in zip(times, bpms)] or [(0, DEFAULT_BPM)]
    if tempos[0][0] != 0:
        tempos.insert(0, (0, tempos[0][1]))
    return Piece(sorted(notes), _dedupe(meters), _dedupe(tempos), style, name)


def _dedupe(changes: list[tuple[int, float]]) -> list:
    """Keep the last change per grid step, in time order."""
    by_step = dict(sorted(changes, key=lambda c: c[0]))
    return sorted(by_step.items())


def piece_to_midi(piece: Piece, program: int = 0) -> pretty_midi.PrettyMIDI:
    """Render a piece as PrettyMIDI with its tempo map, time signatures and lyrics."""
    import pretty_midi

    res = 480
    ticks_per_step = res // GRID
    pm = pretty_midi.PrettyMIDI(resolution=res, initial_tempo=piece.tempos[0][1])
    # pretty_midi has no public API for tempo changes; _tick_scales is how its own
    # reader stores them (seconds per tick from a given tick on).
    pm._tick_scales = [(step * ticks_per_step, 60.0 / (bpm * res)) for step, bpm in piece.tempos]
    max_tick = (piece.end + 1) * ticks_per_step
    pm._update_tick_to_time(max_tick + 1)
    for step, steps in piece.meters:
        num, den = _meter_fraction(steps)
        pm.time_signature_changes.append(
            pretty_midi.TimeSignature(num, den, pm.tick_to_time(step * ticks_per_step)))
    tracks = sorted({n.track for n in piece.notes})
    insts = {t: pretty_midi.Instrument(program=program, name=f"voice {t}") for t in tracks}
    for n in piece.notes:
        start = pm.tick_to_time(n.start * ticks_per_step)
        end = pm.tick_to_time((n.start + n.dur) * ticks_per_step)
        insts[n.track].notes.append(pretty_midi.Note(n.velocity, n.pitch, start, end))
        if n.lyric:
            pm.lyrics.append(pretty_midi.Lyric(n.lyric, start))
    pm.instruments.extend(insts[t] for t in tracks)
    return pm


def write_midi(piece: Piece, path: Path) -> Path:
    """Write ``piece`` to ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    piece_to_midi(piece).write(str(path))
    return path
