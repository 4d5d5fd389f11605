"""A small style classifier over token windows: judges style transfer.

A 1-D CNN reads a window of event tokens whose Style token is blanked (so the answer
is not in the input), pools over time and predicts the style. A piece is classified
by averaging the logits of its evaluation windows. Trained in seconds on the
prepared ``train`` split; its accuracy on held-out real pieces says how far its
verdict on transferred pieces can be trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from torchsuite.core import DataError

from .dataset import all_windows, collate_windows, piece_tokens, random_window
from .events import Piece
from .tokenizer import MusicTokenizer

__all__ = ["StyleClassifier", "load_classifier", "save_classifier", "train_style_classifier"]

FILENAME = "style_classifier.pt"


@dataclass(frozen=True)
class ClassifierSpec:
    vocab_size: int
    n_styles: int
    d_model: int = 64
    kernel: int = 5
    seq_len: int = 256


class StyleClassifier(nn.Module):
    """Token ids ``[B, T]`` (+ mask ``[B, T]``) -> style logits ``[B, n_styles]``."""

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        self.spec = spec
        d = spec.d_model
        self.embed = nn.Embedding(spec.vocab_size, d)
        self.conv1 = nn.Conv1d(d, d, spec.kernel, padding=spec.kernel // 2)
        self.conv2 = nn.Conv1d(d, d, spec.kernel, padding=spec.kernel // 2, dilation=1)
        self.head = nn.Linear(d, spec.n_styles)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).transpose(1, 2)  # [B, D, T]
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # [B, T, D]
        m = mask.unsqueeze(-1).float()  # [B, T, 1]
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # [B, D]
        return self.head(pooled)  # [B, S]

    def piece_logits(self, tok: MusicTokenizer, tokens: np.ndarray) -> torch.Tensor:
        """Mean logits ``[S]`` over the evaluation windows of one encoded piece."""
        batch = _blank(collate_windows(all_windows(tok, tokens, self.spec.seq_len), tok.pad_id),
                       tok)
        device = self.embed.weight.device
        with torch.no_grad():
            return self(batch["tokens"].to(device), batch["mask"].to(device)).mean(0)

    def predict_proba(self, tok: MusicTokenizer, piece: Piece) -> dict[str, float]:
        """Style probabilities of a piece (the piece's own Style token is ignored)."""
        self.eval()
        tokens = np.asarray(tok.encode(piece), dtype=np.int64)
        probs = torch.softmax(self.piece_logits(tok, tokens), dim=-1).tolist()
        return dict(zip(tok.spec.styles, probs, strict=False))


def _blank(batch: dict[str, torch.Tensor], tok: MusicTokenizer) -> dict[str, torch.Tensor]:
    """Labels from the Style token, which is then replaced by padding."""
    tokens = batch["tokens"].clone()
    sr = tok.ranges["Style"]
    is_style = (tokens >= sr.start) & (tokens < sr.stop)
    labels = tokens[:, 0] - sr.start
    tokens[is_style] = tok.pad_id
    return {"tokens": tokens, "mask": tokens != tok.pad_id, "labels": labels}


def _labels(ds: Dataset, tok: MusicTokenizer) -> list[int]:
    return [int(piece_tokens(ds, i)[0]) - tok.ranges["Style"].start
            for i in range(len(ds))]  # type: ignore[arg-type]


def piece_accuracy(clf: StyleClassifier, tok: MusicTokenizer, ds: Dataset) -> float:
    """Fraction of the pieces of ``ds`` whose style the classifier gets right."""
    clf.eval()
    right = 0
    labels = _labels(ds, tok)
    for i, label in enumerate(labels):
        right += int(clf.piece_logits(tok, piece_tokens(ds, i)).argmax()) == label
    return right / max(len(labels), 1)


def train_style_classifier(train: Dataset, tok: MusicTokenizer, *, steps: int = 300,
                           batch_size: int = 32, seq_len: int = 256, lr: float = 2e-3,
                           seed: int = 0, log_every: int = 100) -> StyleClassifier:
    """Train on random windows of the pieces of ``train`` (a :class:`PieceWindows`,
    possibly inside ``Subset``); classes are balanced by sampling each style equally."""
    labels = _labels(train, tok)
    styles = sorted(set(labels))
    if len(styles) < 2:
        raise DataError("the style classifier needs pieces of at least two styles in the "
                        "train split; prepare data with several data.styles.")
    by_style = {s: [i for i, lab in enumerate(labels) if lab == s] for s in styles}
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = StyleClassifier(ClassifierSpec(tok.vocab_size, len(tok.spec.styles), seq_len=seq_len))
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=0.01)
    t0 = time.perf_counter()
    clf.train()
    for step in range(1, steps + 1):
        picks = torch.randint(len(styles), (batch_size,), generator=gen).tolist()
        idx = [by_style[styles[k]][int(torch.randint(len(by_style[styles[k]]), (1,),
                                                      generator=gen))] for k in picks]
        windows = [random_window(tok, piece_tokens(train, i), seq_len) for i in idx]
        batch = _blank(collate_windows(windows, tok.pad_id), tok)
        loss = F.cross_entropy(clf(batch["tokens"], batch["mask"]), batch["labels"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log_every and (step % log_every == 0 or step == steps):
            print(f"style classifier step {step}/{steps} loss {loss.item():.3f} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
    return clf.eval()


def save_classifier(clf: StyleClassifier, path: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the weights and spec (loadable with ``weights_only=True``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"spec": vars(clf.spec), "state": clf.state_dict(), **(extra or {})}, tmp)
    tmp.replace(path)
    return path


def load_classifier(path: Path) -> StyleClassifier:
    """A classifier written by :func:`save_classifier`."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    clf = StyleClassifier(ClassifierSpec(**data["spec"]))
    clf.load_state_dict(data["state"])
    return clf.eval()
