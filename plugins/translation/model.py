"""Pre-norm Transformer encoder-decoder with an incremental (key/value cached) decoder.

Layers are written out (rather than ``nn.Transformer``) so decoding can keep, per
decoder layer, the self-attention keys/values of the prefix and the cross-attention
keys/values of the source, and reorder them when the beam changes.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``D`` d_model,
``H`` heads, ``V`` vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .vocab import PAD

__all__ = [
    "DecoderCache",
    "Seq2SeqTransformer",
    "TransformerSpec",
    "apply_rotary",
    "rotary_tables",
    "sinusoidal_positions",
]


@dataclass(frozen=True)
class TransformerSpec:
    """Everything needed to rebuild the model (stored with the run's config)."""

    src_vocab: int
    tgt_vocab: int
    d_model: int = 256
    heads: int = 4
    ffn: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.2
    activation_dropout: float = 0.1
    shared_embeddings: bool = True
    max_positions: int = 1024
    positions: str = "sinusoidal"  # or "rotary" (RoPE on self-attention queries/keys)


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """``[n, d]`` fixed sinusoidal position encodings (Vaswani et al.)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * inv)
    pe[:, 1::2] = torch.cos(pos * inv[: d // 2])
    return pe


def rotary_tables(n: int, dh: int) -> torch.Tensor:
    """``[2, n, dh]`` cos/sin tables of rotary position embeddings (Su et al., RoFormer)."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, dh, 2, dtype=torch.float32) / dh))  # [dh/2]
    ang = torch.arange(n, dtype=torch.float32)[:, None] * inv[None, :]  # [n, dh/2]
    ang = torch.cat([ang, ang], -1)  # [n, dh]
    return torch.stack([ang.cos(), ang.sin()])


def apply_rotary(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, H, T, Dh]`` by the positions of ``table`` ``[2, T, Dh]``."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * table[0].to(x.dtype) + rotated * table[1].to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention over ``F.scaled_dot_product_attention``."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.dropout = dropout

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, L, D]`` -> keys and values ``[B, H, L, Dh]``."""
        b, n, _ = x.shape
        k, v = self.kv(x).view(b, n, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        rope: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Queries from ``x`` ``[B, T, D]`` over keys/values ``[B, H, L, Dh]``.

        Args:
            mask: Bool ``[B, 1, 1|T, L]``, True where a key may be attended.
            causal: Lower-triangular mask (training / uncached decoding).
            rope: Rotary table ``[2, T, Dh]`` of the query positions (keys come rotated).
        """
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.h, self.dh).transpose(1, 2)  # [B, H, T, Dh]
        if rope is not None:
            q = apply_rotary(q, rope)
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )  # [B, H, T, Dh]
        return self.out(o.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    """Position-wise ReLU feed-forward block."""

    def __init__(self, d: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    """Pre-norm: x + drop(attn(norm(x))), then x + drop(ffn(norm(x)))."""

    def __init__(self, s: TransformerSpec) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(s.d_model), nn.LayerNorm(s.d_model)
        self.attn = Attention(s.d_model, s.heads, s.dropout)
        self.ffn = FeedForward(s.d_model, s.ffn, s.activation_dropout)
        self.drop = nn.Dropout(s.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                rope: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        k, v = self.attn.project_kv(h)
        if rope is not None:
            k = apply_rotary(k, rope)
        x = x + self.drop(self.attn(h, k, v, mask, rope=rope))
        return x + self.drop(self.ffn(self.norm2(x)))


@dataclass
class DecoderCache:
    """Per decoder layer: self-attention keys/values of the prefix ``[N, H, t, Dh]`` and
    cross-attention keys/values of the source ``[N, H, S, Dh]``."""

    self_k: list[torch.Tensor | None]
    self_v: list[torch.Tensor | None]
    cross_k: list[torch.Tensor]
    cross_v: list[torch.Tensor]
    steps: int = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` (beam search picked new parents).

        Cross-attention entries stay: parents always come from the same sentence, whose
        beams share one source.
        """
        for store in (self.self_k, self.self_v):
            for i, t in enumerate(store):
                if t is not None:
                    store[i] = t.index_select(0, index)


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention and feed-forward."""

    def __init__(self, s: TransformerSpec) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(s.d_model) for _ in range(3))
        self.self_attn = Attention(s.d_model, s.heads, s.dropout)
        self.cross_attn = Attention(s.d_model, s.heads, s.dropout)
        self.ffn = FeedForward(s.d_model, s.ffn, s.activation_dropout)
        self.drop = nn.Dropout(s.dropout)

    def forward(
        self,
        y: torch.Tensor,
        cross_k: torch.Tensor,
        cross_v: torch.Tensor,
        src_mask: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        rope: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``y`` ``[N, T, D]`` (T = 1 with ``past``); returns output and the new self k/v.

        ``rope``: rotary table ``[2, T, Dh]`` of these T positions (keys are cached rotated).
        """
        h = self.norm1(y)
        k, v = self.self_attn.project_kv(h)  # [N, H, T, Dh]
        if rope is not None:
            k = apply_rotary(k, rope)
        if past is not None:  # incremental: one new position attends to the whole prefix
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            y = y + self.drop(self.self_attn(h, k, v, rope=rope))
        else:
            y = y + self.drop(self.self_attn(h, k, v, causal=True, rope=rope))
        y = y + self.drop(self.cross_attn(self.norm2(y), cross_k, cross_v, src_mask))
        y = y + self.drop(self.ffn(self.norm3(y)))
        return y, (k, v)


class Seq2SeqTransformer(nn.Module):
    """The translation model; ``forward(src, tgt_in)`` returns logits ``[B, T, V]``."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.spec = spec
        d = spec.d_model
        self.tgt_embed = nn.Embedding(spec.tgt_vocab, d, padding_idx=PAD)
        self.src_embed = (self.tgt_embed if spec.shared_embeddings
                          else nn.Embedding(spec.src_vocab, d, padding_idx=PAD))
        nn.init.normal_(self.tgt_embed.weight, 0.0, d**-0.5)
        if not spec.shared_embeddings:
            nn.init.normal_(self.src_embed.weight, 0.0, d**-0.5)
        with torch.no_grad():
            self.tgt_embed.weight[PAD].zero_()
            self.src_embed.weight[PAD].zero_()
        if spec.positions not in ("sinusoidal", "rotary"):
            raise ValueError(f"unknown positions {spec.positions!r}")
        self.rotary = spec.positions == "rotary"
        # Fixed tables, rebuilt from the spec (not saved in checkpoints).
        self.register_buffer("positions", sinusoidal_positions(spec.max_positions, d),
                             persistent=False)
        self.register_buffer("rope", rotary_tables(spec.max_positions, d // spec.heads),
                             persistent=False)
        self.encoder = nn.ModuleList(EncoderLayer(spec) for _ in range(spec.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(spec) for _ in range(spec.decoder_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(spec.dropout)
        self.scale = math.sqrt(d)

    def _embed(self, table: nn.Embedding, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        n = ids.shape[1]
        if offset + n > self.spec.max_positions:
            raise ValueError(f"sequence of {offset + n} tokens exceeds max_positions "
                             f"{self.spec.max_positions}")
        x = table(ids) * self.scale
        if not self.rotary:
            x = x + self.positions[offset:offset + n]  # [T, D]
        return self.drop(x)

    def _rope(self, offset: int, n: int) -> torch.Tensor | None:
        """Rotary table ``[2, n, Dh]`` of positions ``offset..offset+n-1`` (None: sinusoidal)."""
        return self.rope[:, offset:offset + n] if self.rotary else None

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src`` ``[B, S]`` -> memory ``[B, S, D]`` and key mask ``[B, 1, 1, S]``."""
        mask = (src != PAD)[:, None, None, :]
        x = self._embed(self.src_embed, src)
        rope = self._rope(0, src.shape[1])
        for layer in self.encoder:
            x = layer(x, mask, rope)
        return self.enc_norm(x), mask

    def logits(self, y: torch.Tensor) -> torch.Tensor:
        """Output projection tied to the target embedding: ``[..., D]`` -> ``[..., V]``."""
        return F.linear(self.dec_norm(y), self.tgt_embed.weight)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
               keep: torch.Tensor | None = None) -> torch.Tensor:
        """Full-prefix decoder: ``tgt_in`` ``[B, T]`` -> logits ``[B, T, V]``.

        Args:
            keep: Optional bool ``[B, T]``: project only these positions and return
                ``[N, V]`` logits (N = keep.sum()); training skips padding this way, which
                saves most of the cost of the output layer on a small model.
        """
        y = self._embed(self.tgt_embed, tgt_in)
        rope = self._rope(0, tgt_in.shape[1])
        for layer in self.decoder:
            k, v = layer.cross_attn.project_kv(memory)
            y, _ = layer(y, k, v, src_mask, rope=rope)
        return self.logits(y if keep is None else y[keep])

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]`` (``[N, V]`` with ``keep``) for ``src``
        ``[B, S]`` and ``tgt_in`` ``[B, T]``."""
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask, keep)

    # -- incremental decoding
    def start_cache(self, memory: torch.Tensor) -> DecoderCache:
        """Cross-attention keys/values computed once per source (``memory`` ``[N, S, D]``)."""
        ks, vs = zip(*(layer.cross_attn.project_kv(memory) for layer in self.decoder),
                     strict=True)
        n = len(self.decoder)
        return DecoderCache([None] * n, [None] * n, list(ks), list(vs))

    def decode_step(self, last: torch.Tensor, src_mask: torch.Tensor, cache: DecoderCache
                    ) -> torch.Tensor:
        """One incremental step: ``last`` ``[N]`` tokens -> next-token logits ``[N, V]``."""
        y = self._embed(self.tgt_embed, last[:, None], offset=cache.steps)  # [N, 1, D]
        rope = self._rope(cache.steps, 1)
        for i, layer in enumerate(self.decoder):
            past = None
            if cache.self_k[i] is not None:
                past = (cache.self_k[i], cache.self_v[i])  # type: ignore[assignment]
            y, (k, v) = layer(y, cache.cross_k[i], cache.cross_v[i], src_mask, past, rope)
            cache.self_k[i], cache.self_v[i] = k, v
        cache.steps += 1
        return self.logits(y[:, 0])
