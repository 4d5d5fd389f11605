"""``suite serve translation``: a sentence in, its translation out.

::

    POST /v1/tasks/translation/predict   {"text": "Ein Mann fährt Fahrrad."}
    -> {"translation": "A man rides a bike."}

Concurrent requests are batched by the core server; each batch is decoded with the run's
``[decode]`` settings (beam size, length penalty) in token-budget sub-batches.
"""

from __future__ import annotations

from typing import Any

from .translate import Translator

__all__ = ["MAX_CHARS", "decode_request", "translate_batch"]

#: Longest sentence one request may carry (the server also caps the body size).
MAX_CHARS = 2000


def decode_request(vocab: Any, payload: Any) -> list[int]:
    """``{"text": str}`` -> source ids; ``ValueError`` says what is wrong."""
    if not isinstance(payload, dict) or set(payload) != {"text"}:
        raise ValueError('expected a JSON object {"text": "<one sentence>"}.')
    text = payload["text"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError("field 'text' must be a non-empty string.")
    if len(text) > MAX_CHARS:
        raise ValueError(f"field 'text' has {len(text)} characters; at most {MAX_CHARS} "
                         "per request (split long documents into sentences).")
    return [int(i) for i in vocab.src.encode([text.strip()])[0]]


def translate_batch(translator: Translator, sources: list[list[int]]) -> list[str]:
    """Translations of a dynamic batch of encoded sentences, in request order."""
    return [str(s) for s in translator.vocab.tgt.decode(translator.translate_ids(sources))]
