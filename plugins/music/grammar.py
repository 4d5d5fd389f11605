"""Constrained decoding: which token may come next so the event sequence stays well-formed.

:class:`Grammar` is a small state machine over the layout documented in
:mod:`.tokenizer`. ``allowed()`` returns a boolean mask over the vocabulary; the
sampler sets every other logit to ``-inf``, so a sampled sequence always decodes
(positions increase inside a bar and stay inside it, every Pitch gets a Dur, the
header comes first, End closes it). :class:`MelodyConstraint` narrows the mask
further to force a given melody (style transfer, lyrics-to-melody).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .events import Note
from .tokenizer import MusicTokenizer

__all__ = ["Grammar", "MelodyConstraint", "is_well_formed"]


class Grammar:
    """Tracks where a token sequence is in the grammar.

    Args:
        tok: The tokenizer (for id ranges).
        max_bars: If set, no Bar may follow once this many bars were opened (only End).
        max_notes: Notes allowed at one position (a chord); after that only a later
            Position, Bar or End. Bounds the length of every bar.
    """

    def __init__(self, tok: MusicTokenizer, max_bars: int | None = None,
                 max_notes: int = 16) -> None:
        self.tok = tok
        self.max_bars = max_bars
        self.max_notes = max_notes
        self.notes_here = 0  # notes at the current position
        self.state = "style"  # style, meter, tempo, bar, bar_open, pos, note, vel, pitch, dur, end
        self.meter = 16
        self.pos = -1
        self.bars = 0  # Bar tokens seen; the open bar is number ``bars - 1``
        self.track = 0  # carried voice of the next note
        self._masks: dict[str, torch.Tensor] = {}

    def _mask(self, *kinds: str) -> torch.Tensor:
        key = ",".join(kinds)
        if key not in self._masks:
            m = torch.zeros(self.tok.vocab_size, dtype=torch.bool)
            for k in kinds:
                r = self.tok.ranges[k]
                m[r.start:r.stop] = True
            self._masks[key] = m
        return self._masks[key]

    def _positions_after(self, base: torch.Tensor) -> torch.Tensor:
        """``base`` plus Position tokens strictly after the current one and inside the bar."""
        m = base.clone()
        r = self.tok.ranges["Position"]
        m[r.start + self.pos + 1:r.start + self.meter] = True
        return m

    @property
    def done(self) -> bool:
        return self.state == "end"

    def allowed(self) -> torch.Tensor:
        """Boolean mask ``[vocab]`` of the tokens that may come next."""
        s = self.state
        if s == "style":
            return self._mask("Style")
        if s == "meter":
            return self._mask("Meter")
        if s == "tempo":
            return self._mask("Tempo")
        if s == "bar":
            return self._mask("Bar")
        if s == "end":
            return self._mask()
        closing = ("End",) if self.max_bars is not None and self.bars >= self.max_bars else (
            "Bar", "End")
        if s == "bar_open":  # right after Bar: Meter, a first position, or close the bar
            return self._positions_after(self._mask("Meter", *closing))
        if s == "meter_in_bar":
            return self._positions_after(self._mask(*closing))
        if s == "pos":  # after Position: tempo or a note
            return self._mask("Tempo", "Track", "Vel", "Pitch")
        if s == "pos_tempo":
            return self._mask("Track", "Vel", "Pitch")
        if s == "track":
            return self._mask("Vel", "Pitch")
        if s == "vel":
            return self._mask("Pitch")
        if s == "pitch":
            return self._mask("Dur")
        if s == "dur":  # a note is complete: another note, a later position, or close
            if self.notes_here >= self.max_notes:
                return self._positions_after(self._mask(*closing))
            return self._positions_after(self._mask("Track", "Vel", "Pitch", *closing))
        raise AssertionError(s)

    def step(self, token: int) -> None:
        """Advance by ``token``; raises ``ValueError`` if it is not allowed here."""
        if not bool(self.allowed()[token]):
            raise ValueError(f"token {self.tok.describe([token])[0]} not allowed in state "
                             f"'{self.state}'")
        k, v = self.tok.kind(token), self.tok.value(token)
        s = self.state
        if k == "Style":
            self.state = "meter"
        elif k == "Meter":
            self.meter = v
            self.state = "tempo" if s == "meter" else "meter_in_bar"
        elif k == "Tempo":
            self.state = "bar" if s == "tempo" else "pos_tempo"
        elif k == "Bar":
            self.bars += 1
            self.state, self.pos = "bar_open", -1
        elif k == "Position":
            self.pos, self.state, self.notes_here = v, "pos", 0
        elif k == "Track":
            self.track = v
            self.state = "track"
        elif k == "Vel":
            self.state = "vel"
        elif k == "Pitch":
            self.state = "pitch"
        elif k == "Dur":
            self.state = "dur"
            self.notes_here += 1
        elif k == "End":
            self.state = "end"

    def feed(self, tokens: Sequence[int]) -> Grammar:
        for t in tokens:
            self.step(int(t))
        return self


def is_well_formed(tok: MusicTokenizer, tokens: Sequence[int]) -> bool:
    """True if ``tokens`` is a complete sentence of the grammar (ends with End)."""
    g = Grammar(tok)
    try:
        g.feed(tokens)
    except ValueError:
        return False
    return g.done


@dataclass
class MelodyConstraint:
    """Forces ``melody`` (notes of track ``track``) into the generated sequence.

    The model writes the other voices; at each onset of the melody the sampler must
    emit that Position and then exactly the melody's notes (Track, Pitch, Dur; Vel is
    left to the model), and the model may not write notes for ``track`` itself.
    Bars are limited to the melody's length.

    Attributes:
        melody: Notes of the voice to keep (their ``track`` is ignored).
        bar_starts: ``(start, length)`` of each bar, from the source piece.
        track: Voice id the melody is written as.
    """

    melody: list[Note]
    bar_starts: list[tuple[int, int]]
    track: int = 0
    _queue: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_onset: dict[int, list[Note]] = {}
        for n in sorted(self.melody):
            self.by_onset.setdefault(n.start, []).append(n)

    def _next_onset_in_bar(self, g: Grammar) -> int | None:
        bar_start, bar_len = self.bar_starts[g.bars - 1] if 0 < g.bars <= len(
            self.bar_starts) else (None, None)
        if bar_start is None:
            return None
        for p in range(g.pos + 1, bar_len):
            if bar_start + p in self.by_onset:
                return p
        return None

    def restrict(self, g: Grammar, allowed: torch.Tensor, tok: MusicTokenizer) -> torch.Tensor:
        """Narrow the grammar's mask so the melody is reproduced exactly."""
        if self._queue:  # inside a forced note: exactly one token
            m = torch.zeros_like(allowed)
            m[self._queue[0]] = True
            return m
        m = allowed.clone()
        m[tok.tok("Track", self.track)] = False
        if g.track == self.track and g.state in ("pos", "pos_tempo", "dur"):
            # a note without its own Track token would land in the melody voice
            for kind in ("Vel", "Pitch"):
                m[tok.ranges[kind].start:tok.ranges[kind].stop] = False
        if g.state in ("bar_open", "meter_in_bar", "dur"):
            nxt = self._next_onset_in_bar(g)
            pr = tok.ranges["Position"]
            if nxt is not None:  # may not skip the melody onset, nor close the bar before it
                m[pr.start + nxt + 1:pr.stop] = False
                m[tok.bar_id] = m[tok.end_id] = False
            if g.state in ("bar_open", "meter_in_bar"):
                m[tok.ranges["Meter"].start:tok.ranges["Meter"].stop] = False
                if g.state == "bar_open" and g.bars - 1 < len(self.bar_starts):
                    want = self.bar_starts[g.bars - 1][1]
                    if want != g.meter:
                        m[:] = False
                        m[tok.tok("Meter", want)] = True
                        return m
            if g.bars < len(self.bar_starts):
                m[tok.end_id] = False
            elif nxt is None:
                m[tok.bar_id] = False
        return m

    def after(self, g: Grammar, token: int, tok: MusicTokenizer) -> None:
        """Called after ``token`` was accepted: queue the melody notes at a melody onset."""
        if self._queue:
            self._queue.pop(0)
            return
        if tok.kind(token) == "Position":
            bar_start = self.bar_starts[g.bars - 1][0]
            for n in self.by_onset.get(bar_start + g.pos, []):
                self._queue += [tok.tok("Track", self.track),
                                tok.tok("Pitch", n.pitch), tok.tok("Dur", n.dur)]
