"""Text in, text out: batch sentences by length, decode, detokenize, restore input order.

:class:`Translator` is what ``evaluate()`` and ``suite translation translate`` share.
Sentences are sorted by length and cut into source-token-budget batches (core
:func:`~torchsuite.core.data.token_budget_batches`) so little compute goes to padding;
outputs are put back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchsuite.core.data import token_budget_batches

from .decode import DecodeOptions, beam_search, greedy
from .model import Seq2SeqTransformer
from .vocab import EOS, PAD, Vocab

__all__ = ["Translator", "pad_sources"]


def pad_sources(ids: Sequence[Sequence[int]], device: torch.device | str = "cpu",
                limit: int | None = None) -> torch.Tensor:
    """Source ids (no eos) -> ``[B, S]`` long tensor with eos appended, padded with PAD.

    Args:
        limit: Truncate each source to ``limit - 1`` pieces (the model's position table).
    """
    rows = [list(x)[: limit - 1] if limit else list(x) for x in ids]
    width = max(len(r) for r in rows) + 1
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r) + 1] = torch.tensor([*r, EOS], dtype=torch.long)
    return out.to(device)


class Translator:
    """Translate sentences with a trained model.

    Args:
        model: The seq2seq model (put into eval mode here).
        vocab: Source/target sentencepiece processors of the prepared corpus.
        opts: Beam size, length penalty, length limits.
        max_tokens: Source-token budget per batch (``sentences * longest``); the beam
            multiplies the decoder's work by ``opts.beam``.
    """

    def __init__(self, model: Seq2SeqTransformer, vocab: Vocab, opts: DecodeOptions,
                 max_tokens: int = 4000) -> None:
        self.model, self.vocab, self.opts = model.eval(), vocab, opts
        self.max_tokens = max(1, max_tokens)
        self.device = next(model.parameters()).device

    def translate_ids(self, sources: Sequence[Sequence[int]],
                      progress: Callable[[int], None] | None = None) -> list[list[int]]:
        """Target ids (no bos/eos) for each source id list, in input order."""
        out: list[list[int]] = [[] for _ in sources]
        if not sources:
            return out
        limit = self.model.spec.max_positions
        lengths = [min(len(s), limit - 1) + 1 for s in sources]
        for batch in token_budget_batches(lengths, self.max_tokens):
            src = pad_sources([sources[i] for i in batch], self.device, limit)
            if self.opts.beam > 1:
                hyps = beam_search(self.model, src, self.opts)
            else:
                hyps = greedy(self.model, src, self.opts)
            for i, h in zip(batch, hyps, strict=True):
                out[i] = h
            if progress is not None:
                progress(len(batch))
        return out

    def translate(self, texts: Sequence[str],
                  progress: Callable[[int], None] | None = None) -> list[str]:
        """Detokenized translations of ``texts`` (one sentence each), in input order."""
        ids = self.vocab.src.encode([t.strip() for t in texts])
        hyps = self.translate_ids(ids, progress)
        return [str(s) for s in self.vocab.tgt.decode(hyps)]
