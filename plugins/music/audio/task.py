"""The ``music-audio`` task: config, data, model and training step for the sound-source model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchsuite.core import StepOutput, Task, TaskStatus
from torchsuite.core.config import option
from torchsuite.core.errors import ConfigError, DataError
from torchsuite.core.train.config import DataConfig, OptimConfig, TrainableConfig, TrainConfig

from .features import FeatureSpec, build_conditioning
from .losses import MultiResolutionSTFTLoss
from .model import ModelSpec, SoundSourceModel

__all__ = ["MusicAudioConfig", "MusicAudioTask", "conditioning", "unwrap"]


@dataclass
class AudioDataConfig(DataConfig):
    """Paired (notes, audio) data: what to render or read, and how to cut it."""

    renderer: str = option("fluidsynth", "fluidsynth: GM soundfont instruments; additive: "
                           "synthetic tone-* test voices (not instruments)",
                           choices=("fluidsynth", "additive"))
    soundfont: str = option("", "General MIDI .sf2 (empty: $SUITE_SOUNDFONT or Debian's)")
    voices: list[str] = option(["violin", "flute", "clarinet", "choir"],
                               "voices rendered into train/dev/test")
    target_voice: str = option("cello", "voice rendered only into the target split "
                               "(a new voice for fine-tuning; empty: none)")
    voice: str = option("", "name of the voice in a --source directory of recordings "
                        "(empty: the directory name)")
    recordings_split: str = option("target", "split recordings go to (20% to dev when there "
                                   "are 3+ files)", choices=("target", "train"))
    max_pieces: int = option(16, "chorales / MIDI files to render (0: all MIDI files)", ge=0)
    parts: int = option(2, "parts per piece (outer voices first: soprano, bass, ...)", ge=1)
    max_seconds: float = option(16.0, "cut each part after this many seconds (0: whole)", ge=0.0)
    segment_seconds: float = option(1.0, "length of one training segment", ge=0.25)
    salt: str = option("music-audio-v1", "split salt (pieces are assigned by a hash of it)")
    overwrite: bool = option(False, "replace an existing prepared data set in data.dir")


@dataclass
class AudioModelConfig:
    """Sound-source model sizes and the audio frame grid."""

    sample_rate: int = option(16000, "audio sample rate (Hz)", ge=8000)
    hop: int = option(128, "samples per frame", ge=32)
    conv_channels: int = option(64, "channels of the conv front end", ge=8)
    conv_layers: int = option(2, "conv layers", ge=1)
    kernel_size: int = option(5, "conv kernel size (frames)", ge=1)
    lstm_hidden: int = option(128, "LSTM hidden size", ge=8)
    fc_hidden: int = option(128, "fully connected hidden size", ge=8)
    voice_dim: int = option(32, "voice embedding size", ge=2)
    voice_slots: int = option(32, "voice table capacity (fine-tuning adds voices to free slots)",
                              ge=1)
    harmonics: int = option(32, "harmonics of the oscillator bank", ge=1)
    noise_bands: int = option(32, "bands of the noise filter", ge=2)


@dataclass
class AudioLossConfig:
    """Training loss."""

    fft_sizes: list[int] = option([1024, 256, 64], "FFT sizes of the multi-resolution "
                                  "STFT loss (large: harmonics, small: attacks)")


@dataclass
class AudioAugmentConfig:
    """Training-time augmentation."""

    loudness_dropout: float = option(0.5, "chance of hiding the loudness contour from the model "
                                     "(so it can render from notes alone)", ge=0.0, le=1.0)


@dataclass
class AudioEvalConfig:
    """The quality report (``evaluate``)."""

    max_segments: int = option(8, "held-out segments measured", ge=1)
    griffin_lim_iters: int = option(32, "Griffin-Lim iterations of the upper reference", ge=1)
    classifier_segments: int = option(256, "train segments the voice classifier learns from",
                                      ge=2)
    classifier_steps: int = option(300, "voice classifier optimisation steps", ge=1)


def _train_defaults() -> TrainConfig:
    # Sized to train in a few minutes on 2 CPU cores (about 0.15 CPU-s per step).
    return TrainConfig(batch_size=8, max_steps=600, eval_every=200, log_every=25)


def _optim_defaults() -> OptimConfig:
    return OptimConfig(lr=2e-3, warmup_steps=50)


@dataclass
class MusicAudioConfig(TrainableConfig):
    """Config of the ``music-audio`` task."""

    train: TrainConfig = option(default_factory=_train_defaults, help="trainer settings")
    optim: OptimConfig = option(default_factory=_optim_defaults, help="optimizer settings")
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    model: AudioModelConfig = field(default_factory=AudioModelConfig)
    loss: AudioLossConfig = field(default_factory=AudioLossConfig)
    augment: AudioAugmentConfig = field(default_factory=AudioAugmentConfig)
    eval: AudioEvalConfig = field(default_factory=AudioEvalConfig)

    def validate(self) -> None:
        if not self.loss.fft_sizes or any(n < 16 for n in self.loss.fft_sizes):
            raise ConfigError(f"loss.fft_sizes must be FFT sizes >= 16, got {self.loss.fft_sizes}.")
        if self.data.target_voice and self.data.target_voice in self.data.voices:
            raise ConfigError(
                f"data.target_voice '{self.data.target_voice}' is also in data.voices; the target "
                "voice must be new to the model. Remove it from one of them."
            )


def unwrap(model: nn.Module) -> SoundSourceModel:
    """The :class:`SoundSourceModel` inside DDP / torch.compile wrappers, or the generator
    of an adversarial (``music-audio-gan``) model."""
    m: Any = model
    while not isinstance(m, SoundSourceModel):
        inner = (getattr(m, "module", None) or getattr(m, "_orig_mod", None)
                 or getattr(m, "gen", None))
        if inner is None:
            raise TypeError(f"expected a SoundSourceModel, got {type(model).__name__}")
        m = inner
    return m


def conditioning(batch: dict[str, Any], loud_present: torch.Tensor | None = None) -> torch.Tensor:
    """Model conditioning [B, T, C] of a batch; ``loud_present`` [B] hides loudness where 0."""
    cond = build_conditioning(batch["f0"], batch["voiced"], batch["onset"], batch["loud"])
    if loud_present is not None:
        cond = cond.clone()
        cond[..., 3:5] = cond[..., 3:5] * loud_present.to(cond)[:, None, None]
    return cond


class MusicAudioTask(Task[MusicAudioConfig]):
    """Notes (or f0 + loudness) + voice -> audio, through a harmonic-plus-noise synthesizer."""

    name = "music-audio"
    Config = MusicAudioConfig
    description = ("sound-source model (conv -> LSTM -> FC -> harmonic+noise synth) on chorales "
                   "rendered by FluidSynth voices; synthesize / transfer")
    status = TaskStatus.READY

    def __init__(self, cfg: MusicAudioConfig) -> None:
        super().__init__(cfg)
        self._loss: MultiResolutionSTFTLoss | None = None
        self._classifier: Any = None

    # ------------------------------------------------------------------ data
    @property
    def feature_spec(self) -> FeatureSpec:
        """Sample rate and frame grid of the model."""
        return FeatureSpec(sample_rate=self.cfg.model.sample_rate, hop=self.cfg.model.hop)

    def prepare(self, source: Path | None = None) -> Path:
        from .data import PrepareOptions, prepare_audio

        d = self.cfg.data
        opts = PrepareOptions(
            out_dir=self.data_dir, spec=self.feature_spec, renderer=d.renderer,
            soundfont=d.soundfont, voices=tuple(d.voices), target_voice=d.target_voice,
            recordings_voice=d.voice, recordings_split=d.recordings_split,
            max_pieces=d.max_pieces, parts=d.parts, max_seconds=d.max_seconds,
            segment_seconds=d.segment_seconds, salt=d.salt, overwrite=d.overwrite,
        )
        return prepare_audio(source, opts)

    def _manifest(self) -> Any:
        from torchsuite.core.data.shards import read_manifest

        if not (self.data_dir / "manifest.json").is_file():
            raise DataError(
                f"no prepared audio in '{self.data_dir}'. Run `suite prepare music-audio` "
                "(bundled chorales rendered by FluidSynth), or `suite prepare music-audio "
                "--source DIR` for your MIDI files or recordings, or set data.dir."
            )
        return read_manifest(self.data_dir)

    def datasets(self) -> dict[str, Any]:
        from .data import SegmentDataset

        man = self._manifest()
        sr, hop = man.meta.get("sample_rate"), man.meta.get("hop")
        if (sr, hop) != (self.cfg.model.sample_rate, self.cfg.model.hop):
            raise DataError(
                f"'{self.data_dir}' was prepared at {sr} Hz with hop {hop}, but the model is "
                f"configured for model.sample_rate={self.cfg.model.sample_rate}, "
                f"model.hop={self.cfg.model.hop}. Set those to match, or prepare again with "
                "data.overwrite=true."
            )
        return {
            s: SegmentDataset(self.data_dir, s) for s in man.splits if man.splits[s].num_records
        }

    def collate(self, samples: list[Any]) -> Any:
        from .data import collate_segments

        return collate_segments(samples)

    def augment(self, batch: Any) -> Any:
        """Hide loudness from a random part of the batch (never from note-less recordings)."""
        b = batch["f0"].shape[0]
        keep = torch.rand(b) >= self.cfg.augment.loudness_dropout
        batch = dict(batch)
        batch["loud_present"] = keep | (batch["notes"].cpu() == 0)
        return batch

    # ------------------------------------------------------------------ model
    def model_spec(self) -> ModelSpec:
        """The model sizes of the config."""
        m = self.cfg.model
        return ModelSpec(
            conv_channels=m.conv_channels, conv_layers=m.conv_layers, kernel_size=m.kernel_size,
            lstm_hidden=m.lstm_hidden, fc_hidden=m.fc_hidden, voice_dim=m.voice_dim,
            voice_slots=m.voice_slots, harmonics=m.harmonics, noise_bands=m.noise_bands,
            sample_rate=m.sample_rate, hop=m.hop,
        )

    def build_model(self) -> nn.Module:
        model = SoundSourceModel(self.model_spec())
        # Register the data's voices in a fixed (sorted) order when data is at hand, so ids do
        # not depend on which voice the first batch happens to hold.
        # The target voice is left out: it is new to the model and takes a free slot only when
        # fine-tuning on the target split meets it.
        manifest = self.data_dir / "manifest.json"
        if manifest.is_file():
            meta = self._manifest().meta
            for v in meta.get("voices", []):
                if v != meta.get("target_voice"):
                    model.voice.add(v)
        return model

    def _loss_fn(self, device: torch.device) -> MultiResolutionSTFTLoss:
        if self._loss is None:
            self._loss = MultiResolutionSTFTLoss(self.cfg.loss.fft_sizes)
        return self._loss.to(device)

    def _step(self, model: nn.Module, batch: dict[str, Any], present: torch.Tensor) -> StepOutput:
        core = unwrap(model)
        ids = core.voice.ids(batch["voice"], add=core.training)
        pred = model(conditioning(batch, present), batch["f0"], ids)  # [B, N]
        loss = self._loss_fn(pred.device)(pred, batch["audio"])
        return StepOutput(loss, {"mrstft": loss.detach()}, weight=float(pred.shape[0]))

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        present = batch.get("loud_present")
        if present is None:
            present = torch.ones(batch["f0"].shape[0], dtype=torch.bool)
        return self._step(model, batch, present.to(batch["f0"].device))

    def validation_step(self, model: nn.Module, batch: Any) -> StepOutput:
        # Validation measures the harder, main use: rendering from notes alone (no loudness),
        # except for recordings without notes, whose f0 came from the audio anyway.
        present = batch["notes"] == 0
        return self._step(model, batch, present)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        from .quality import quality_report

        return quality_report(self, unwrap(model), split)

    def example_inputs(self) -> tuple[Any, ...]:
        t = 125
        cond = torch.zeros(1, t, 5)
        cond[..., 0], cond[..., 1] = 0.0, 1.0
        f0 = torch.full((1, t), 261.63)
        return cond, f0, torch.zeros(1, dtype=torch.long)
