"""Plugin verbs: ``suite music generate`` and ``suite music stylize``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from torchsuite.core import DataError, SuiteError
from torchsuite.core.cli_args import add_config_arguments, task_from_run

__all__ = [
    "configure_generate",
    "configure_lyrics",
    "configure_style_eval",
    "configure_stylize",
    "run_generate",
    "run_lyrics",
    "run_style_eval",
    "run_stylize",
]


def _load(args: argparse.Namespace) -> tuple[Any, Any, Path]:
    from .generation import load_generator

    task, run = task_from_run(args.from_run, args, expected_task="music")
    return task, load_generator(run, task), run


def read_midi_arg(path: str) -> Any:
    """A user's MIDI file as a :class:`Piece`, with a clear error when it is unreadable."""
    import pretty_midi

    from .events import piece_from_midi

    p = Path(path)
    if not p.is_file():
        raise SuiteError(f"MIDI file '{p}' does not exist; give the path of a .mid file.")
    try:
        piece = piece_from_midi(pretty_midi.PrettyMIDI(str(p)), name=str(p))
    except Exception as exc:
        raise DataError(f"'{p}' is not a readable MIDI file ({type(exc).__name__}: "
                        f"{str(exc)[:150]}); export it again as a standard MIDI file.") from None
    if not piece.notes:
        raise DataError(f"'{p}' holds no (non-drum) notes; nothing to work from.")
    return piece


def configure_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_run", default="latest",
                   help="run directory or name (default: the latest music run)")
    p.add_argument("--prompt", help="MIDI file whose opening bars the piece continues")
    p.add_argument("--prompt-bars", type=int, default=4, help="bars of --prompt to keep")
    p.add_argument("--bars", type=int, default=16, help="bars to generate (prompt included)")
    p.add_argument("--style", help="style token (default: the run's sample.style)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--temperature", type=float, help="softmax temperature")
    p.add_argument("--top-k", type=int, help="keep the k most likely tokens (0: off)")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass (1: off)")
    p.add_argument("--lyrics", help="text to set, one syllable per melody note "
                   "(hyphenate inside words: 'Ach Gott, vom Him-mel')")
    p.add_argument("--out", help="output folder (default: <run>/samples)")
    add_config_arguments(p)


def run_generate(args: argparse.Namespace) -> int:
    from .generation import sample_piece, write_piece_files
    from .tokenizer import STYLES

    task, model, run = _load(args)
    s = task.cfg.sample
    style = args.style or s.style
    if style not in STYLES:
        raise SuiteError(f"unknown --style '{style}'; choose from {', '.join(STYLES)}.")
    opts = {"temperature": s.temperature if args.temperature is None else args.temperature,
            "top_k": s.top_k if args.top_k is None else args.top_k,
            "top_p": s.top_p if args.top_p is None else args.top_p}
    out_dir = Path(args.out) if args.out else run / "samples"
    if args.lyrics:
        from .lyrics import lyrics_melody

        piece = lyrics_melody(model, task.tok, args.lyrics, style=style, seed=args.seed, **opts)
        stem = f"lyrics-{style}-seed{args.seed}"
    else:
        prompt = None
        if args.prompt:
            from .generation import prompt_tokens

            prompt = read_midi_arg(args.prompt)
            ids = prompt_tokens(task.tok, style, prompt=prompt, prompt_bars=args.prompt_bars)
            prompt = task.tok.decode(ids)
        piece = sample_piece(model, task.tok, style=style, bars=args.bars, seed=args.seed,
                             prompt=prompt, **opts)
        stem = f"{style}-seed{args.seed}"
    paths = write_piece_files(piece, out_dir, stem)
    print(f"generated {len(piece.notes)} notes, {piece.end / 4:.0f} quarter notes "
          f"(style {style}, seed {args.seed}) with {run}:")
    for path in paths:
        print(f"  {path}")
    return 0


def configure_stylize(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="MIDI file whose melody (its first track) is kept")
    p.add_argument("--to", dest="to_style", required=True, help="target style token")
    p.add_argument("--from", dest="from_run", default="latest",
                   help="music run directory or name (default: the latest)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--out", help="output folder (default: <run>/samples)")
    add_config_arguments(p)


def run_stylize(args: argparse.Namespace) -> int:
    from .generation import write_piece_files
    from .style_classifier import FILENAME, load_classifier
    from .style_transfer import melody_preservation, stylize
    from .tokenizer import STYLES

    if args.to_style not in STYLES:
        raise SuiteError(f"unknown --to style '{args.to_style}'; choose from "
                         f"{', '.join(STYLES)}.")
    task, model, run = _load(args)
    source = read_midi_arg(args.input)
    s = task.cfg.sample
    piece = stylize(model, task.tok, source, args.to_style, seed=args.seed,
                    temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
    out_dir = Path(args.out) if args.out else run / "samples"
    paths = write_piece_files(piece, out_dir, f"{Path(args.input).stem}-to-{args.to_style}")
    print(f"kept the melody ({melody_preservation(source, piece):.0%} of its notes) and "
          f"rewrote the other voices in style '{args.to_style}':")
    if (run / FILENAME).is_file():
        probs = load_classifier(run / FILENAME).predict_proba(task.tok, piece)
        best = max(probs, key=lambda k: probs[k])
        print(f"style classifier ({run / FILENAME}): {best} ({probs[best]:.0%}); "
              f"target '{args.to_style}' {probs.get(args.to_style, 0.0):.0%}")
    for path in paths:
        print(f"  {path}")
    return 0


def configure_style_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_run", default="latest",
                   help="music run directory or name (default: the latest)")
    p.add_argument("--pieces", type=int, default=6,
                   help="held-out pieces to transfer per target style")
    p.add_argument("--to", dest="to_styles", nargs="*",
                   help="target styles (default: every style of the train split)")
    p.add_argument("--steps", type=int, default=300, help="classifier training steps")
    p.add_argument("--retrain", action="store_true",
                   help="train the classifier again even if the run has one")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    add_config_arguments(p)


def run_style_eval(args: argparse.Namespace) -> int:
    from .style_transfer import evaluate_style_transfer

    task, model, run = _load(args)
    report = evaluate_style_transfer(task, model, run, pieces=args.pieces,
                                     styles=args.to_styles, steps=args.steps,
                                     retrain=args.retrain, seed=args.seed)
    print(f"style classifier accuracy on held-out real pieces: {report['classifier_accuracy']:.1%}"
          f" ({report['classifier_pieces']} pieces)")
    for style, row in report["targets"].items():
        print(f"to {style:>10}: {row['pieces']} pieces, labelled {style} "
              f"{row['target_rate']:.0%}, melody kept {row['melody_kept']:.0%}")
    print(f"wrote {report['path']} and the transferred MIDI files in {run / 'samples'}")
    return 0


def configure_lyrics(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_run", default="latest",
                   help="music run directory or name (default: the latest)")
    p.add_argument("--retrain", action="store_true",
                   help="train the lyrics model again even if the run has one")
    p.add_argument("--steps", type=int, default=300, help="lyrics model training steps")
    p.add_argument("--prompt", default="", help="words the lyrics start with")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--melody", action="store_true",
                   help="also set the sampled lyrics to a melody (MIDI with lyrics)")
    add_config_arguments(p)


def run_lyrics(args: argparse.Namespace) -> int:
    from .lyrics_lm import LyricsLM, train_lyrics_lm

    task, model, run = _load(args)
    folder = run / "lyrics_lm"
    if args.retrain or not (folder / "lm.pt").is_file():
        train = task.pieces("train")
        texts = [str(train[i]["lyrics"]) for i in range(len(train))]
        print(f"training the lyrics model on {sum(1 for t in texts if t)} texts "
              f"({args.steps} steps) into {folder}", flush=True)
        lm = train_lyrics_lm(texts, folder, steps=args.steps, seed=args.seed)
    else:
        lm = LyricsLM.load(folder)
    if "dev" in task.datasets():
        dev = task.pieces("dev")
        held = [str(dev[i]["lyrics"]) for i in range(len(dev)) if dev[i]["lyrics"]]
        if held:
            nll = lm.nll(held)
            print(f"held-out (dev) lyrics: {nll:.3f} nats/subword, perplexity {math.exp(nll):.1f}")
    text = lm.sample(args.prompt, seed=args.seed)
    print(f"lyrics: {text}")
    if args.melody:
        from .generation import write_piece_files
        from .lyrics import lyrics_melody

        s = task.cfg.sample
        piece = lyrics_melody(model, task.tok, text, style=s.style, seed=args.seed,
                              temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
        for path in write_piece_files(piece, run / "samples", f"lyrics-lm-seed{args.seed}"):
            print(f"  {path}")
    return 0
