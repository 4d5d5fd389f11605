"""Benchmark: adversarial (``music-audio-gan``) vs non-adversarial (``music-audio``) quality.

Both tasks train the same sound-source model on the same data with the same steps and
seed; the GAN adds a multi-resolution spectrogram discriminator and feature matching.
This script evaluates the two runs' best checkpoints on one split with the task's
quality report (:mod:`torchsuite.plugins.music.audio.quality`) and prints the metrics
side by side with their ratio (GAN / plain; below 1 is better for distances and errors,
above 1 for accuracies).

    suite prepare music-audio                       # FluidSynth chorales (once)
    suite train music-audio --name plain
    suite train music-audio-gan --name gan
    python benchmarks/audio_gan.py runs/music-audio/plain runs/music-audio-gan/gan --split test
"""

from __future__ import annotations

import argparse

import torch
from torchsuite.plugins.music.audio.inference import load_run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("plain", help="music-audio run (non-adversarial)")
    p.add_argument("gan", help="music-audio-gan run (adversarial)")
    p.add_argument("--split", default="test", help="split to measure (default: test)")
    p.add_argument("--segments", type=int, default=32, help="segments measured")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    reports = {}
    for label, ref in (("plain", args.plain), ("gan", args.gan)):
        lm = load_run(ref)
        lm.task.cfg.eval.max_segments = args.segments
        reports[label] = lm.task.evaluate(lm.model, args.split)
        print(f"evaluated {label}: {lm.run_dir}", flush=True)
    keys = [k for k in reports["plain"] if k in reports["gan"]]
    width = max(len(k) for k in keys)
    print(f"{'metric':<{width}}  {'plain':>9}  {'gan':>9}  {'gan/plain':>9}")
    for k in keys:
        a, b = reports["plain"][k], reports["gan"][k]
        ratio = f"{b / a:9.3f}" if a else f"{'-':>9}"
        print(f"{k:<{width}}  {a:9.4f}  {b:9.4f}  {ratio}")


if __name__ == "__main__":
    main()
