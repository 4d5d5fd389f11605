"""Benchmark: KV-cached generation vs recomputing the whole context every step.

The music generator (default ``music`` model size unless overridden) samples
``--tokens`` tokens twice from the same seed: once with its preallocated KV cache
(one new position per step), once re-running the full sequence each step (what a
model without a cache must do). Sampling is unconstrained here so both runs produce
exactly ``--tokens`` tokens; the test suite checks that both paths give the same
sequence. Prints tokens/s of each and the speed-up (goal: >= 5x at 1,024 tokens).
Weights are random: speed does not depend on them.

    OMP_NUM_THREADS=2 python benchmarks/music_generation.py
    python benchmarks/music_generation.py --tokens 512 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from torchsuite.plugins.music.model import MusicTransformer
from torchsuite.plugins.music.sampling import SamplingOptions, generate
from torchsuite.plugins.music.task import MusicConfig, MusicTask


def run(model: MusicTransformer, task: MusicTask, tokens: int, use_cache: bool) -> tuple[
        float, list[int]]:
    """Seconds to sample ``tokens`` tokens, and the tokens."""
    prompt = task.example_inputs()[0][0].tolist()
    opts = SamplingOptions(temperature=1.0, top_p=0.95, max_tokens=tokens)
    t0 = time.perf_counter()
    out = generate(model, task.tok, prompt, options=opts, use_cache=use_cache,
                   constrained=False, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=1024, help="sequence length to generate")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--d-model", type=int, default=0, help="model width (0: the default)")
    p.add_argument("--layers", type=int, default=0, help="layers (0: the default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = MusicConfig()
    if args.d_model:
        cfg.model.d_model, cfg.model.d_ff = args.d_model, 4 * args.d_model
    if args.layers:
        cfg.model.n_layers = args.layers
    task = MusicTask(cfg)
    torch.manual_seed(0)
    model = task.build_model().eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: d_model={cfg.model.d_model} layers={cfg.model.n_layers} "
          f"params={n_params / 1e6:.2f}M, {args.tokens} tokens, "
          f"{torch.get_num_threads()} threads", flush=True)
    run(model, task, 32, True)  # warm-up
    cached_s, cached = run(model, task, args.tokens, True)
    print(f"kv cache:      {cached_s:7.2f} s  {len(cached) / cached_s:8.1f} tokens/s", flush=True)
    full_s, full = run(model, task, args.tokens, False)
    print(f"full recompute:{full_s:7.2f} s  {len(full) / full_s:8.1f} tokens/s", flush=True)
    same = "identical" if cached == full else "DIFFERENT"
    print(f"speed-up {full_s / cached_s:.1f}x (goal >= 5x); sequences {same}")


if __name__ == "__main__":
    main()
