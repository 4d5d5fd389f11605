"""Plugin verbs: ``suite translation translate``, ``evaluate`` and ``average``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from torchsuite.core.cli_args import add_config_arguments, task_from_run

__all__ = [
    "configure_average",
    "configure_evaluate",
    "configure_translate",
    "load_run",
    "load_translator",
    "run_average",
    "run_evaluate",
    "run_translate",
    "translate_stream",
]


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_run", default="latest",
                   help="run directory, name under runs/translation/, or 'latest' (default)")
    p.add_argument("--checkpoint",
                   help="checkpoint file (default: the run's best; see `average`)")
    p.add_argument("--beam", type=int, help="beam size (default: the run's decode.beam)")


def load_run(args: argparse.Namespace) -> tuple[Any, Any, Path, Path]:
    """(task, model on the best device, run dir, checkpoint path)."""
    import torch
    from torchsuite.core.train import best_checkpoint, load_checkpoint, load_model_state

    overrides = list(getattr(args, "overrides", []))
    if getattr(args, "beam", None):
        overrides.append(f"decode.beam={int(args.beam)}")
    args.overrides = overrides
    task, run = task_from_run(args.from_run, args, expected_task="translation")
    path = Path(args.checkpoint) if args.checkpoint else best_checkpoint(run)
    model = task.build_model()
    load_model_state(model, load_checkpoint(path), task="translation", path=path)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return task, model, run, path


def load_translator(args: argparse.Namespace) -> Any:
    """The :class:`~.translate.Translator` of ``--from RUN`` (best checkpoint)."""
    from .translate import Translator

    task, model, _, _ = load_run(args)
    return Translator(model, task.vocab, task.decode_options(), task.cfg.decode.max_tokens)


def _chunks(stream: TextIO, size: int) -> Iterator[list[str]]:
    buf: list[str] = []
    for line in stream:
        buf.append(line.rstrip("\r\n"))
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def translate_stream(translator: Any, inp: TextIO, out: TextIO, *, chunk: int = 2000,
                     log: TextIO | None = None) -> int:
    """Translate ``inp`` line by line into ``out`` in chunks of ``chunk`` lines.

    Within a chunk sentences are decoded sorted by length; output keeps input order
    (an empty line gives an empty line). Returns the number of lines.
    """
    n, t0 = 0, time.monotonic()
    for lines in _chunks(inp, chunk):
        idx = [i for i, s in enumerate(lines) if s.strip()]
        hyps = translator.translate([lines[i] for i in idx])
        result = [""] * len(lines)
        for i, h in zip(idx, hyps, strict=True):
            result[i] = h
        out.write("".join(r + "\n" for r in result))
        out.flush()
        n += len(lines)
        if log is not None:
            rate = n / max(time.monotonic() - t0, 1e-9)
            print(f"translated {n} lines ({rate:.1f} lines/s)", file=log, flush=True)
    return n


def configure_translate(p: argparse.ArgumentParser) -> None:
    _add_run_args(p)
    p.add_argument("--chunk", type=int, default=2000,
                   help="lines read and sorted together (memory vs. padding)")
    p.add_argument("--input", help="read this file instead of stdin")
    p.add_argument("--output", help="write this file instead of stdout (never overwritten)")
    add_config_arguments(p)


def run_translate(args: argparse.Namespace) -> int:
    from torchsuite.core import SuiteError

    translator = load_translator(args)
    if args.output and Path(args.output).exists():
        raise SuiteError(f"'{args.output}' exists; choose another --output (nothing is "
                         "overwritten).")
    inp = open(args.input, encoding="utf-8") if args.input else sys.stdin  # noqa: SIM115
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        n = translate_stream(translator, inp, out, chunk=max(1, args.chunk), log=sys.stderr)
    finally:
        if args.input:
            inp.close()
        if args.output:
            out.close()
    print(f"translated {n} lines" + (f" into {args.output}" if args.output else ""),
          file=sys.stderr)
    return 0


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    _add_run_args(p)
    p.add_argument("--split", default="dev", help="split to score (default: dev)")
    add_config_arguments(p)


def run_evaluate(args: argparse.Namespace) -> int:
    task, model, run, path = load_run(args)
    samples = run / "samples"
    task.cfg.decode = replace(task.cfg.decode, hyp_dir=str(samples), eval_sentences=0)
    t0 = time.monotonic()
    scores = task.evaluate(model, args.split)
    seconds = time.monotonic() - t0
    for key, value in scores.items():
        print(f"{args.split}.{key} = {value:.2f}   ({task.last_signatures.get(key, '')})")
    report = {"checkpoint": str(path), "split": args.split, "beam": task.cfg.decode.beam,
              **scores, "signatures": task.last_signatures, "seconds": round(seconds, 1)}
    out = run / f"eval-{args.split}-bleu.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {samples / f'hyp-{args.split}.txt'} and {out}")
    return 0


def configure_average(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_run", default="latest",
                   help="run directory, name under runs/translation/, or 'latest' (default)")
    p.add_argument("--last", type=int, default=5, help="how many newest step checkpoints")
    p.add_argument("--out", help="output file (default: <run>/checkpoints/averaged.pt)")


def run_average(args: argparse.Namespace) -> int:
    from torchsuite.core import find_run

    from .average import average_run

    run = find_run(args.from_run, "translation")
    out = average_run(run, max(1, args.last), Path(args.out) if args.out else None)
    print(f"wrote {out}; use it with --checkpoint {out}")
    return 0
