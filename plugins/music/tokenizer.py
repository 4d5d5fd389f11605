"""REMI-like event tokenizer: a :class:`Piece` <-> a list of token ids, exact at the grid.

Sequence layout (the grammar :mod:`.grammar` enforces while sampling)::

    Style_s Meter_m Tempo_t                      header
    Bar [Meter_m] (Position_p [Tempo_t] Note*)*  one block per bar
    End
    Note = [Track_v] [Vel_b] Pitch_x Dur_d       track / velocity carry over when omitted

The encoder writes Track and Vel for the first note of every bar (and whenever they
change), so any Bar is a valid place to start a window given a fresh header.

``Meter_m`` is the bar length in grid steps (16 = 4/4 at ``GRID = 4``); a bar whose
length differs from the running one gets its own ``Meter`` token, so every bar layout
(pickups, changes) round-trips. Tempo is bucketed geometrically; velocity in
buckets of 16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .events import DEFAULT_BPM, Note, Piece

__all__ = ["STYLES", "MusicTokenizer", "TokenizerSpec"]

#: Style tokens (collections of music21's bundled corpus, plus ``unknown`` for user MIDI).
STYLES: tuple[str, ...] = (
    "bach", "palestrina", "folk", "irish", "trecento", "monteverdi", "beethoven", "mozart",
    "unknown",
)


@dataclass(frozen=True)
class TokenizerSpec:
    """Vocabulary sizes. Changing any of these changes token ids (saved with each run)."""

    max_bar_steps: int = 32
    min_pitch: int = 21
    max_pitch: int = 108
    max_dur: int = 64
    tracks: int = 16
    vel_buckets: int = 8
    tempo_buckets: int = 16
    min_bpm: float = 40.0
    max_bpm: float = 240.0
    styles: tuple[str, ...] = STYLES


class MusicTokenizer:
    """Maps pieces to ids and back; ``self.ranges[kind]`` gives each kind's id range."""

    KINDS = ("Style", "Meter", "Tempo", "Bar", "Position", "Track", "Vel", "Pitch", "Dur", "End")

    def __init__(self, spec: TokenizerSpec | None = None) -> None:
        self.spec = spec = spec or TokenizerSpec()
        sizes = {
            "Pad": 1,
            "Style": len(spec.styles),
            "Meter": spec.max_bar_steps,  # Meter_m for m in 1..max_bar_steps
            "Tempo": spec.tempo_buckets,
            "Bar": 1,
            "Position": spec.max_bar_steps,
            "Track": spec.tracks,
            "Vel": spec.vel_buckets,
            "Pitch": spec.max_pitch - spec.min_pitch + 1,
            "Dur": spec.max_dur,  # Dur_d for d in 1..max_dur
            "End": 1,
        }
        self.ranges: dict[str, range] = {}
        start = 0
        for kind, size in sizes.items():
            self.ranges[kind] = range(start, start + size)
            start += size
        self.vocab_size = start
        self.pad_id = self.ranges["Pad"][0]
        self.bar_id = self.ranges["Bar"][0]
        self.end_id = self.ranges["End"][0]
        self._kind_of = [k for k, r in self.ranges.items() for _ in r]

    # ------------------------------------------------------------------ id helpers
    def tok(self, kind: str, value: int = 0) -> int:
        """Id of ``kind`` with ``value`` (Meter/Dur values start at 1, Pitch at min_pitch)."""
        r = self.ranges[kind]
        offset = {"Meter": 1, "Dur": 1, "Pitch": self.spec.min_pitch}.get(kind, 0)
        idx = value - offset
        if not 0 <= idx < len(r):
            raise ValueError(f"{kind} value {value} outside the vocabulary")
        return r[idx]

    def kind(self, token: int) -> str:
        return self._kind_of[token]

    def value(self, token: int) -> int:
        kind = self._kind_of[token]
        offset = {"Meter": 1, "Dur": 1, "Pitch": self.spec.min_pitch}.get(kind, 0)
        return token - self.ranges[kind][0] + offset

    def style_id(self, style: str) -> int:
        styles = self.spec.styles
        return self.ranges["Style"][styles.index(style if style in styles else "unknown")]

    def tempo_bucket(self, bpm: float) -> int:
        s = self.spec
        frac = math.log(max(s.min_bpm, min(s.max_bpm, bpm)) / s.min_bpm) / math.log(
            s.max_bpm / s.min_bpm)
        return round(frac * (s.tempo_buckets - 1))

    def bucket_bpm(self, bucket: int) -> float:
        s = self.spec
        return s.min_bpm * (s.max_bpm / s.min_bpm) ** (bucket / (s.tempo_buckets - 1))

    def vel_bucket(self, velocity: int) -> int:
        return min(self.spec.vel_buckets - 1, velocity * self.spec.vel_buckets // 128)

    def bucket_velocity(self, bucket: int) -> int:
        return max(1, bucket * 128 // self.spec.vel_buckets)

    def describe(self, tokens: list[int]) -> list[str]:
        """Human-readable tokens, e.g. ``['Style_bach', 'Meter_16', 'Bar', 'Pitch_60']``."""
        out = []
        for t in tokens:
            k = self.kind(t)
            if k in ("Bar", "End", "Pad"):
                out.append(k)
            elif k == "Style":
                out.append(f"Style_{self.spec.styles[self.value(t)]}")
            else:
                out.append(f"{k}_{self.value(t)}")
        return out

    # ------------------------------------------------------------------ encode
    def _bars(self, piece: Piece, end: int) -> list[tuple[int, int]]:
        """``(start, length)`` of every bar up to ``end``, following the meter map."""
        changes = sorted(piece.meters) or [(0, 16)]
        bars: list[tuple[int, int]] = []
        pos, i = 0, 0
        length = min(changes[0][1], self.spec.max_bar_steps)
        while pos < max(end, 1):
            while i + 1 < len(changes) and changes[i + 1][0] <= pos:
                i += 1
                length = min(changes[i][1], self.spec.max_bar_steps)
            nxt = changes[i + 1][0] if i + 1 < len(changes) else None
            bar_len = length if nxt is None or nxt >= pos + length else nxt - pos
            bars.append((pos, bar_len))
            pos += bar_len
        return bars

    def encode(self, piece: Piece, *, style: str | None = None) -> list[int]:
        """Token ids of ``piece`` (notes outside the pitch range are octave-folded,
        durations clipped to ``max_dur``, tracks past ``tracks`` dropped)."""
        s = self.spec
        notes = sorted(
            Note(n.start, n.track, _fold(n.pitch, s.min_pitch, s.max_pitch),
                 max(1, min(n.dur, s.max_dur)), n.velocity)
            for n in piece.notes if n.track < s.tracks and n.start >= 0
        )
        bars = self._bars(piece, piece.end)
        tempos = sorted(piece.tempos) or [(0, DEFAULT_BPM)]
        tempo_b = self.tempo_bucket(tempos[0][1])
        pending_tempos = [(g, self.tempo_bucket(b)) for g, b in tempos[1:]]
        first_len = bars[0][1] if bars else 16
        out = [self.style_id(style or piece.style), self.tok("Meter", first_len),
               self.tok("Tempo", tempo_b)]
        meter, track, vel = first_len, 0, -1
        ni = 0
        for bar_start, bar_len in bars:
            out.append(self.bar_id)
            # every bar states its first note's voice and velocity, so a training window
            # may start at any Bar without losing that carried state
            track, vel = -1, -1
            if bar_len != meter:
                out.append(self.tok("Meter", bar_len))
                meter = bar_len
            # events of this bar: note onsets and tempo changes, by position
            positions: dict[int, list[Note]] = {}
            while ni < len(notes) and notes[ni].start < bar_start + bar_len:
                positions.setdefault(notes[ni].start - bar_start, []).append(notes[ni])
                ni += 1
            tempo_here: dict[int, int] = {}
            while pending_tempos and pending_tempos[0][0] < bar_start + bar_len:
                g, b = pending_tempos.pop(0)
                if b != tempo_b:
                    tempo_here[max(0, g - bar_start)] = b
                    tempo_b = b
            for pos in sorted(set(positions) | set(tempo_here)):
                out.append(self.tok("Position", pos))
                if pos in tempo_here:
                    out.append(self.tok("Tempo", tempo_here[pos]))
                for n in positions.get(pos, []):
                    if n.track != track:
                        out.append(self.tok("Track", n.track))
                        track = n.track
                    vb = self.vel_bucket(n.velocity)
                    if vb != vel:
                        out.append(self.tok("Vel", vb))
                        vel = vb
                    out += [self.tok("Pitch", n.pitch), self.tok("Dur", n.dur)]
        out.append(self.end_id)
        return out

    # ------------------------------------------------------------------ decode
    def decode(self, tokens: list[int], *, name: str = "generated") -> Piece:
        """Piece from ids. Tolerant: stops at End or Pad, skips tokens out of place."""
        style, meter, tempo_b = "unknown", 16, self.tempo_bucket(DEFAULT_BPM)
        meters: list[tuple[int, int]] = []
        tempos: list[tuple[int, float]] = []
        notes: list[Note] = []
        bar_start, bar_len, pos, started = 0, 0, 0, False
        track, vel_b, pitch = 0, self.vel_bucket(64), None
        for t in tokens:
            k, v = self.kind(t), self.value(t)
            if k in ("End", "Pad"):
                break
            if k == "Style":
                style = self.spec.styles[v]
            elif k == "Meter":
                meter = v
                if started:
                    bar_len = v
                    meters.append((bar_start, v))
            elif k == "Tempo":
                tempo_b = v
                tempos.append((bar_start + pos if started else 0, self.bucket_bpm(v)))
            elif k == "Bar":
                bar_start += bar_len
                if not started:
                    started = True
                    bar_start = 0
                bar_len, pos = meter, 0
                if not meters or meters[-1][1] != meter:
                    meters.append((bar_start, meter))
            elif k == "Position":
                pos = v
            elif k == "Track":
                track = v
            elif k == "Vel":
                vel_b = v
            elif k == "Pitch":
                pitch = v
            elif k == "Dur" and pitch is not None:
                notes.append(Note(bar_start + pos, track, pitch, v, self.bucket_velocity(vel_b)))
                pitch = None
        if not tempos or tempos[0][0] != 0:
            tempos.insert(0, (0, self.bucket_bpm(tempo_b) if not tempos else tempos[0][1]))
        return Piece(sorted(notes), _merge_meters(meters), _dedupe_tempos(tempos), style, name)


def _fold(pitch: int, lo: int, hi: int) -> int:
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def _merge_meters(meters: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for g, m in meters:
        if out and out[-1][0] == g:
            out[-1] = (g, m)
        elif not out or out[-1][1] != m:
            out.append((g, m))
    return out or [(0, 16)]


def _dedupe_tempos(tempos: list[tuple[int, float]]) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for g, b in tempos:
        if out and out[-1][0] == g:
            out[-1] = (g, b)
        elif not out or out[-1][1] != b:
            out.append((g, b))
    return out
