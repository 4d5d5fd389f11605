"""The generator: KV-cache equality, sampling filters and grammar-constrained decoding."""

from __future__ import annotations

import pytest
import torch
from torchsuite.plugins.music.events import Piece
from torchsuite.plugins.music.grammar import Grammar, is_well_formed
from torchsuite.plugins.music.model import MusicTransformer, TransformerSpec
from torchsuite.plugins.music.sampling import SamplingOptions, filter_logits, generate
from torchsuite.plugins.music.tokenizer import MusicTokenizer


def tiny_model(tok: MusicTokenizer, seed: int = 0, max_len: int = 512) -> MusicTransformer:
    torch.manual_seed(seed)
    spec = TransformerSpec(tok.vocab_size, d_model=32, n_layers=2, n_heads=2, d_ff=64,
                           dropout=0.0, max_len=max_len)
    return MusicTransformer(spec).eval()


def header(tok: MusicTokenizer, style: str = "bach") -> list[int]:
    return [tok.style_id(style), tok.tok("Meter", 16), tok.tok("Tempo", 8), tok.bar_id]


def test_kv_cache_matches_full_recompute(tok: MusicTokenizer, piece: Piece) -> None:
    model = tiny_model(tok)
    ids = torch.tensor([tok.encode(piece)])
    full = model(ids)  # [1, T, V]
    cache = model.new_cache(1, 256)
    chunks = [model(ids[:, :5], cache=cache)]  # a prompt, then one token at a time
    for i in range(5, ids.shape[1]):
        chunks.append(model(ids[:, i:i + 1], cache=cache))
    assert cache.length == ids.shape[1]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, rtol=1e-4, atol=1e-4)


def test_cached_and_uncached_generation_agree(tok: MusicTokenizer) -> None:
    model = tiny_model(tok, seed=1)
    opts = SamplingOptions(temperature=1.0, top_p=1.0, max_tokens=120)
    a = generate(model, tok, header(tok), options=opts, generator=torch.Generator().manual_seed(3))
    b = generate(model, tok, header(tok), options=opts, use_cache=False,
                 generator=torch.Generator().manual_seed(3))
    assert a == b


def test_padding_mask_ignores_pad_positions(tok: MusicTokenizer, piece: Piece) -> None:
    model = tiny_model(tok)
    ids = tok.encode(piece)[:40]
    padded = torch.tensor([[tok.pad_id] * 7 + ids])  # left padding, masked out
    mask = torch.tensor([[False] * 7 + [True] * len(ids)])
    out = model(padded, pad_mask=mask)[:, 7:]
    torch.testing.assert_close(out, model(torch.tensor([ids])), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_constrained_sampling_is_always_well_formed(tok: MusicTokenizer, seed: int) -> None:
    """An untrained model puts mass everywhere: only the grammar keeps it well-formed."""
    model = tiny_model(tok, seed=seed)
    opts = SamplingOptions(temperature=2.0, top_p=1.0, max_tokens=300)
    out = generate(model, tok, header(tok), options=opts, max_bars=4,
                   generator=torch.Generator().manual_seed(seed))
    assert is_well_formed(tok, out)
    assert out.count(tok.bar_id) <= 4
    piece = tok.decode(out)
    assert all(n.start < piece.end for n in piece.notes)


def test_unconstrained_sampling_of_an_untrained_model_is_ill_formed(tok: MusicTokenizer) -> None:
    """The control for the test above: without the mask the same model breaks the grammar."""
    model = tiny_model(tok)
    opts = SamplingOptions(temperature=2.0, top_p=1.0, max_tokens=100)
    out = generate(model, tok, header(tok), options=opts, constrained=False,
                   generator=torch.Generator().manual_seed(0))
    assert not is_well_formed(tok, out)


def test_generation_stops_at_max_tokens_with_a_closed_piece(tok: MusicTokenizer) -> None:
    model = tiny_model(tok)
    out = generate(model, tok, header(tok), options=SamplingOptions(max_tokens=30),
                   generator=torch.Generator().manual_seed(0))
    assert len(out) <= 31 and out[-1] == tok.end_id
    assert is_well_formed(tok, out)


def test_grammar_rejects_ill_formed_steps(tok: MusicTokenizer) -> None:
    g = Grammar(tok).feed(header(tok))
    g.step(tok.tok("Position", 4))
    with pytest.raises(ValueError, match="not allowed"):
        g.step(tok.tok("Dur", 4))  # a duration without a pitch
    g.step(tok.tok("Pitch", 60))
    g.step(tok.tok("Dur", 4))
    with pytest.raises(ValueError):
        g.step(tok.tok("Position", 2))  # positions only move forward inside a bar
    with pytest.raises(ValueError):
        g.step(tok.tok("Position", 16))  # outside a 16-step bar
    assert not is_well_formed(tok, header(tok))  # no End


def test_filter_logits_top_k_and_top_p() -> None:
    logits = torch.log(torch.tensor([0.5, 0.25, 0.15, 0.1]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(k2).tolist() == [True, True, False, False]
    p = filter_logits(logits, top_p=0.7)  # 0.5 + 0.25 reaches 0.7
    assert torch.isfinite(p).tolist() == [True, True, False, False]
    p1 = filter_logits(logits, top_p=0.4)
    assert torch.isfinite(p1).tolist() == [True, False, False, False]
    assert torch.isfinite(filter_logits(logits)).all()


def test_temperature_sharpens_sampling(tok: MusicTokenizer) -> None:
    """Near-zero temperature is greedy: two seeds give the same sequence."""
    model = tiny_model(tok, seed=2)
    opts = SamplingOptions(temperature=1e-3, top_p=1.0, max_tokens=60)
    a = generate(model, tok, header(tok), options=opts, generator=torch.Generator().manual_seed(0))
    b = generate(model, tok, header(tok), options=opts, generator=torch.Generator().manual_seed(9))
    assert a == b


class _BarLover(MusicTransformer):
    """A model that always wants to start a new bar."""

    def __init__(self, spec: TransformerSpec, bar_id: int) -> None:
        super().__init__(spec)
        self.bar_id = bar_id

    def forward(self, tokens: torch.Tensor, cache=None, pad_mask=None) -> torch.Tensor:
        out = super().forward(tokens, cache=cache, pad_mask=pad_mask).clone()
        out[..., self.bar_id] += 50.0
        return out


def test_a_closing_bar_at_the_bar_limit_ends_the_piece(tok: MusicTokenizer) -> None:
    torch.manual_seed(0)
    spec = TransformerSpec(tok.vocab_size, 32, 1, 2, 64, 0.0, 256)
    model = _BarLover(spec, tok.bar_id).eval()
    out = generate(model, tok, header(tok), max_bars=3, options=SamplingOptions(max_tokens=100),
                   generator=torch.Generator().manual_seed(0))
    assert out == [*header(tok), tok.bar_id, tok.bar_id, tok.end_id]  # not extra notes
