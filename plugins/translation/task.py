"""The ``translation`` task: prepared shards -> token-budget batches -> Transformer -> BLEU.

Batches are dicts of long tensors: ``src`` ``[B, S]`` (source pieces + eos),
``tgt_in`` ``[B, T]`` (bos + target pieces) and ``tgt_out`` ``[B, T]`` (target
pieces + eos), all padded with ``PAD``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchsuite.core import DataError, StepOutput, Task, TaskStatus
from torchsuite.core.data import (
    ShardedDataset,
    TokenBudgetBatchSampler,
    rank_and_world,
    read_manifest,
    token_budget_batches,
)

from .config import TranslationConfig
from .decode import DecodeOptions
from .model import Seq2SeqTransformer, TransformerSpec
from .prepare import prepare_corpus, read_lengths
from .scoring import score_corpus
from .translate import Translator
from .vocab import BOS, EOS, PAD, Vocab

__all__ = ["HOW_TO_PREPARE", "RankedBatchSampler", "TranslationTask", "collate_pairs"]

HOW_TO_PREPARE = (
    "Prepare a parallel corpus first: `suite prepare translation --src train.de --tgt "
    "train.en` (aligned text files, one sentence a line, .gz ok) or `--src pairs.tsv` "
    "(source<TAB>target); add `--dev-src dev.de --dev-tgt dev.en` for your own dev set. "
    "It writes data/translation/ (or data.dir)."
)


def collate_pairs(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Records ``{"src", "tgt"}`` (piece ids) -> padded ``src``/``tgt_in``/``tgt_out``."""
    b = len(samples)
    src_len = max(len(s["src"]) for s in samples) + 1
    tgt_len = max(len(s["tgt"]) for s in samples) + 1
    src = torch.full((b, src_len), PAD, dtype=torch.long)  # [B, S]
    tgt_in = torch.full((b, tgt_len), PAD, dtype=torch.long)  # [B, T]
    tgt_out = torch.full((b, tgt_len), PAD, dtype=torch.long)  # [B, T]
    for i, s in enumerate(samples):
        si = torch.as_tensor(np.asarray(s["src"], dtype=np.int64))
        ti = torch.as_tensor(np.asarray(s["tgt"], dtype=np.int64))
        src[i, : len(si)] = si
        src[i, len(si)] = EOS
        tgt_in[i, 0] = BOS
        tgt_in[i, 1 : len(ti) + 1] = ti
        tgt_out[i, : len(ti)] = ti
        tgt_out[i, len(ti)] = EOS
    return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out}


class RankedBatchSampler(TokenBudgetBatchSampler):
    """Token-budget batches, each ``torchrun`` rank taking every ``world``-th batch.

    The batch list is cut to a multiple of the world size so every rank runs the same
    number of steps (DDP needs that); with one process nothing is dropped.
    """

    def _batches(self) -> list[list[int]]:
        out = super()._batches()
        rank, world = rank_and_world()
        if world > 1:
            out = out[: len(out) - len(out) % world][rank::world]
        return out


class TranslationTask(Task[TranslationConfig]):
    """Transformer translation between the two sides of a prepared parallel corpus."""

    name = "translation"
    Config = TranslationConfig
    description = "Transformer machine translation on parallel corpora (sentencepiece, BLEU)"
    status = TaskStatus.READY

    def __init__(self, cfg: TranslationConfig) -> None:
        super().__init__(cfg)
        #: sacreBLEU signatures of the last :meth:`evaluate` (``bleu``/``chrf``).
        self.last_signatures: dict[str, str] = {}
        #: Hypotheses of the last :meth:`evaluate`, in split order.
        self.last_hypotheses: list[str] = []

    # ------------------------------------------------------------------ data
    def prepare(self, source: Path | None = None) -> Path:
        """Stream the raw corpora named in ``cfg.data`` into shards under :attr:`data_dir`.

        ``--source FILE`` is accepted as ``data.src`` (a TSV, or the source side with
        ``--tgt``).
        """
        data = self.cfg.data
        if source is not None and not data.src:
            data.src = str(source)
        prepare_corpus(data, self.data_dir)
        return self.data_dir

    def _require_prepared(self) -> None:
        if not (self.data_dir / "manifest.json").is_file():
            raise DataError(f"no prepared corpus in '{self.data_dir}'. {HOW_TO_PREPARE}")

    @cached_property
    def vocab(self) -> Vocab:
        """The sentencepiece models of the prepared corpus."""
        self._require_prepared()
        return Vocab.load(self.data_dir)

    def datasets(self) -> Mapping[str, Dataset[Any]]:
        """Every prepared split as a map-style :class:`ShardedDataset`."""
        self._require_prepared()
        manifest = read_manifest(self.data_dir)
        return {s: ShardedDataset(self.data_dir, s) for s, info in manifest.splits.items()
                if info.num_records > 0}

    def _lengths(self, split: str, ds: Dataset[Any]) -> np.ndarray:
        """``[N]`` batch lengths (longer side + eos/bos) of ``split``."""
        pairs = None
        if isinstance(ds, ShardedDataset) and ds.split == split:  # not a Subset (finetune)
            pairs = read_lengths(self.data_dir, split)
        if pairs is None or len(pairs) != len(ds):  # type: ignore[arg-type]
            pairs = np.asarray([(len(r["src"]), len(r["tgt"])) for r in ds], dtype=np.int64)
        return pairs.max(axis=1) + 1

    def collate(self, samples: list[Any]) -> dict[str, torch.Tensor]:
        """See :func:`collate_pairs`."""
        return collate_pairs(samples)

    def dataloader(self, split: str, *, train: bool) -> DataLoader[Any]:
        """Token-budget batches (``data.max_tokens``) of ``split``.

        Training batches are bucketed (``data.bucket_size``) and shuffled per epoch;
        pairs longer than ``data.max_positions`` tokens are skipped.
        """
        sets = self.datasets()
        if split not in sets:
            raise DataError(
                f"the prepared corpus in '{self.data_dir}' has no '{split}' split (it has: "
                f"{', '.join(sorted(sets))}). For `target`, prepare with --target-src/"
                "--target-tgt; otherwise prepare again."
            )
        ds = sets[split]
        lengths = self._lengths(split, ds)
        d = self.cfg.data
        if train:
            keep = np.flatnonzero(lengths <= d.max_positions)
            if len(keep) < len(lengths):
                ds, lengths = Subset(ds, keep.tolist()), lengths[keep]
            sampler: Any = RankedBatchSampler(lengths.tolist(), d.max_tokens, d.bucket_size,
                                              shuffle=True, seed=self.cfg.train.seed)
        else:
            sampler = token_budget_batches(lengths.tolist(), d.max_tokens)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=self.collate,
                          num_workers=self.cfg.train.num_workers)

    # ------------------------------------------------------------------ model
    def model_spec(self) -> TransformerSpec:
        """Model shape from ``cfg.model`` and the prepared vocabulary."""
        m = self.cfg.model
        vocab = self.vocab
        return TransformerSpec(
            src_vocab=vocab.src_size, tgt_vocab=vocab.tgt_size, d_model=m.d_model,
            heads=m.heads, ffn=m.ffn, encoder_layers=m.encoder_layers,
            decoder_layers=m.decoder_layers, dropout=m.dropout,
            activation_dropout=m.activation_dropout, shared_embeddings=vocab.joint,
            max_positions=max(1024, self.cfg.data.max_positions + 1), positions=m.positions,
        )

    def build_model(self) -> nn.Module:
        """A fresh :class:`Seq2SeqTransformer` sized for the prepared vocabulary."""
        return Seq2SeqTransformer(self.model_spec())

    def _loss(self, model: nn.Module, batch: dict[str, torch.Tensor], smoothing: float
              ) -> StepOutput:
        real = batch["tgt_out"] != PAD  # [B, T]
        # Logits of real positions only, and one log-softmax for both loss terms: the
        # output layer is the costliest part of a small model. Same value as
        # F.cross_entropy(label_smoothing=eps, ignore_index=PAD).
        logits = model(batch["src"], batch["tgt_in"], real)  # [N, V]
        target = batch["tgt_out"][real]  # [N]
        lp = torch.log_softmax(logits.float(), -1)  # [N, V]
        nll = -lp.gather(1, target[:, None]).squeeze(1)  # [N]
        ntok = max(int(real.sum()), 1)
        loss = ((1.0 - smoothing) * nll - smoothing * lp.mean(-1)).sum() / ntok
        return StepOutput(loss, {"nll": nll.detach().sum() / ntok}, weight=float(ntok))

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Label-smoothed cross entropy per target token (``optim.label_smoothing``)."""
        return self._loss(model, batch, self.cfg.optim.label_smoothing)

    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Same loss as training, plus the unsmoothed ``nll``."""
        return self._loss(model, batch, self.cfg.optim.label_smoothing)

    # ------------------------------------------------------------------ quality
    def decode_options(self) -> DecodeOptions:
        """The ``[decode]`` section as :class:`DecodeOptions`."""
        d = self.cfg.decode
        return DecodeOptions(beam=d.beam, length_penalty=d.length_penalty,
                             max_len_a=d.max_len_a, max_len_b=d.max_len_b,
                             no_repeat_ngram=d.no_repeat_ngram)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Decode ``split`` (``[decode]`` settings) and score it with sacreBLEU.

        Returns ``bleu`` and ``chrf``; the signatures are kept in
        :attr:`last_signatures` and, with ``decode.hyp_dir`` set, the hypotheses are
        written to ``<hyp_dir>/hyp-<split>.txt``.
        """
        ds = self.datasets().get(split)
        if ds is None or len(ds) == 0:
            raise DataError(f"split '{split}' of '{self.data_dir}' is missing or empty; "
                            f"nothing to evaluate. {HOW_TO_PREPARE}")
        n = len(ds)
        cap = self.cfg.decode.eval_sentences
        ids = list(range(n))
        if cap and cap < n:  # a fixed random subset, the same at every evaluation
            ids = sorted(random.Random(0).sample(ids, cap))
        records = [ds[i] for i in ids]
        vocab = self.vocab
        refs = [str(r["tgt_text"]) if "tgt_text" in r else str(vocab.tgt.decode(
            np.asarray(r["tgt"]).tolist())) for r in records]
        was_training = model.training
        translator = Translator(model, vocab, self.decode_options(),  # type: ignore[arg-type]
                                self.cfg.decode.max_tokens)
        hyp_ids = translator.translate_ids([np.asarray(r["src"]).tolist() for r in records])
        hyps = [str(h) for h in vocab.tgt.decode(hyp_ids)]
        model.train(was_training)
        scores, sigs = score_corpus(hyps, refs)
        self.last_signatures, self.last_hypotheses = sigs, hyps
        if self.cfg.decode.hyp_dir:
            out = Path(self.cfg.decode.hyp_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"hyp-{split}.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
        return scores

    def after_evaluate(self, run_dir: Path, split: str, model: nn.Module) -> dict[str, Any]:
        """``suite eval translation``: the hypotheses to ``samples/hyp-<split>.txt`` and the
        sacreBLEU signatures of the scores just printed."""
        out = run_dir / "samples" / f"hyp-{split}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(self.last_hypotheses) + "\n", encoding="utf-8")
        return {"signatures": dict(self.last_signatures), "hypotheses": str(out)}

    # ------------------------------------------------------------------ serving
    def serve_decode(self, payload: Any) -> list[int]:
        """``suite serve translation`` request ``{"text": ...}`` -> source ids."""
        from .serving import decode_request

        return decode_request(self.vocab, payload)

    def serve_predict(self, model: nn.Module, examples: list[list[int]]) -> list[str]:
        from .serving import translate_batch

        translator = Translator(model, self.vocab, self.decode_options(),  # type: ignore[arg-type]
                                self.cfg.decode.max_tokens)
        return translate_batch(translator, examples)

    def serve_encode(self, output: str) -> dict[str, str]:
        return {"translation": output}

    def serve_example(self) -> dict[str, str]:
        return {"text": "Ein Mann fährt mit dem Fahrrad."}

    def example_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(src [2, 8], tgt_in [2, 6])`` of valid ids for export and serving."""
        spec = self.model_spec()
        g = torch.Generator().manual_seed(0)
        src = torch.randint(4, spec.src_vocab, (2, 8), generator=g)
        tgt = torch.randint(4, spec.tgt_vocab, (2, 6), generator=g)
        tgt[:, 0] = BOS
        return src, tgt
