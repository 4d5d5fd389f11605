"""Lyrics to melody: a monophonic melody with one note per syllable (melisma allowed).

The generator writes voice 0 only, under :class:`LyricsConstraint`, which counts
notes and closes the piece exactly when every syllable has its note(s). Syllables
follow the chorale corpus' convention: hyphens split a word (``Him-mel`` -> ``Him-``,
``mel``), and ``_`` holds the previous syllable over one more note (a melisma). A
syllable ending a phrase (``, . ; : ! ?``) gets at least a half note. The syllables
are attached to the notes as MIDI lyrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchsuite.core import SuiteError

from .events import Note, Piece
from .generation import prompt_tokens
from .grammar import Grammar
from .sampling import SamplingOptions, generate
from .tokenizer import MusicTokenizer

__all__ = ["LyricsConstraint", "lyrics_melody", "note_syllables", "syllables"]

_PHRASE_END = tuple(",.;:!?")
MAX_SYLLABLES = 400


def syllables(text: str) -> list[str]:
    """``"Ach Gott, vom Him-mel"`` -> ``["Ach", "Gott,", "vom", "Him-", "mel"]`` (``_``
    entries kept: they mark melisma notes)."""
    out: list[str] = []
    for word in text.split():
        parts = word.split("-")
        out += [p + "-" for p in parts[:-1] if p] + ([parts[-1]] if parts[-1] else [])
    return out


def note_syllables(text: str) -> list[str | None]:
    """One entry per melody note: the syllable starting on it, or ``None`` (melisma)."""
    out: list[str | None] = []
    for s in syllables(text):
        if s == "_":
            if not out:
                raise SuiteError("lyrics cannot start with '_' (it extends the syllable "
                                 "before it over another note).")
            out.append(None)
        else:
            out.append(s)
    if not out:
        raise SuiteError("--lyrics is empty; give some words, e.g. --lyrics 'Ach Gott, "
                         "vom Him-mel sieh da-rein'.")
    if len(out) > MAX_SYLLABLES:
        raise SuiteError(f"--lyrics has {len(out)} notes' worth of syllables; the limit is "
                         f"{MAX_SYLLABLES}. Set a shorter text.")
    return out


@dataclass
class LyricsConstraint:
    """Voice-0 monophony with exactly ``len(notes)`` notes, then End.

    Attributes:
        notes: Per note, its syllable or ``None`` (see :func:`note_syllables`).
        max_dur: Longest note (grid steps).
        phrase_dur: Shortest note on a phrase-ending syllable.
    """

    notes: list[str | None]
    max_dur: int = 16
    phrase_dur: int = 8
    count: int = 0
    bar_start: int = -1
    bar_len: int = 0
    busy_until: int = 0
    _last_start: int = field(default=0, repr=False)

    def restrict(self, g: Grammar, allowed: torch.Tensor, tok: MusicTokenizer) -> torch.Tensor:
        """Narrow the grammar's mask (never to nothing)."""
        m = allowed.clone()
        done = self.count >= len(self.notes)
        pr, dr = tok.ranges["Position"], tok.ranges["Dur"]
        if g.state in ("bar_open", "meter_in_bar", "dur"):
            if done:
                m[:] = False
                m[tok.end_id] = True
                return m
            for kind in ("Track", "Vel", "Pitch"):  # one note per position
                m[tok.ranges[kind].start:tok.ranges[kind].stop] = False
            m[tok.end_id] = False
            first_free = max(0, self.busy_until - self.bar_start)  # monophony
            m[pr.start:pr.start + min(first_free, pr.stop - pr.start)] = False
            if g.state in ("bar_open", "meter_in_bar"):
                m[tok.ranges["Meter"].start:tok.ranges["Meter"].stop] = False
            if g.state == "bar_open" and bool(m[pr.start:pr.stop].any()):
                m[tok.bar_id] = False  # no empty bars while syllables wait
            if not bool(m.any()):
                m[tok.bar_id] = True
        elif g.state in ("pos", "pos_tempo", "track", "vel"):
            m[tok.ranges["Track"].start:tok.ranges["Track"].stop] = False
            m[tok.ranges["Tempo"].start:tok.ranges["Tempo"].stop] = False
            if g.track != 0:  # the melody is voice 0
                m[:] = False
                m[tok.tok("Track", 0)] = True
        elif g.state == "pitch":
            syl = self.notes[self.count]
            lo = self.phrase_dur if syl is not None and syl.endswith(_PHRASE_END) else 1
            keep = torch.zeros_like(m)
            keep[dr.start + lo - 1:dr.start + self.max_dur] = True
            m &= keep
        return m

    def after(self, g: Grammar, token: int, tok: MusicTokenizer) -> None:
        kind = tok.kind(token)
        if kind == "Bar":
            self.bar_start = 0 if self.bar_start < 0 else self.bar_start + self.bar_len
            self.bar_len = g.meter
        elif kind == "Meter" and self.bar_start >= 0:
            self.bar_len = g.meter
        elif kind == "Position":
            self._last_start = self.bar_start + g.pos
        elif kind == "Dur":
            self.busy_until = self._last_start + tok.value(token)
            self.count += 1


def lyrics_melody(model: nn.Module, tok: MusicTokenizer, text: str, *, style: str = "bach",
                  seed: int = 0, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 0.95) -> Piece:
    """A melody for ``text`` with the syllables attached to its notes."""
    per_note = note_syllables(text)
    constraint = LyricsConstraint(per_note)
    ids = prompt_tokens(tok, style)
    constraint.after(Grammar(tok), tok.bar_id, tok)  # the prompt opens bar 1
    constraint.bar_len = 16
    opts = SamplingOptions(temperature, top_k, top_p, max_tokens=model.spec.max_len)
    out = generate(model, tok, ids, options=opts, constraint=constraint,
                   generator=torch.Generator().manual_seed(seed))
    piece = tok.decode(out, name=f"lyrics-{style}-{seed}")
    melody = [n for n in piece.notes if n.track == 0]
    if len(melody) != len(per_note):
        raise SuiteError(f"the melody has {len(melody)} notes for {len(per_note)} syllables "
                         "(the sequence hit model.max_len); use a shorter text.")
    piece.notes = [Note(n.start, 0, n.pitch, n.dur, n.velocity, syl)
                   for n, syl in zip(melody, per_note, strict=True)]
    return piece
