"""The real Multi30k German-English files (../shared/data/multi30k; skipped when absent)."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
from torchsuite.core.data import ShardedDataset
from torchsuite.plugins.translation.config import TranslationData
from torchsuite.plugins.translation.corpus import Corpus, check_alignment
from torchsuite.plugins.translation.prepare import prepare_corpus
from torchsuite.plugins.translation.vocab import Vocab


def test_multi30k_files_are_aligned(multi30k: Path) -> None:
    train = Corpus.from_paths(str(multi30k / "train.de.gz"), str(multi30k / "train.en.gz"))
    dev = Corpus.from_paths(str(multi30k / "val.de.gz"), str(multi30k / "val.en.gz"))
    assert check_alignment(train) == 29000
    assert check_alignment(dev) == 1014


def test_prepare_a_slice_of_multi30k(multi30k: Path, tmp_path: Path) -> None:
    files = {}
    for lang in ("de", "en"):  # the first 1500 pairs as a user's own gzipped corpus
        with gzip.open(multi30k / f"train.{lang}.gz", "rt", encoding="utf-8") as fh:
            head = list(itertools.islice(fh, 1500))
        files[lang] = tmp_path / f"head.{lang}.gz"
        with gzip.open(files[lang], "wt", encoding="utf-8") as fh:
            fh.writelines(head)
    cfg = TranslationData(src=str(files["de"]), tgt=str(files["en"]),
                          dev_src=str(multi30k / "val.de.gz"), dev_tgt=str(multi30k / "val.en.gz"),
                          vocab_size=800, workers=0, dedup_capacity=100_000)
    out = tmp_path / "prepared"
    report = prepare_corpus(cfg, out)
    main = report["corpora"]["main"]
    assert main["lines"] == 1500 and main["kept"] + sum(main["dropped"].values()) == 1500
    assert report["splits"]["dev"] == 1014
    assert report["splits"]["train"] + report["splits"].get("test", 0) == main["kept"]
    vocab = Vocab.load(out)
    dev = ShardedDataset(out, "dev")
    for i in range(0, 1014, 101):  # German umlauts and punctuation survive the round trip
        rec = dev[i]
        assert vocab.src.decode(np.asarray(rec["src"]).tolist()) == rec["src_text"]
        assert vocab.tgt.decode(np.asarray(rec["tgt"]).tolist()) == rec["tgt_text"]
