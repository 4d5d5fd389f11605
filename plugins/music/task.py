"""The ``music`` task: a style-conditioned Transformer over REMI-like tokens.

``suite train music`` with no arguments prepares music21's bundled corpus on first
use (Bach chorales plus a few other collections as styles), trains through the
core Trainer, and writes a sample MIDI into the run's ``samples/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchsuite.core import (
    ConfigError,
    DataConfig,
    DataError,
    OptimConfig,
    StepOutput,
    Task,
    TrainableConfig,
    TrainConfig,
    option,
)

from .dataset import PieceWindows, WindowView, augment_tokens, collate_windows
from .model import MusicTransformer, TransformerSpec
from .tokenizer import STYLES, MusicTokenizer

__all__ = ["MusicConfig", "MusicTask"]


@dataclass
class MusicData(DataConfig):
    """Where the pieces come from and how they are split."""

    styles: list[str] = option(
        ["bach", "palestrina", "irish", "folk"],
        "music21 corpus collections to prepare (bach = the chorales); each is a style token",
    )
    max_files: dict[str, int] = option(
        {"palestrina": 60, "irish": 2, "folk": 1},
        "cap on corpus files per style (0/absent: all; one folk/irish file holds 50-300 tunes)",
    )
    target_style: str = option(
        "folk", "style held apart as the `target` split for `suite finetune music` ('' = none)")
    source_style: str = option("unknown", "style token for a --source MIDI directory")
    salt: str = option("music-v1", "split salt (a new salt is a new split)")
    workers: int = option(2, "parser processes for prepare", ge=1)
    cache: bool = option(True, "cache parsed corpus files under <data dir>/cache")
    overwrite: bool = option(False, "replace an existing prepared data set")


@dataclass
class MusicModel:
    """Generator size."""

    d_model: int = option(128, "model width", ge=8)
    n_layers: int = option(4, "Transformer layers", ge=1)
    n_heads: int = option(4, "attention heads", ge=1)
    d_ff: int = option(512, "feed-forward width", ge=8)
    dropout: float = option(0.1, "dropout", ge=0.0, le=0.9)
    seq_len: int = option(256, "training window in tokens", ge=16)
    max_len: int = option(4096, "longest sequence the model can generate (RoPE table)", ge=64)


@dataclass
class MusicAugment:
    """Training-time augmentation."""

    transpose: int = option(5, "random transposition range in semitones (0: off)", ge=0, le=12)
    tempo: int = option(2, "random tempo stretch range in tempo buckets (0: off)", ge=0)


@dataclass
class MusicSample:
    """Sampling settings for the sample written after training and for `suite music generate`."""

    bars: int = option(16, "bars to generate", ge=1)
    style: str = option("bach", "style token", choices=STYLES)
    temperature: float = option(1.0, "softmax temperature", ge=0.01)
    top_k: int = option(0, "keep the k most likely tokens (0: off)", ge=0)
    top_p: float = option(0.95, "nucleus sampling mass (1: off)", ge=0.01, le=1.0)
    seed: int = option(0, "sampling seed")
    after_train: bool = option(True, "write a sample MIDI into samples/ after training")


@dataclass
class MusicEval:
    """`suite eval music` settings."""

    pieces: int = option(100, "generated pieces for the musical statistics (0: skip)", ge=0)
    bars: int = option(8, "bars per generated piece", ge=1)
    ngram: int = option(3, "order of the n-gram baseline", ge=1, le=5)


@dataclass
class MusicTrain(TrainConfig):
    """Trainer settings with this task's defaults (sized for ~5-8 min on 2 CPU cores)."""

    max_steps: int = option(600, "optimizer steps to run", ge=1)
    batch_size: int = option(16, "windows per batch", ge=1)
    eval_every: int = option(200, "evaluate on dev every N steps (0: only at the end)", ge=0)


@dataclass
class MusicOptim(OptimConfig):
    """Optimizer settings with this task's defaults (a small model, a short schedule)."""

    lr: float = option(1e-3, "peak learning rate", ge=0.0)
    warmup_steps: int = option(60, "linear warm-up steps", ge=0)


#: What ``quick=true`` changes, for every key still at its default: a smoke run
#: (a dozen chorales, a tiny model, a few steps) that finishes in well under a minute.
QUICK_PROFILE: dict[str, dict[str, Any]] = {
    "data": {"styles": ["bach"], "max_files": {"bach": 24}, "target_style": "", "dir":
             "data/music-quick"},
    "model": {"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 128, "seq_len": 128},
    "train": {"max_steps": 40, "batch_size": 8, "eval_every": 0, "log_every": 10},
    "optim": {"lr": 5e-3, "warmup_steps": 5},
    "sample": {"bars": 4},
    "eval": {"pieces": 4, "bars": 2},
}


@dataclass
class MusicConfig(TrainableConfig):
    """Everything ``suite train music`` reads (``suite config show music`` prints it)."""

    quick: bool = option(
        False, "smoke-run profile: a few chorales, a tiny model, 40 steps (changes only keys "
        "left at their defaults)")
    train: MusicTrain = option(default_factory=MusicTrain, help="trainer settings")
    optim: MusicOptim = option(default_factory=MusicOptim, help="optimizer settings")
    data: MusicData = field(default_factory=MusicData)
    model: MusicModel = field(default_factory=MusicModel)
    augment: MusicAugment = field(default_factory=MusicAugment)
    sample: MusicSample = field(default_factory=MusicSample)
    eval: MusicEval = field(default_factory=MusicEval)

    def apply_profile(self) -> None:
        """Apply :data:`QUICK_PROFILE` to keys still at their defaults (idempotent)."""
        if not self.quick:
            return
        for section, values in QUICK_PROFILE.items():
            obj = getattr(self, section)
            defaults = type(obj)()
            for key, value in values.items():
                if getattr(obj, key) == getattr(defaults, key):
                    setattr(obj, key, value)

    def validate(self) -> None:
        self.apply_profile()
        unknown = [s for s in self.data.styles if s not in STYLES or s == "unknown"]
        if unknown:
            raise ConfigError(f"data.styles has unknown style(s) {unknown}; choose from "
                              f"{[s for s in STYLES if s != 'unknown']}.")
        if self.data.target_style and self.data.target_style not in self.data.styles:
            raise ConfigError(f"data.target_style '{self.data.target_style}' is not among "
                              f"data.styles {self.data.styles}; add it or set it to ''.")
        if self.model.d_model % self.model.n_heads or (self.model.d_model
                                                       // self.model.n_heads) % 2:
            raise ConfigError(f"model.d_model={self.model.d_model} must divide into "
                              f"model.n_heads={self.model.n_heads} heads of even size.")


class MusicTask(Task[MusicConfig]):
    """Symbolic music generation on the bundled corpus (style tokens as conditioning)."""

    name = "music"
    Config = MusicConfig
    description = "Transformer MIDI generator on music21's Bach chorales (+ styles)"

    def __init__(self, cfg: MusicConfig) -> None:
        cfg.validate()
        super().__init__(cfg)
        self.tok = MusicTokenizer()
        self._sets: dict[str, Dataset] | None = None
        self._samples_written = False

    # ------------------------------------------------------------------ data
    def prepare(self, source: Path | None = None) -> Path:
        from .prepare import prepare_music

        return prepare_music(self.cfg, self.data_dir, self.tok, source)

    def pieces(self, split: str) -> Dataset:
        """The prepared pieces of ``split``: records ``{"tokens", "name", "style", "lyrics"}``."""
        from torchsuite.core.data.shards import ShardedDataset

        return ShardedDataset(self.data_dir, split)

    def prepared(self) -> bool:
        return (self.data_dir / "manifest.json").is_file()

    def ensure_prepared(self) -> None:
        """Prepare the embedded default on first use (what a fresh `suite train music` does).

        Under torchrun only rank 0 prepares; the other ranks wait for it.
        """
        dist = torch.distributed
        multi = dist.is_available() and dist.is_initialized()
        if (not multi or dist.get_rank() == 0) and not self.prepared():
            print(f"no prepared data in {self.data_dir}: preparing music21's bundled corpus "
                  "(once; later runs reuse it)", flush=True)
            self.prepare(None)
        if multi:
            dist.barrier()

    def splits(self) -> list[str]:
        """Non-empty splits of the prepared data (after checking its tokenizer matches)."""
        from torchsuite.core.data.shards import read_manifest

        manifest = read_manifest(self.data_dir)
        vocab = manifest.meta.get("vocab_size")
        if vocab != self.tok.vocab_size:
            raise DataError(
                f"the music data in {self.data_dir} was prepared with a tokenizer of {vocab} "
                f"tokens, this version uses {self.tok.vocab_size}; prepare it again with "
                "`suite prepare music data.overwrite=true`.")
        return [s for s, info in manifest.splits.items() if info.num_records > 0]

    def datasets(self) -> Mapping[str, Dataset]:
        """Every non-empty split as a :class:`PieceWindows` (one item per piece)."""
        if self._sets is None:
            self.ensure_prepared()
            seq = self.cfg.model.seq_len
            sets: dict[str, Dataset] = {
                split: PieceWindows(self.pieces(split), self.tok, seq) for split in self.splits()}
            if "train" not in sets:
                raise DataError(f"{self.data_dir} has no train split; re-run "
                                "`suite prepare music data.overwrite=true`.")
            self._sets = sets
        return self._sets

    def dataloader(self, split: str, *, train: bool) -> Iterable[Any]:
        """Random windows for training; for evaluation every window of every piece."""
        sets = self.datasets()
        if split not in sets:
            raise DataError(f"the prepared music data in {self.data_dir} has no '{split}' split "
                            f"(it has: {', '.join(sets)}).")
        gen = torch.Generator().manual_seed(self.cfg.train.seed)
        return DataLoader(WindowView(sets[split], train=train),
                          batch_size=self.cfg.train.batch_size, shuffle=train, generator=gen,
                          num_workers=self.cfg.train.num_workers, collate_fn=self.collate)

    def collate(self, samples: list[Any]) -> Any:
        return collate_windows(samples, self.tok.pad_id)

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Random transposition and tempo stretch per window (``augment.*``)."""
        a = self.cfg.augment
        if a.transpose == 0 and a.tempo == 0:
            return batch
        return {**batch, "tokens": augment_tokens(batch["tokens"], self.tok,
                                                  transpose=a.transpose, tempo=a.tempo)}

    # ------------------------------------------------------------------ model
    def model_spec(self) -> TransformerSpec:
        m = self.cfg.model
        return TransformerSpec(self.tok.vocab_size, m.d_model, m.n_layers, m.n_heads, m.d_ff,
                               m.dropout, max(m.max_len, m.seq_len))

    def build_model(self) -> nn.Module:
        return MusicTransformer(self.model_spec())

    def _loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        tokens, mask = batch["tokens"], batch["loss_mask"]
        logits = model(tokens[:, :-1])  # [B, T-1, V]
        target = tokens[:, 1:].masked_fill(~mask[:, 1:], -100)  # [B, T-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                               ignore_index=-100,
                               label_smoothing=self.cfg.optim.label_smoothing)
        n = int(mask[:, 1:].sum())
        return StepOutput(loss, {"nll": loss.detach()}, weight=float(n))

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        return self._loss(model, batch)

    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        return self._loss(model, batch)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Token NLL/perplexity next to unigram and n-gram baselines on the same tokens."""
        from .evaluation import evaluate_music

        return evaluate_music(self, model, split)

    def after_evaluate(self, run_dir: Path, split: str, model: nn.Module) -> dict[str, Any]:
        """``suite eval music``: musical statistics of ``eval.pieces`` generated pieces vs
        the split's real ones (minutes of generation, so never during training)."""
        from .evaluation import music_stats

        cfg = self.cfg.eval
        return music_stats(self, model, split, cfg.pieces, cfg.bars) if cfg.pieces > 0 else {}

    def example_inputs(self) -> tuple[Any, ...]:
        return (torch.tensor([[self.tok.style_id("bach"), self.tok.tok("Meter", 16),
                               self.tok.tok("Tempo", 8), self.tok.bar_id]]),)

    # ------------------------------------------------------------------ serving
    def serve_decode(self, payload: Any) -> Any:
        """``suite serve music`` request -> :class:`.serving.MusicRequest` (see that module)."""
        from .serving import decode_request

        return decode_request(self.tok, payload)

    def serve_predict(self, model: nn.Module, examples: list[Any]) -> list[Any]:
        from .serving import generate_batch

        return generate_batch(model, self.tok, examples)

    def serve_encode(self, output: Any) -> dict[str, Any]:
        from .serving import encode_piece

        return encode_piece(output)

    def serve_example(self) -> dict[str, Any]:
        return {"style": "bach", "bars": 4, "seed": 0, "temperature": 1.0, "top_p": 0.95}

    # ------------------------------------------------------------------ after training
    def on_fit_end(self, run_dir: Path, model: nn.Module | None = None) -> list[Path]:
        """Write a sample (MIDI + piano roll) into ``run_dir/samples`` and print the paths.

        The core Trainer calls this when training ends (and ``suite finetune`` after
        fine-tuning).

        Args:
            run_dir: The run directory.
            model: The trained model (default: the run's best checkpoint).
        """
        if not self.cfg.sample.after_train or self._samples_written or not _is_main_process():
            return []
        from .generation import load_generator, write_generated

        if model is None:
            model = load_generator(run_dir, self)
        was_training = model.training
        s = self.cfg.sample
        style = s.style
        if getattr(self, "_ft", None) is not None and self.cfg.data.target_style:
            style = self.cfg.data.target_style  # fine-tuned on the target: show that style
        t0 = time.perf_counter()
        paths = write_generated(model, self.tok, run_dir / "samples", stem=f"sample-{style}",
                                style=style, bars=s.bars, seed=s.seed,
                                temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
        model.train(was_training)
        self._samples_written = True
        print(f"wrote a {s.bars}-bar '{style}' sample in {time.perf_counter() - t0:.1f}s: "
              + ", ".join(str(p) for p in paths), flush=True)
        print(f"more: suite music generate --from {run_dir} --bars 16 --seed 1", flush=True)
        return paths


def _is_main_process() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0

