"""Sentencepiece vocabularies: a bounded reservoir sample, training, and the loaded pair.

Ids follow one convention in every model: ``pad=0, unk=1, bos=2, eos=3`` so the
Transformer and the decoders can rely on them.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
from torchsuite.core import DataError

__all__ = ["BOS", "EOS", "PAD", "UNK", "Reservoir", "Vocab", "train_sentencepiece"]

PAD, UNK, BOS, EOS = 0, 1, 2, 3


class Reservoir:
    """Uniform random sample of at most ``size`` items from a stream (Algorithm R)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.items: list[str] = []
        self.seen = 0
        self._rng = random.Random(seed)

    def add(self, item: str) -> None:
        """Offer one item."""
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        j = self._rng.randrange(self.seen)
        if j < self.size:
            self.items[j] = item


def train_sentencepiece(
    sentences: list[str],
    prefix: Path,
    *,
    vocab_size: int,
    model_type: str,
    character_coverage: float = 1.0,
) -> Path:
    """Train a sentencepiece model on ``sentences`` and return ``<prefix>.model``.

    ``hard_vocab_limit=False`` lets a small corpus end with fewer pieces than asked
    instead of failing.
    """
    if not sentences:
        raise DataError("no sentences left after cleaning to train the vocabulary on.")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "sample.txt"
        text.write_text("\n".join(s.replace("\n", " ") for s in sentences) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
            hard_vocab_limit=False,
            input_sentence_size=0,  # all of them: the reservoir already bounds the sample
            shuffle_input_sentence=False,  # the reservoir is already a random sample
            num_threads=2,
            minloglevel=2,
        )
    return prefix.with_suffix(".model")


@dataclass
class Vocab:
    """Source and target sentencepiece processors (the same object when joint)."""

    src: spm.SentencePieceProcessor
    tgt: spm.SentencePieceProcessor
    joint: bool

    @classmethod
    def load(cls, data_dir: Path) -> Vocab:
        """Load ``spm.model`` (joint) or ``spm.src.model`` + ``spm.tgt.model``.

        Raises:
            DataError: No vocabulary in ``data_dir`` (prepare was not run).
        """
        joint = data_dir / "spm.model"
        if joint.is_file():
            p = spm.SentencePieceProcessor(model_file=str(joint))
            return cls(p, p, True)
        src, tgt = data_dir / "spm.src.model", data_dir / "spm.tgt.model"
        if src.is_file() and tgt.is_file():
            return cls(spm.SentencePieceProcessor(model_file=str(src)),
                       spm.SentencePieceProcessor(model_file=str(tgt)), False)
        raise DataError(
            f"no sentencepiece model in {data_dir} (spm.model or spm.src.model + "
            "spm.tgt.model). Run `suite prepare translation --src train.de --tgt train.en` "
            "first, or point data.dir at a prepared corpus."
        )

    @property
    def src_size(self) -> int:
        """Source vocabulary size."""
        return int(self.src.get_piece_size())

    @property
    def tgt_size(self) -> int:
        """Target vocabulary size."""
        return int(self.tgt.get_piece_size())

    @staticmethod
    def copy_models(from_dir: Path, to_dir: Path) -> None:
        """Copy the sentencepiece files (``spm*.model``/``.vocab``) between folders."""
        for f in sorted(from_dir.glob("spm*")):
            shutil.copy2(f, to_dir / f.name)
