"""Config of the translation task: ``[data]``, ``[model]``, ``[decode]``, ``[train]``, ``[optim]``.

Defaults are the recipe measured on Multi30k de->en on 2 shared CPU cores (about an
hour; 34.8 dev BLEU from best.pt, 35.4 averaging the last 3 checkpoints, beam 5):
joint 5k unigram vocabulary, pre-norm d_model 128 / ffn 512 / 4 heads, 3+3 layers,
dropout 0.1, label smoothing 0.1, lr 1e-3 with 200 warm-up steps then inverse-sqrt
decay, 3k-token batches, 2400 steps. For corpora of millions of pairs raise
model.d_model (256-512), data.vocab_size (8k-32k) and train.max_steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torchsuite.core import (
    ConfigError,
    DataConfig,
    OptimConfig,
    TrainableConfig,
    TrainConfig,
    option,
)

__all__ = [
    "DecodeConfig",
    "ModelConfig",
    "TranslationConfig",
    "TranslationData",
    "TranslationOptim",
    "TranslationTrain",
]


@dataclass
class TranslationData(DataConfig):
    """Raw corpora for ``suite prepare translation`` and batching of the prepared shards."""

    src: str = option(
        "", "source-side training text (one sentence a line; .gz ok), or a TSV "
        "(src<TAB>tgt[<TAB>doc id]) holding both sides when data.tgt is empty"
    )
    tgt: str = option("", "target-side training text, aligned line by line with data.src")
    dev_src: str = option(
        "", "optional source side of a dev corpus (else dev is hashed off data.src)"
    )
    dev_tgt: str = option("", "target side of the dev corpus given by data.dev_src")
    target_src: str = option("", "optional in-domain corpus (source side) for the `target` split")
    target_tgt: str = option("", "target side of the in-domain corpus given by data.target_src")
    errors: str = option(
        "strict", "undecodable UTF-8: strict stops with file and line, replace uses U+FFFD",
        choices=("strict", "replace"),
    )
    overwrite: bool = option(False, "replace an existing prepared data set in data.dir")
    dev_ratio: float = option(
        0.01, "fraction of pairs hashed into dev (ignored when data.dev_src is given)",
        ge=0.0, le=0.5,
    )
    test_ratio: float = option(0.01, "fraction of pairs hashed into test", ge=0.0, le=0.5)
    salt: str = option("translation-v1", "split salt: pairs go to splits by hash(salt, pair)")
    min_words: int = option(1, "drop pairs with a side shorter than this many words", ge=0)
    max_words: int = option(200, "drop pairs with a side longer than this many words", ge=1)
    max_ratio: float = option(
        3.0, "drop pairs whose word-length ratio (longer/shorter) exceeds this", ge=1.0
    )
    dedup: bool = option(True, "drop exact duplicate pairs")
    dedup_capacity: int = option(
        50_000_000, "pairs the duplicate filter is sized for (a Bloom filter, 1% false "
        "positives at capacity; ~60 MB per 50M)", ge=1000,
    )
    vocab_size: int = option(5000, "sentencepiece vocabulary size (per model if not joint)", ge=16)
    spm_type: str = option("unigram", "sentencepiece model type", choices=("unigram", "bpe"))
    joint_vocab: bool = option(
        True, "one sentencepiece model for both languages (shared embeddings)"
    )
    spm_sample: int = option(
        1_000_000, "sentences per language kept in the random reservoir sentencepiece trains on",
        ge=100,
    )
    character_coverage: float = option(1.0, "sentencepiece character coverage", ge=0.9, le=1.0)
    workers: int = option(2, "encoding worker processes (0: encode in this process)", ge=0)
    chunk_lines: int = option(2000, "pairs per encoding job", ge=1)
    max_tokens: int = option(
        3000, "token budget per batch: sentences x longer side (eos/bos included)", ge=32
    )
    bucket_size: int = option(4096, "pairs sorted together when cutting token-budget batches", ge=1)
    max_positions: int = option(
        256, "pairs longer than this many tokens are skipped at training", ge=8
    )

    def sources(self) -> dict[str, tuple[str, str]]:
        """The corpora given, keyed ``main``/``dev``/``target`` -> (src, tgt)."""
        out = {"main": (self.src, self.tgt)}
        if self.dev_src or self.dev_tgt:
            out["dev"] = (self.dev_src, self.dev_tgt)
        if self.target_src or self.target_tgt:
            out["target"] = (self.target_src, self.target_tgt)
        return out


@dataclass
class ModelConfig:
    """Pre-norm Transformer encoder-decoder."""

    d_model: int = option(128, "model width", ge=8)
    heads: int = option(4, "attention heads (must divide d_model)", ge=1)
    ffn: int = option(512, "feed-forward width", ge=8)
    encoder_layers: int = option(3, "encoder layers", ge=1)
    decoder_layers: int = option(3, "decoder layers", ge=1)
    dropout: float = option(0.1, "dropout on embeddings, residuals and attention", ge=0.0, le=0.9)
    activation_dropout: float = option(0.0, "dropout inside the feed-forward block", ge=0.0, le=0.9)
    positions: str = option("sinusoidal", "position encoding: sinusoidal (added to the "
                            "embeddings) or rotary (RoPE in self-attention)",
                            choices=("sinusoidal", "rotary"))


@dataclass
class DecodeConfig:
    """Decoding for ``suite translate`` and ``suite eval translation``."""

    beam: int = option(5, "beam size (1: greedy)", ge=1)
    length_penalty: float = option(1.0, "score / length**alpha when ranking finished hypotheses")
    max_len_a: int = option(10, "max output tokens = a + b * source tokens", ge=1)
    max_len_b: float = option(1.5, "see max_len_a", ge=0.0)
    no_repeat_ngram: int = option(0, "forbid repeating any n-gram of this size (0: off)", ge=0)
    max_tokens: int = option(4000, "source-token budget per decoding batch", ge=16)
    eval_sentences: int = option(
        0, "evaluate() decodes at most this many sentences of the split (0: all); a fixed "
        "random subset, so dev BLEU during training stays comparable", ge=0,
    )
    hyp_dir: str = option(
        "", "where evaluate() writes hypotheses when the caller gives no run directory"
    )


@dataclass
class TranslationTrain(TrainConfig):
    """Trainer settings with this task's defaults: the best checkpoint is the one with the
    highest dev BLEU (``evaluate()`` decodes dev at every evaluation)."""

    max_steps: int = option(2400, "optimizer steps to run", ge=1)
    eval_every: int = option(200, "evaluate on dev every N steps (0: only at the end)", ge=0)
    log_every: int = option(50, "write a metrics line every N steps", ge=1)
    keep_last: int = option(5, "recent checkpoints kept (checkpoint averaging reads them)",
                            ge=1)
    monitor: str = option("bleu", "dev metric for best checkpoint / early stopping")
    monitor_mode: str = option("max", "whether the monitored metric should go down or up",
                               choices=("min", "max"))
    clip_grad_norm: float = option(0.0, "clip the global gradient norm (0: off)", ge=0.0)


@dataclass
class TranslationOptim(OptimConfig):
    """Optimizer defaults of the usual small-Transformer recipe (Adam 0.9/0.98, inverse
    square-root decay after a linear warm-up, label smoothing 0.1)."""

    lr: float = option(1e-3, "peak learning rate", ge=0.0)
    weight_decay: float = option(1e-4, "decoupled weight decay on weight matrices", ge=0.0)
    schedule: str = option(
        "inverse_sqrt", "learning-rate schedule after warm-up",
        choices=("constant", "cosine", "linear", "inverse_sqrt"),
    )
    warmup_steps: int = option(200, "linear warm-up steps", ge=0)
    label_smoothing: float = option(0.1, "label smoothing of the cross entropy", ge=0.0, le=1.0)


@dataclass
class TranslationConfig(TrainableConfig):
    """Everything ``suite train translation`` reads."""

    train: TranslationTrain = option(default_factory=TranslationTrain, help="trainer settings")
    optim: TranslationOptim = option(default_factory=TranslationOptim,
                                     help="optimizer settings")
    data: TranslationData = field(default_factory=TranslationData)
    model: ModelConfig = field(default_factory=ModelConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def validate(self) -> None:
        """Cross-field checks."""
        if self.model.positions == "rotary" and (self.model.d_model // self.model.heads) % 2:
            raise ConfigError(
                f"model.positions=rotary needs an even head width; d_model/heads = "
                f"{self.model.d_model // self.model.heads}. Change model.heads or model.d_model."
            )
        if self.model.d_model % self.model.heads:
            raise ConfigError(
                f"model.d_model={self.model.d_model} is not divisible by model.heads="
                f"{self.model.heads}; pick heads that divide d_model (e.g. 4 or 8)."
            )
        for name, (s, t) in self.data.sources().items():
            if name != "main" and bool(s) != bool(t):
                key = "data.dev" if name == "dev" else "data.target"
                raise ConfigError(
                    f"{key}_src and {key}_tgt must be given together (got src={s!r}, "
                    f"tgt={t!r}); set both or neither."
                )
