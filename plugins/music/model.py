"""Decoder-only Transformer with rotary position embeddings (RoPE) and a KV cache.

RoPE gives attention relative position information (a score depends on the
query-key distance), which suits music's repeated patterns. The cache is
preallocated per layer so one incremental step costs O(context) attention
instead of recomputing every earlier position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KVCache", "MusicTransformer", "TransformerSpec"]


@dataclass(frozen=True)
class TransformerSpec:
    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    max_len: int = 4096
    rope_base: float = 10000.0


class KVCache:
    """Preallocated keys/values for every layer: ``[L, B, H, max_len, Dh]`` each."""

    def __init__(self, spec: TransformerSpec, batch: int, max_len: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        dh = spec.d_model // spec.n_heads
        shape = (spec.n_layers, batch, spec.n_heads, max_len, dh)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0
        self.max_len = max_len


def _rope_tables(dh: int, max_len: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (base ** (torch.arange(0, dh, 2, dtype=torch.float32) / dh))  # [Dh/2]
    ang = torch.arange(max_len, dtype=torch.float32)[:, None] * inv[None, :]  # [T, Dh/2]
    return ang.cos(), ang.sin()


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, T, Dh]; cos/sin: [T, Dh/2]; rotate (even, odd) pairs
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class _Block(nn.Module):
    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.h = spec.n_heads
        self.norm1 = nn.LayerNorm(spec.d_model)
        self.qkv = nn.Linear(spec.d_model, 3 * spec.d_model)
        self.proj = nn.Linear(spec.d_model, spec.d_model)
        self.norm2 = nn.LayerNorm(spec.d_model)
        self.ff = nn.Sequential(nn.Linear(spec.d_model, spec.d_ff), nn.GELU(),
                                nn.Linear(spec.d_ff, spec.d_model))
        self.drop = nn.Dropout(spec.dropout)
        self.p_drop = spec.dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None, layer: int, pad_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.h, d // self.h).permute(
            2, 0, 3, 1, 4)  # each [B, H, T, Dh]
        q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.length
            cache.k[layer, :, :, past:past + t] = k
            cache.v[layer, :, :, past:past + t] = v
            k = cache.k[layer, :, :, :past + t]
            v = cache.v[layer, :, :, :past + t]
        if past == 0 and pad_mask is None:
            attn_mask, causal = None, True
        else:  # queries at past..past+t-1 see keys 0..their own position
            qi = torch.arange(past, past + t, device=x.device)[:, None]
            attn_mask = torch.arange(past + t, device=x.device)[None, :] <= qi  # [T, S]
            if pad_mask is not None:  # [B, S] True = real token
                attn_mask = attn_mask[None, None] & pad_mask[:, None, None, :]
            causal = False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=causal,
            dropout_p=self.p_drop if self.training else 0.0)  # [B, H, T, Dh]
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class MusicTransformer(nn.Module):
    """Token ids ``[B, T]`` -> next-token logits ``[B, T, V]``."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        if spec.d_model % spec.n_heads or (spec.d_model // spec.n_heads) % 2:
            raise ValueError("d_model must split into an even head size across n_heads")
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.d_model)
        self.blocks = nn.ModuleList(_Block(spec) for _ in range(spec.n_layers))
        self.norm = nn.LayerNorm(spec.d_model)
        self.head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied: fewer parameters, better small-data fit
        cos, sin = _rope_tables(spec.d_model // spec.n_heads, spec.max_len, spec.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        nn.init.normal_(self.embed.weight, std=0.02)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        p = self.embed.weight
        return KVCache(self.spec, batch, max_len or self.spec.max_len, p.device, p.dtype)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None,
                pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for ``tokens`` [B, T]; with ``cache``, positions continue after the cached ones
        and the cache grows by T. ``pad_mask`` [B, T] marks real tokens (no cache)."""
        t = tokens.shape[1]
        past = cache.length if cache is not None else 0
        if past + t > self.spec.max_len:
            raise ValueError(f"sequence of {past + t} tokens exceeds max_len {self.spec.max_len}")
        cos = self.rope_cos[past:past + t]
        sin = self.rope_sin[past:past + t]
        x = self.embed(tokens)  # [B, T, D]
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, i, pad_mask)
        if cache is not None:
            cache.length = past + t
        return self.head(self.norm(x))  # [B, T, V]
