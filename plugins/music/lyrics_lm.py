"""A lyrics language model: sentencepiece subwords + a small decoder-only Transformer.

Trained on the lyrics the chorales carry (``suite music lyrics --from RUN``), in the
corpus' hyphenated form (``Va-ter un-ser im Him-mel-reich``), so sampled text splits
into syllables directly and can be set to music with :func:`.lyrics.lyrics_melody`.
The Transformer is the generator's own architecture (:class:`.model.MusicTransformer`)
over subword ids instead of event ids.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torchsuite.core import DataError

from .model import MusicTransformer, TransformerSpec
from .sampling import filter_logits

__all__ = ["LyricsLM", "train_lyrics_lm"]

PAD, BOS, EOS, UNK = 0, 1, 2, 3


class LyricsLM:
    """A trained subword model plus Transformer (see :func:`train_lyrics_lm`)."""

    def __init__(self, sp: object, model: MusicTransformer) -> None:
        self.sp, self.model = sp, model

    @classmethod
    def load(cls, folder: Path) -> LyricsLM:
        """Load ``spm.model`` and ``lm.pt`` from ``folder`` (``weights_only=True``)."""
        import sentencepiece as spm

        if not (folder / "lm.pt").is_file():
            raise DataError(f"no lyrics model in {folder}; train one with "
                            "`suite music lyrics --from RUN --retrain`.")
        data = torch.load(folder / "lm.pt", map_location="cpu", weights_only=True)
        model = MusicTransformer(TransformerSpec(**data["spec"]))
        model.load_state_dict(data["state"])
        return cls(spm.SentencePieceProcessor(model_file=str(folder / "spm.model")), model.eval())

    def encode(self, text: str) -> list[int]:
        return [BOS, *self.sp.encode(text), EOS]  # type: ignore[attr-defined]

    def nll(self, texts: list[str]) -> float:
        """Mean NLL (nats per subword, EOS included) of ``texts``."""
        self.model.eval()
        total, count = 0.0, 0
        limit = self.model.spec.max_len
        with torch.no_grad():
            for text in texts:
                ids = torch.tensor([self.encode(text)[:limit]])
                if ids.shape[1] < 2:
                    continue
                logits = self.model(ids[:, :-1])  # [1, T-1, V]
                total += float(F.cross_entropy(logits[0], ids[0, 1:], reduction="sum"))
                count += ids.shape[1] - 1
        return total / max(count, 1)

    def sample(self, prompt: str = "", *, max_tokens: int = 48, temperature: float = 0.9,
               top_p: float = 0.9, seed: int = 0) -> str:
        """Continue ``prompt`` until EOS or ``max_tokens`` subwords; the text (prompt
        included) cut after its last phrase-ending punctuation when there is one."""
        gen = torch.Generator().manual_seed(seed)
        ids = self.encode(prompt)[:-1]  # without EOS
        cache = self.model.new_cache(1, min(self.model.spec.max_len, len(ids) + max_tokens))
        pending = torch.tensor([ids])
        with torch.no_grad():
            for _ in range(max_tokens):
                if cache.length + pending.shape[1] > cache.max_len:
                    break
                logits = self.model(pending, cache=cache)[0, -1].float()
                logits[PAD] = logits[UNK] = float("-inf")
                logits = filter_logits(logits / max(temperature, 1e-4), 0, top_p)
                nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
                if nxt == EOS:
                    break
                ids.append(nxt)
                pending = torch.tensor([[nxt]])
        text = self.sp.decode(ids[1:])  # type: ignore[attr-defined]
        cut = max(text.rfind(c) for c in ",.;:!?")
        return text[:cut + 1] if cut > len(prompt) else text


def train_lyrics_lm(texts: list[str], folder: Path, *, vocab_size: int = 400, steps: int = 300,
                    d_model: int = 96, layers: int = 2, seq_len: int = 96, batch_size: int = 16,
                    lr: float = 2e-3, seed: int = 0, log_every: int = 100) -> LyricsLM:
    """Train sentencepiece and the Transformer on ``texts``; write them into ``folder``."""
    import sentencepiece as spm

    texts = [t.strip() for t in texts if t.strip()]
    if len(texts) < 2:
        raise DataError("the lyrics model needs texts: the prepared train split has no lyrics "
                        "(the Bach chorales carry them; prepare data with data.styles "
                        "including bach).")
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "lyrics.txt"
    corpus.write_text("\n".join(texts) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "spm"), vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK, minloglevel=2, num_threads=1)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spm.model"))
    data = [torch.tensor([BOS, *sp.encode(t), EOS]) for t in texts]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    spec = TransformerSpec(sp.get_piece_size(), d_model, layers, max(2, d_model // 32),
                           4 * d_model, 0.1, max(seq_len, 256))
    model = MusicTransformer(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / max(steps, 1))))
    t0 = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        rows = []
        for k in torch.randint(len(data), (batch_size,), generator=gen).tolist():
            seq = data[k]
            start = int(torch.randint(max(1, len(seq) - seq_len), (1,), generator=gen))
            rows.append(seq[start:start + seq_len + 1])
        width = max(len(r) for r in rows)
        batch = torch.full((len(rows), width), PAD)
        for i, r in enumerate(rows):
            batch[i, :len(r)] = r
        logits = model(batch[:, :-1])  # [B, T, V]
        target = batch[:, 1:].masked_fill(batch[:, 1:] == PAD, -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps):
            print(f"lyrics model step {step}/{steps} loss {loss.item():.3f} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
    model.eval()
    tmp = folder / "lm.pt.tmp"
    torch.save({"spec": asdict(spec), "state": model.state_dict()}, tmp)
    tmp.replace(folder / "lm.pt")
    return LyricsLM(sp, model)
