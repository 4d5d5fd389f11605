"""Benchmark: incremental (key/value cached) beam search vs. re-running the decoder
over the whole prefix at every step, with the same model and sources.

The goal (issue #9): cached beam search (beam 5) >= 3x faster, identical output. Both
decoders run the same batched beam search (``decode.beam_search``); only
``DecodeOptions.incremental`` differs. The model is the task's default size with
random weights (speed does not depend on them) unless ``--from RUN`` loads a trained
translation run, in which case the sources are its dev split.

    OMP_NUM_THREADS=2 python benchmarks/translation_beam.py
    python benchmarks/translation_beam.py --sentences 32 --beam 5 --from runs/translation/x
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from torchsuite.plugins.translation.decode import DecodeOptions, beam_search
from torchsuite.plugins.translation.model import Seq2SeqTransformer, TransformerSpec
from torchsuite.plugins.translation.translate import pad_sources


def _random_setup(n: int, seed: int) -> tuple[Seq2SeqTransformer, list[list[int]]]:
    torch.manual_seed(seed)
    model = Seq2SeqTransformer(TransformerSpec(src_vocab=8000, tgt_vocab=8000, dropout=0.0,
                                               activation_dropout=0.0))
    rnd = random.Random(seed)
    sources = [[rnd.randrange(4, 8000) for _ in range(rnd.randint(8, 30))] for _ in range(n)]
    return model.eval(), sources


def _run_setup(run: str, n: int) -> tuple[Seq2SeqTransformer, list[list[int]]]:
    import argparse as ap

    from torchsuite.plugins.translation.commands import load_run

    task, model, _, _ = load_run(ap.Namespace(from_run=run, checkpoint=None, beam=None,
                                            overrides=[], config=[], set_=[]))
    ds = task.datasets()["dev"]
    return model.eval(), [list(map(int, ds[i]["src"])) for i in range(min(n, len(ds)))]


def _time(model: Seq2SeqTransformer, batches: list[torch.Tensor], opts: DecodeOptions
          ) -> tuple[float, list[list[int]]]:
    out: list[list[int]] = []
    t0 = time.perf_counter()
    for src in batches:
        out += beam_search(model, src, opts)
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sentences", type=int, default=32)
    p.add_argument("--batch", type=int, default=16, help="sentences per batch")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--from", dest="from_run", help="a trained translation run")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.from_run:
        model, sources = _run_setup(args.from_run, args.sentences)
    else:
        model, sources = _random_setup(args.sentences, args.seed)
    sources.sort(key=len)  # as the Translator batches them
    batches = [pad_sources(sources[i:i + args.batch]) for i in range(0, len(sources),
                                                                      args.batch)]
    base = dict(beam=args.beam, max_len_a=10, max_len_b=1.5)
    _time(model, batches[:1], DecodeOptions(**base))  # warm-up (allocator, kernels)
    t_fast, fast = _time(model, batches, DecodeOptions(**base, incremental=True))
    t_slow, slow = _time(model, batches, DecodeOptions(**base, incremental=False))
    tokens = sum(len(h) + 1 for h in fast)
    print(f"beam {args.beam}, {len(sources)} sentences, {tokens} output tokens, "
          f"torch threads {torch.get_num_threads()}")
    print(f"  incremental (cached k/v): {t_fast:8.2f} s  {tokens / t_fast:8.1f} tokens/s")
    print(f"  full prefix each step:    {t_slow:8.2f} s  {tokens / t_slow:8.1f} tokens/s")
    print(f"  speed-up: {t_slow / t_fast:.2f}x (goal >= 3x); identical output: {fast == slow}")


if __name__ == "__main__":
    main()
