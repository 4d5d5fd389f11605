"""Decoding: greedy vs beam 1, cached vs uncached, batching and limits."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchsuite.plugins.translation.decode import DecodeOptions, beam_search, greedy
from torchsuite.plugins.translation.model import Seq2SeqTransformer, TransformerSpec
from torchsuite.plugins.translation.translate import pad_sources
from torchsuite.plugins.translation.vocab import EOS


@pytest.fixture(scope="module", params=["sinusoidal", "rotary"])
def model(request: pytest.FixtureRequest) -> Seq2SeqTransformer:
    torch.manual_seed(0)
    m = Seq2SeqTransformer(TransformerSpec(src_vocab=40, tgt_vocab=40, d_model=32, heads=4,
                                           ffn=64, encoder_layers=2, decoder_layers=2,
                                           dropout=0.0, activation_dropout=0.0,
                                           max_positions=128, positions=request.param))
    with torch.no_grad():  # sharper output distributions than at init: fewer near-ties
        m.tgt_embed.weight.mul_(4.0)
    return m.eval()


@pytest.fixture(scope="module")
def sources() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(4, 40, (n,), generator=g).tolist() for n in (3, 9, 5, 12, 7, 1)]
    return pad_sources(rows)


def test_forward_shapes_and_teacher_forcing_matches_incremental(
    model: Seq2SeqTransformer, sources: torch.Tensor,
) -> None:
    tgt = torch.randint(4, 40, (sources.shape[0], 6))
    full = model(sources, tgt)  # [B, T, V]
    assert full.shape == (sources.shape[0], 6, 40)
    memory, mask = model.encode(sources)
    cache = model.start_cache(memory)
    steps = [model.decode_step(tgt[:, t], mask, cache) for t in range(6)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)


def test_cached_and_uncached_decoding_agree(model: Seq2SeqTransformer,
                                            sources: torch.Tensor) -> None:
    for beam in (1, 4):
        opts = DecodeOptions(beam=beam, max_len_a=5, max_len_b=1.0)
        fast = (beam_search if beam > 1 else greedy)(model, sources, opts)
        slow = (beam_search if beam > 1 else greedy)(
            model, sources, DecodeOptions(beam=beam, max_len_a=5, max_len_b=1.0,
                                          incremental=False))
        assert fast == slow


def test_beam_of_one_equals_greedy(model: Seq2SeqTransformer, sources: torch.Tensor) -> None:
    opts = DecodeOptions(beam=1, max_len_a=6, max_len_b=1.0)
    assert beam_search(model, sources, opts) == greedy(model, sources, opts)


def test_batched_beam_equals_one_sentence_at_a_time(model: Seq2SeqTransformer,
                                                    sources: torch.Tensor) -> None:
    opts = DecodeOptions(beam=3, max_len_a=5, max_len_b=1.0)
    batched = beam_search(model, sources, opts)
    for i in range(sources.shape[0]):
        row = sources[i : i + 1]
        row = row[:, : int((row != 0).sum())]  # without the batch's padding
        assert beam_search(model, row, opts) == [batched[i]]


def test_length_limit_and_special_tokens(model: Seq2SeqTransformer,
                                         sources: torch.Tensor) -> None:
    opts = DecodeOptions(beam=3, max_len_a=2, max_len_b=0.5)
    src_len = (sources != 0).sum(1)
    for hyp, n in zip(beam_search(model, sources, opts), src_len.tolist(), strict=True):
        assert len(hyp) + 1 <= int(2 + 0.5 * n)  # eos counts towards the limit
        assert all(t >= 4 and t != EOS for t in hyp)


def test_beam_scores_at_least_as_well_as_greedy(model: Seq2SeqTransformer,
                                                sources: torch.Tensor) -> None:
    """Beam search finds a hypothesis at least as likely (length-normalised) as greedy."""

    def score(src: torch.Tensor, hyp: list[int]) -> float:
        tgt_in = torch.tensor([[2, *hyp]])
        with torch.no_grad():
            lp = torch.log_softmax(model(src, tgt_in)[0], -1)
        return float(lp[torch.arange(len(hyp) + 1), torch.tensor([*hyp, EOS])].sum()) / (
            len(hyp) + 1)

    opts = dict(max_len_a=5, max_len_b=1.0, length_penalty=1.0)
    for i in (0, 3, 5):
        row = sources[i : i + 1, : int((sources[i] != 0).sum())]
        g = greedy(model, row, DecodeOptions(beam=1, **opts))[0]
        b = beam_search(model, row, DecodeOptions(beam=5, **opts))[0]
        assert score(row, b) >= score(row, g) - 1e-5


def test_no_repeat_ngram_blocks_repeats(model: Seq2SeqTransformer,
                                        sources: torch.Tensor) -> None:
    for beam in (1, 3):
        opts = DecodeOptions(beam=beam, max_len_a=30, max_len_b=2.0, no_repeat_ngram=2)
        for hyp in (beam_search if beam > 1 else greedy)(model, sources, opts):
            bigrams = list(itertools.pairwise(hyp))
            assert len(bigrams) == len(set(bigrams))


def test_rotary_attention_depends_on_relative_position_only() -> None:
    from torchsuite.plugins.translation.model import apply_rotary, rotary_tables

    table = rotary_tables(64, 8)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(i: int, j: int) -> float:
        qi, kj = apply_rotary(q, table[:, i : i + 1]), apply_rotary(k, table[:, j : j + 1])
        return float((qi * kj).sum())

    assert abs(score(10, 7) - score(40, 37)) < 1e-4
    assert abs(score(10, 7) - score(10, 3)) > 1e-3
