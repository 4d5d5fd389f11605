"""Style transfer by melody-conditioned regeneration: keep voice 0 of the input note for
note and let the generator write every other voice under the target style's token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn
from torchsuite.core import DataError

from .events import Note, Piece
from .generation import sample_piece
from .grammar import MelodyConstraint
from .tokenizer import MusicTokenizer, _fold

__all__ = ["evaluate_style_transfer", "melody_of", "melody_preservation", "stylize"]


def melody_of(piece: Piece, tok: MusicTokenizer) -> list[Note]:
    """Voice 0 (the top voice of a chorale), clipped to the vocabulary."""
    s = tok.spec
    return [Note(n.start, 0, _fold(n.pitch, s.min_pitch, s.max_pitch), min(n.dur, s.max_dur),
                 n.velocity, n.lyric) for n in piece.melody(0)]


def stylize(model: nn.Module, tok: MusicTokenizer, source: Piece, style: str, *, seed: int = 0,
            temperature: float = 1.0, top_k: int = 0, top_p: float = 0.95) -> Piece:
    """``source``'s melody with the other voices regenerated in ``style``."""
    melody = melody_of(source, tok)
    bars = tok._bars(source, source.end)
    header = Piece([], [(0, bars[0][1])], source.tempos[:1], style, source.name)
    constraint = MelodyConstraint(melody, bars)
    piece = sample_piece(model, tok, style=style, bars=len(bars), seed=seed, prompt=header,
                         temperature=temperature, top_k=top_k, top_p=top_p,
                         constraint=constraint)
    piece.name = f"{source.name} -> {style}"
    return piece


def melody_preservation(source: Piece, result: Piece) -> float:
    """Fraction of the source melody's (onset, pitch) pairs present in the result's voice 0."""
    src = {(n.start, n.pitch) for n in source.melody(0)}
    if not src:
        return 0.0
    out = {(n.start, n.pitch) for n in result.melody(0)}
    return len(src & out) / len(src)


def evaluate_style_transfer(task: Any, model: nn.Module, run: Path, *, pieces: int = 6,
                            styles: list[str] | None = None, steps: int = 300,
                            retrain: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train (or load) the run's style classifier, then transfer held-out pieces.

    Returns and writes ``<run>/style_eval.json``: the classifier's accuracy on held-out
    real pieces and, per target style, the fraction of transferred pieces it labels
    as that style and the fraction of melody notes kept.
    """
    from .dataset import piece_tokens
    from .events import write_midi
    from .style_classifier import (
        FILENAME,
        load_classifier,
        piece_accuracy,
        save_classifier,
        train_style_classifier,
    )

    tok: MusicTokenizer = task.tok
    sets = task.datasets()
    held_name = "test" if "test" in sets else "dev"
    if held_name not in sets:
        raise DataError("style evaluation needs a test or dev split of real pieces.")
    held = sets[held_name]
    path = run / FILENAME
    if path.is_file() and not retrain:
        clf = load_classifier(path)
        print(f"using the style classifier in {path} (--retrain to train it again)")
    else:
        clf = train_style_classifier(sets["train"], tok, steps=steps,
                                     seq_len=task.cfg.model.seq_len, seed=seed)
        save_classifier(clf, path)
    accuracy = piece_accuracy(clf, tok, held)
    real = [tok.decode(piece_tokens(held, i).tolist(), name=f"{held_name}-{i}")
            for i in range(len(held))]  # type: ignore[arg-type]
    train = sets["train"]
    trained = sorted({tok.spec.styles[int(piece_tokens(train, i)[0]) - tok.ranges["Style"].start]
                      for i in range(len(train))})  # type: ignore[arg-type]
    out_dir = run / "samples" / "style-transfer"
    s = task.cfg.sample
    targets: dict[str, dict[str, float]] = {}
    for style in styles or trained:
        sources = [p for p in real if p.style != style and p.melody(0)][:pieces]
        hits, kept = 0, 0.0
        for i, source in enumerate(sources):
            result = stylize(model, tok, source, style, seed=seed + i,
                             temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
            probs = clf.predict_proba(tok, result)
            hits += int(max(probs, key=lambda k: probs[k]) == style)
            kept += melody_preservation(source, result)
            write_midi(result, out_dir / f"{source.style}-{i}-to-{style}.mid")
            print(f"{source.style} piece {i} -> {style}: classifier says "
                  f"{max(probs, key=lambda k: probs[k])}", flush=True)
        n = max(len(sources), 1)
        targets[style] = {"pieces": len(sources), "target_rate": hits / n, "melody_kept": kept / n}
    report: dict[str, Any] = {"classifier_accuracy": accuracy, "classifier_pieces": len(held),
                              "held_out_split": held_name, "targets": targets}
    out = run / "style_eval.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    report["path"] = str(out)
    return report
