"""The built-in translation plugin: Transformer machine translation on parallel corpora.

Quick start (German -> English; any aligned pair of files, .gz or a two-column TSV)::

    suite prepare translation --src train.de --tgt train.en \\
        [--dev-src dev.de --dev-tgt dev.en] [--target-src dom.de --target-tgt dom.en]
    suite train translation                 # best checkpoint by dev BLEU
    suite translation evaluate --from latest --beam 5       # sacreBLEU + signature
    suite translation translate --from latest < in.de > out.en
    suite translation average --from latest --last 5        # checkpoints/averaged.pt

Modules: :mod:`.corpus` (streaming readers), :mod:`.cleaning`, :mod:`.vocab`
(sentencepiece), :mod:`.prepare`, :mod:`.model` (pre-norm Transformer with a
key/value cache), :mod:`.decode` (greedy, batched beam search), :mod:`.translate`,
:mod:`.scoring` (sacreBLEU), :mod:`.average`, :mod:`.task`, :mod:`.commands`.
"""
