"""``music-audio-gan``: the sound-source model trained adversarially against spectrograms.

The generator is the same :class:`~.model.SoundSourceModel` as ``music-audio`` (notes +
voice -> harmonic-plus-noise audio). A multi-resolution *spectrogram* discriminator
(one small 2-D conv net per STFT size, UniVNet-style) judges real against generated
log-magnitude spectrograms. The generator's loss is

    multi-resolution STFT reconstruction + ``gan.lambda_adv`` x LSGAN term
    + ``gan.lambda_fm`` x feature matching (L1 between the discriminator's
      hidden activations on real and generated audio),

so adversarial training *refines* the spectral detail the reconstruction loss
averages away (noise texture, attack transients) without losing the pitch, which
the oscillator bank fixes. Training uses the core Trainer's multi-optimizer hooks:
phase ``disc`` then phase ``gen`` on the same batch (``reuse_batch``), each with its
own AdamW, schedule, clipping and checkpointed state.

Compare with the non-adversarial model on the same data and steps:
``suite train music-audio-gan`` vs ``suite train music-audio`` (the dev metrics of
:mod:`.quality` are logged for both), or ``benchmarks/audio_gan.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchsuite.core import StepOutput
from torchsuite.core.config import option
from torchsuite.core.errors import ConfigError
from torchsuite.core.train import AdversarialTask, OptimizerSpec

from .model import SoundSourceModel
from .task import MusicAudioConfig, MusicAudioTask, conditioning, unwrap

__all__ = [
    "AdversarialSoundSource",
    "GanOptions",
    "MusicAudioGanConfig",
    "MusicAudioGanTask",
    "SpectrogramDiscriminator",
]


@dataclass
class GanOptions:
    """``[gan]``: the discriminator and the weights of the generator's loss terms."""

    # Two small scales keep a GAN step about 2.7x a plain step on CPU (0.48 vs 0.18 CPU-s).
    fft_sizes: list[int] = option([256, 64], "STFT sizes of the discriminator's scales")
    channels: int = option(8, "conv channels of each scale's discriminator", ge=4)
    disc_lr: float = option(1e-4, "discriminator learning rate", ge=0.0)
    lambda_adv: float = option(1.0, "weight of the generator's adversarial (LSGAN) term",
                               ge=0.0)
    lambda_fm: float = option(2.0, "weight of the feature-matching term", ge=0.0)
    n_critic: int = option(1, "discriminator updates per generator update", ge=1)


@dataclass
class MusicAudioGanConfig(MusicAudioConfig):
    """Config of ``music-audio-gan``: ``music-audio`` plus ``[gan]``."""

    gan: GanOptions = field(default_factory=GanOptions)

    def validate(self) -> None:
        super().validate()
        if not self.gan.fft_sizes or any(n < 32 for n in self.gan.fft_sizes):
            raise ConfigError(f"gan.fft_sizes must be STFT sizes >= 32, got {self.gan.fft_sizes}.")


class _ScaleDiscriminator(nn.Module):
    """Log-magnitude STFT at one size -> 2-D convs -> a patch map of real/fake scores."""

    def __init__(self, n_fft: int, channels: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        # Strided from the first layer: the full-resolution 2-D maps dominate the cost on CPU.
        self.convs = nn.ModuleList([
            nn.Conv2d(1, c, (5, 5), stride=(2, 2), padding=(2, 2)),
            nn.Conv2d(c, c, (5, 3), stride=(2, 1), padding=(2, 1)),
            nn.Conv2d(c, c, (5, 3), stride=(2, 1), padding=(2, 1)),
            nn.Conv2d(c, c, (3, 3), padding=(1, 1)),
        ])
        self.out = nn.Conv2d(c, 1, (3, 3), padding=(1, 1))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """[B, N] -> (scores [B, 1, F', T'], hidden activations)."""
        spec = torch.stft(wave, self.n_fft, self.n_fft // 4, window=self.window,
                          return_complex=True).abs()
        x = torch.log(spec + 1e-5)[:, None]  # [B, 1, F, T]
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class SpectrogramDiscriminator(nn.Module):
    """One :class:`_ScaleDiscriminator` per STFT size (multi-resolution)."""

    def __init__(self, fft_sizes: Sequence[int], channels: int) -> None:
        super().__init__()
        self.scales = nn.ModuleList([_ScaleDiscriminator(n, channels) for n in fft_sizes])

    def forward(self, wave: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(wave) for d in self.scales]


class AdversarialSoundSource(nn.Module):
    """Generator (the sound-source model) + discriminator; calls run the generator, so
    evaluation, synthesis and transfer treat it like a plain :class:`SoundSourceModel`."""

    def __init__(self, gen: SoundSourceModel, disc: SpectrogramDiscriminator) -> None:
        super().__init__()
        self.gen = gen
        self.disc = disc

    def forward(self, cond: torch.Tensor, f0: torch.Tensor, voice_ids: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return self.gen(cond, f0, voice_ids, generator)


class MusicAudioGanTask(AdversarialTask, MusicAudioTask):
    """``music-audio`` with a spectrogram discriminator (see the module docstring)."""

    name = "music-audio-gan"
    Config = MusicAudioGanConfig
    description = ("sound-source model of music-audio refined adversarially (multi-resolution "
                   "spectrogram discriminator + feature matching)")

    @property
    def data_dir(self) -> Path:
        """Shares ``music-audio``'s prepared data: ``data.dir``, else ``data/music-audio``."""
        return Path(self.cfg.data.dir) if self.cfg.data.dir else Path("data") / "music-audio"

    def build_model(self) -> nn.Module:
        gen = unwrap(super().build_model())
        g = self.cfg.gan
        return AdversarialSoundSource(gen, SpectrogramDiscriminator(g.fft_sizes, g.channels))

    def configure_optimizers(self, model: nn.Module) -> Sequence[OptimizerSpec]:
        m = _outer(model)
        g = self.cfg.gan
        return [
            OptimizerSpec("disc", m.disc, steps=g.n_critic, lr=g.disc_lr, betas=(0.5, 0.9),
                          weight_decay=0.0),
            OptimizerSpec("gen", m.gen, reuse_batch=True),
        ]

    def adversarial_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        m = _outer(model)
        present = batch.get("loud_present")
        if present is None:
            present = torch.ones(batch["f0"].shape[0], dtype=torch.bool)
        ids = m.gen.voice.ids(batch["voice"], add=m.training)
        fake = m.gen(conditioning(batch, present.to(batch["f0"].device)), batch["f0"], ids)
        real = batch["audio"]
        n = float(real.shape[0])
        if phase == "disc":  # the generator's weights are frozen in this phase
            loss = real.new_zeros(())
            for (s_real, _), (s_fake, _) in zip(m.disc(real), m.disc(fake.detach())):
                loss = loss + ((s_real - 1) ** 2).mean() + (s_fake**2).mean()
            return StepOutput(loss, {"d_loss": loss.detach()}, weight=n)
        recon = self._loss_fn(fake.device)(fake, real)
        adv = fake.new_zeros(())
        fm = fake.new_zeros(())
        for (_, f_real), (s_fake, f_fake) in zip(m.disc(real), m.disc(fake)):
            adv = adv + ((s_fake - 1) ** 2).mean()
            fm = fm + sum(F.l1_loss(b, a.detach()) for a, b in zip(f_real, f_fake)) / len(f_real)
        g = self.cfg.gan
        loss = recon + g.lambda_adv * adv + g.lambda_fm * fm
        return StepOutput(loss, {"mrstft": recon.detach(), "adv": adv.detach(),
                                 "fm": fm.detach()}, weight=n)


def _outer(model: nn.Module) -> AdversarialSoundSource:
    m: Any = model
    while not isinstance(m, AdversarialSoundSource):
        inner = getattr(m, "module", None) or getattr(m, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"expected an AdversarialSoundSource, got {type(model).__name__}")
        m = inner
    return m
