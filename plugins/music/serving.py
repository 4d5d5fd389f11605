"""``suite serve music``: JSON in, a generated piece out.

A request names what to generate; the reply carries the piece as MIDI (base64) and as a
note list, so a client can play it or draw it without a MIDI library::

    POST /v1/tasks/music/predict
    {"style": "bach", "bars": 8, "seed": 1, "temperature": 0.9, "top_p": 0.95,
     "prompt_midi": "<base64 MIDI to continue, optional>"}
    -> {"style": "bach", "bars": 8, "notes": [[start, track, pitch, dur, velocity], ...],
        "seconds_per_step": 0.15, "midi_base64": "TVRoZA..."}

Positions and durations are grid steps (sixteenth notes). Every reply is well-formed
music: sampling is grammar-constrained (see :mod:`.grammar`).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

import pretty_midi
from torch import nn

from .events import GRID, Piece, piece_from_midi, piece_to_midi
from .generation import sample_piece
from .tokenizer import MusicTokenizer

__all__ = ["MAX_BARS", "MusicRequest", "decode_request", "encode_piece", "generate_batch"]

#: Longest piece one request may ask for (bounds the work a single request can cause).
MAX_BARS = 64
_KEYS = {"style", "bars", "seed", "temperature", "top_k", "top_p", "prompt_midi"}


@dataclass(frozen=True)
class MusicRequest:
    """One decoded request."""

    style: str
    bars: int = 8
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.95
    prompt: Piece | None = None


def _number(payload: dict[str, Any], key: str, default: float, kind: type,
            lo: float, hi: float) -> Any:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not float(value).is_integer()):
        raise ValueError(f"field '{key}' must be {'an integer' if kind is int else 'a number'}, "
                         f"got {value!r}.")
    if not lo <= value <= hi:
        raise ValueError(f"field '{key}' must be in {lo}..{hi}, got {value}.")
    return kind(value)


def decode_request(tok: MusicTokenizer, payload: Any) -> MusicRequest:
    """Validate a JSON body; ``ValueError`` names the field and what it must be."""
    if not isinstance(payload, dict):
        raise ValueError('expected a JSON object such as {"style": "bach", "bars": 8}.')
    unknown = sorted(set(payload) - _KEYS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(sorted(_KEYS))}.")
    styles = [s for s in tok.spec.styles if s != "unknown"]
    style = payload.get("style", "bach")
    if style not in styles:
        raise ValueError(f"field 'style' must be one of {', '.join(styles)}, got {style!r}.")
    prompt = None
    if payload.get("prompt_midi") is not None:
        try:
            raw = base64.b64decode(str(payload["prompt_midi"]), validate=True)
            prompt = piece_from_midi(pretty_midi.PrettyMIDI(io.BytesIO(raw)), style=style,
                                     name="request")
        except (binascii.Error, ValueError, OSError, EOFError, IndexError, KeyError) as exc:
            raise ValueError(f"field 'prompt_midi' is not a base64-encoded MIDI file ({exc})."
                             ) from None
    return MusicRequest(
        style=style,
        bars=_number(payload, "bars", 8, int, 1, MAX_BARS),
        seed=_number(payload, "seed", 0, int, 0, 2**31 - 1),
        temperature=_number(payload, "temperature", 1.0, float, 0.05, 5.0),
        top_k=_number(payload, "top_k", 0, int, 0, 10_000),
        top_p=_number(payload, "top_p", 0.95, float, 0.01, 1.0),
        prompt=prompt,
    )


def generate_batch(model: nn.Module, tok: MusicTokenizer,
                   requests: list[MusicRequest]) -> list[Piece | Exception]:
    """One piece per request, in order; a failure fails only its own request."""
    out: list[Piece | Exception] = []
    for r in requests:
        try:
            out.append(sample_piece(model, tok, style=r.style, bars=r.bars, seed=r.seed,
                                    prompt=r.prompt, temperature=r.temperature, top_k=r.top_k,
                                    top_p=r.top_p))
        except Exception as exc:  # reported to that client only
            out.append(exc)
    return out


def encode_piece(piece: Piece) -> dict[str, Any]:
    """A piece as JSON: notes on the grid plus the MIDI file, base64-encoded."""
    buf = io.BytesIO()
    piece_to_midi(piece).write(buf)
    steps_per_bar = piece.meters[0][1] if piece.meters else 4 * GRID
    bpm = piece.tempos[0][1] if piece.tempos else 100.0
    return {
        "style": piece.style,
        "bars": max(n.start for n in piece.notes) // steps_per_bar + 1 if piece.notes else 0,
        "notes": [[n.start, n.track, n.pitch, n.dur, n.velocity] for n in piece.notes],
        "seconds_per_step": 60.0 / bpm / GRID,
        "midi_base64": base64.b64encode(buf.getvalue()).decode("ascii"),
    }
