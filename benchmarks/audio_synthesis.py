"""Benchmark: music-audio synthesis speed (real-time factor) and training throughput.

Two measurements on the default model sizes of the ``music-audio`` task:

CPU time (``time.process_time``, all threads) is printed beside wall time: on a shared
machine the wall time mostly measures the other processes.

* **synthesis** — rendering ``--seconds`` of notes with the sound-source model
  (conv -> LSTM -> FC -> harmonic-plus-noise synthesizer), against Griffin-Lim
  (``--gl-iters`` iterations, torchaudio) reconstructing the same duration from a
  log-mel spectrogram: the other waveform path. Prints the real-time factor of each
  (compute seconds per second of audio; below 1 is faster than real time) and the ratio.
* **training** — frames per second of ``--steps`` optimizer steps through the core
  ``Trainer`` (``fit``) against a bare PyTorch loop with the same model, loss,
  optimizer and batches; the ratio is the Trainer's overhead.

Data for the training part is generated (additive ``tone-*`` voices from random
melodies) so no soundfont is needed. Weights are random: speed does not depend on them.

    OMP_NUM_THREADS=2 python benchmarks/audio_synthesis.py
    python benchmarks/audio_synthesis.py --seconds 30 --steps 40 --threads 2
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
import torchaudio
from torchsuite.core.config import resolve_config
from torchsuite.core.train import fit
from torchsuite.plugins.music.audio.features import build_conditioning, log_mel
from torchsuite.plugins.music.audio.notes import Line, NoteEvent, line_features
from torchsuite.plugins.music.audio.task import MusicAudioConfig, MusicAudioTask


def log(msg: str) -> None:
    print(msg, flush=True)


def random_line(seconds: float, seed: int) -> Line:
    rng = random.Random(seed)
    notes, t = [], 0.0
    while t < seconds:
        d = rng.choice((0.25, 0.5, 0.75))
        notes.append(NoteEvent(rng.randint(55, 79), t, min(t + d * 0.95, seconds)))
        t += d
    return Line(f"random{seed}", notes)


def bench_synthesis(task: MusicAudioTask, seconds: float, gl_iters: int, repeats: int
                    ) -> dict[str, float]:
    spec = task.feature_spec
    model = task.build_model().eval()
    model.voice.add("voice")
    line = random_line(seconds, 0)
    n_frames = int(seconds * spec.frame_rate)
    nf = line_features(line, n_frames, spec)
    cond = build_conditioning(nf["f0"], nf["voiced"], nf["onset"], None)[None]
    ids = model.voice.ids(["voice"])
    with torch.inference_mode():
        audio = model(cond, nf["f0"][None], ids)[0]  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            model(cond, nf["f0"][None], ids)
        t_model = (time.perf_counter() - t0) / repeats
        c_model = (time.process_time() - c0) / repeats

        mel = torch.exp(log_mel(audio, spec)) - 1e-5
        inv = torchaudio.transforms.InverseMelScale(n_stft=spec.n_fft // 2 + 1,
                                                    n_mels=spec.n_mels,
                                                    sample_rate=spec.sample_rate)
        gl = torchaudio.transforms.GriffinLim(n_fft=spec.n_fft, hop_length=spec.hop,
                                              power=2.0, n_iter=gl_iters)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            gl(inv(mel.clamp_min(0)))
        t_gl = (time.perf_counter() - t0) / repeats
        c_gl = (time.process_time() - c0) / repeats
    return {"audio_s": seconds, "model_s": t_model, "gl_s": t_gl, "model_cpu_s": c_model,
            "gl_cpu_s": c_gl, "model_rtf": t_model / seconds, "gl_rtf": t_gl / seconds}


def prepare_tiny(root: Path, pieces: int) -> Path:
    midi = root / "midi"
    midi.mkdir(parents=True)
    for k in range(pieces):
        line = random_line(6.0, k + 1)
        line.to_midi().write(str(midi / f"piece{k}.mid"))
    return midi


def bench_training(root: Path, steps: int, batch: int) -> dict[str, float]:
    over = {"data.renderer": "additive", "data.voices": ["tone-bright", "tone-hollow"],
            "data.target_voice": "", "data.dir": str(root / "data"),
            "train.max_steps": steps, "train.batch_size": batch, "train.eval_every": 0,
            "train.checkpoints": False, "train.progress": "off", "train.tensorboard": False,
            "train.log_every": steps, "train.eval_task_metrics": False,
            "augment.loudness_dropout": 0.0}
    cfg = resolve_config(MusicAudioConfig,
                         overrides=[f"{k}={json.dumps(v)}" for k, v in over.items()])
    task = MusicAudioTask(cfg)
    task.prepare(prepare_tiny(root, 12))
    frames_per_step = batch * round(cfg.data.segment_seconds * task.feature_spec.frame_rate)

    # Bare loop: same model, optimizer, loss and batch shapes; no trainer machinery.
    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    loader = task.dataloader("train", train=True)
    it = iter(loader)
    done, t0, c0 = 0, 0.0, 0.0
    while done <= steps:
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        if done == 1:
            t0, c0 = time.perf_counter(), time.process_time()  # step 0 is warm-up
        out = task.training_step(model, b)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done += 1
    bare = (steps - 1) * frames_per_step / (time.perf_counter() - t0)
    bare_cpu = (steps - 1) * frames_per_step / (time.process_time() - c0)

    t0, c0 = time.perf_counter(), time.process_time()
    fit(task, root / "run")
    trainer = steps * frames_per_step / (time.perf_counter() - t0)  # includes its set-up
    trainer_cpu = steps * frames_per_step / (time.process_time() - c0)
    return {"bare_frames_per_s": bare, "trainer_frames_per_s": trainer,
            "bare_frames_per_cpu_s": bare_cpu, "trainer_frames_per_cpu_s": trainer_cpu}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="audio rendered per synthesis")
    p.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=20, help="training steps measured")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log(f"torch threads: {torch.get_num_threads()}")
    task = MusicAudioTask(MusicAudioConfig())
    s = bench_synthesis(task, args.seconds, args.gl_iters, args.repeats)
    log(f"synthesis of {s['audio_s']:.0f} s: model {s['model_s']:.3f} s wall, "
        f"{s['model_cpu_s']:.3f} CPU-s (RTF {s['model_rtf']:.4f} wall, "
        f"{s['model_cpu_s'] / s['audio_s']:.4f} CPU) | Griffin-Lim {args.gl_iters} it "
        f"{s['gl_s']:.3f} s wall, {s['gl_cpu_s']:.3f} CPU-s (RTF {s['gl_rtf']:.4f}) | "
        f"model/GL time ratio {s['model_s'] / s['gl_s']:.2f} wall, "
        f"{s['model_cpu_s'] / s['gl_cpu_s']:.2f} CPU")
    with tempfile.TemporaryDirectory() as tmp:
        t = bench_training(Path(tmp), args.steps, args.batch)
    log(f"training {args.steps} steps, batch {args.batch}: bare loop "
        f"{t['bare_frames_per_s']:.0f} frames/s ({t['bare_frames_per_cpu_s']:.0f} per CPU-s) | "
        f"Trainer {t['trainer_frames_per_s']:.0f} frames/s "
        f"({t['trainer_frames_per_cpu_s']:.0f} per CPU-s) | Trainer/bare ratio "
        f"{t['trainer_frames_per_s'] / t['bare_frames_per_s']:.2f} wall, "
        f"{t['trainer_frames_per_cpu_s'] / t['bare_frames_per_cpu_s']:.2f} CPU")


if __name__ == "__main__":
    main()
