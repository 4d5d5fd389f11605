"""sacreBLEU corpus scores (BLEU and chrF) with their signatures."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["score_corpus"]


def score_corpus(hyps: Sequence[str], refs: Sequence[str]) -> tuple[dict[str, float],
                                                                      dict[str, str]]:
    """BLEU (13a tokenization) and chrF of detokenized ``hyps`` against one reference each.

    Returns:
        ``({"bleu": .., "chrf": ..}, {"bleu": signature, "chrf": signature})``.
    """
    from sacrebleu.metrics import BLEU, CHRF  # imported here: `suite tasks` stays light

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    return ({"bleu": float(b.score), "chrf": float(c.score)},
            {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())})
