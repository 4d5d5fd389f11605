"""Turning a trained generator into files: MIDI, a piano-roll PNG, and WAV when the audio
part of the plugin offers a renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .events import Piece, write_midi
from .grammar import MelodyConstraint
from .model import MusicTransformer
from .sampling import SamplingOptions, generate
from .tokenizer import MusicTokenizer

__all__ = [
    "load_generator",
    "piano_roll_png",
    "prompt_tokens",
    "sample_piece",
    "write_generated",
    "write_piece_files",
]


def load_generator(run_dir: Path, task: Any) -> MusicTransformer:
    """The model of a ``music`` run, from its best (else latest) checkpoint."""
    from torchsuite.core.train.checkpoint import best_checkpoint, load_checkpoint, load_model_state

    path = best_checkpoint(run_dir)
    model = task.build_model()
    load_model_state(model, load_checkpoint(path), task=task.name, path=path)
    model.eval()
    return model


def prompt_tokens(tok: MusicTokenizer, style: str, *, prompt: Piece | None = None,
                  prompt_bars: int | None = None) -> list[int]:
    """Header (and optionally the first bars of ``prompt``) to continue from."""
    if prompt is None:
        return [tok.style_id(style), tok.tok("Meter", 16), tok.tok("Tempo", tok.tempo_bucket(100)),
                tok.bar_id]
    ids = tok.encode(prompt, style=style)[:-1]  # without End
    bars = [i for i, t in enumerate(ids) if t == tok.bar_id]
    if prompt_bars is not None and len(bars) > prompt_bars:
        ids = ids[:bars[prompt_bars]]
    return ids


def sample_piece(model: nn.Module, tok: MusicTokenizer, *, style: str = "bach", bars: int = 16,
                 seed: int = 0, prompt: Piece | None = None, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 0.95,
                 constraint: MelodyConstraint | None = None) -> Piece:
    """Generate one piece (``bars`` bars in total, prompt bars included)."""
    ids = prompt_tokens(tok, style, prompt=prompt)
    have = sum(1 for t in ids if t == tok.bar_id)
    max_bars = max(bars, have)
    gen = torch.Generator().manual_seed(seed)
    opts = SamplingOptions(temperature, top_k, top_p, max_tokens=model.spec.max_len)
    out = generate(model, tok, ids, options=opts, max_bars=max_bars, constraint=constraint,
                   generator=gen)
    return tok.decode(out, name=f"generated-{style}-{seed}")


def piano_roll_png(piece: Piece, path: Path, title: str = "") -> Path:
    """Draw the notes (time vs pitch, one colour per voice) with matplotlib (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, min(24.0, piece.end / 16)), 4), dpi=100)
    cmap = plt.get_cmap("tab10")
    for n in piece.notes:
        ax.add_patch(plt.Rectangle((n.start / 4, n.pitch - 0.4), n.dur / 4, 0.8,
                                   color=cmap(n.track % 10), alpha=0.8))
    if piece.notes:
        ax.set_xlim(0, piece.end / 4)
        ax.set_ylim(min(n.pitch for n in piece.notes) - 2, max(n.pitch for n in piece.notes) + 2)
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or piece.name)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _audio_renderer() -> Any:
    """``render_midi(midi_path, wav_path)`` from the audio part, if it exposes one."""
    try:
        from torchsuite.plugins.music.audio import render  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(render, "render_midi", None)


def write_piece_files(piece: Piece, out_dir: Path, stem: str, *, wav: bool = True) -> list[Path]:
    """Write ``<stem>.mid``, ``<stem>.png`` (+ ``<stem>.wav``); never overwrites a file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base, n = stem, 1
    while any((out_dir / f"{stem}{ext}").exists() for ext in (".mid", ".png", ".wav")):
        n += 1
        stem = f"{base}-{n}"
    paths = [write_midi(piece, out_dir / f"{stem}.mid"),
             piano_roll_png(piece, out_dir / f"{stem}.png", title=f"{stem} ({piece.style})")]
    render = _audio_renderer() if wav else None
    if render is not None:
        paths.append(render(paths[0], out_dir / f"{stem}.wav"))
    return paths


def write_generated(model: nn.Module, tok: MusicTokenizer, out_dir: Path, *, stem: str,
                    **kwargs: Any) -> list[Path]:
    """Sample a piece and write its files (see :func:`sample_piece` for the options)."""
    piece = sample_piece(model, tok, **kwargs)
    return write_piece_files(piece, out_dir, stem)
