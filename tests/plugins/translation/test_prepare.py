"""`prepare_corpus`: report counts, sentencepiece, hash splits, safety of existing data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torchsuite.core import DataError
from torchsuite.core.data import ShardedDataset, read_manifest
from torchsuite.plugins.translation.prepare import prepare_corpus, read_lengths
from torchsuite.plugins.translation.vocab import Vocab

Data = Callable[..., Any]


def _texts(out: Path, split: str) -> set[tuple[str, str]]:
    if split not in read_manifest(out).splits:
        return set()
    return {(str(r["src_text"]), str(r["tgt_text"])) for r in ShardedDataset(out, split)}


def test_report_counts_splits_and_round_trip(
    tmp_path: Path, toy_corpus: Callable[..., tuple[Path, Path]], small_data: Data,
    write_lines: Callable[..., Path],
) -> None:
    src, tgt = toy_corpus(150)
    # append noise the cleaner must drop: an empty pair and a duplicate of line 1
    first_src, first_tgt = src.read_text().splitlines()[0], tgt.read_text().splitlines()[0]
    write_lines(src, [*src.read_text().splitlines(), "", first_src])
    write_lines(tgt, [*tgt.read_text().splitlines(), "", first_tgt])
    out = tmp_path / "prepared"
    report = prepare_corpus(small_data(src, tgt, dev_ratio=0.1, test_ratio=0.1), out)
    main = report["corpora"]["main"]
    assert main["lines"] == 152 and main["read"] == 152 and main["kept"] == 150
    assert main["dropped"] == {"duplicate": 1, "empty": 1}
    assert sum(report["splits"].values()) == 150
    assert set(report["splits"]) == {"train", "dev", "test"}
    assert json.loads((out / "prepare_report.json").read_text())["splits"] == report["splits"]

    vocab = Vocab.load(out)
    assert vocab.joint and vocab.src_size <= 60
    dev = ShardedDataset(out, "dev")
    for rec in dev:  # ids decode back to the stored text (sentencepiece round trip)
        assert vocab.src.decode(np.asarray(rec["src"]).tolist()) == rec["src_text"]
        assert vocab.tgt.decode(np.asarray(rec["tgt"]).tolist()) == rec["tgt_text"]
    lengths = read_lengths(out, "train")
    train = ShardedDataset(out, "train")
    assert lengths is not None and len(lengths) == len(train)
    assert [tuple(x) for x in lengths[:5]] == [(len(r["src"]), len(r["tgt"]))
                                               for r in list(train)[:5]]


def test_hash_split_is_stable_when_the_corpus_grows(
    tmp_path: Path, toy_pairs: Callable[..., list[tuple[str, str]]], small_data: Data,
    write_lines: Callable[..., Path],
) -> None:
    pairs = toy_pairs(200, seed=3)
    outs = []
    for n in (120, 200):
        src = write_lines(tmp_path / f"{n}.de", [p[0] for p in pairs[:n]])
        tgt = write_lines(tmp_path / f"{n}.en", [p[1] for p in pairs[:n]])
        out = tmp_path / f"out{n}"
        prepare_corpus(small_data(src, tgt, dev_ratio=0.2, test_ratio=0.2), out)
        outs.append(out)
    for split in ("dev", "test"):
        small, large = _texts(outs[0], split), _texts(outs[1], split)
        assert small and small <= large  # nothing moved out of the split
    held_out_small = _texts(outs[0], "dev") | _texts(outs[0], "test")
    held_out_large = _texts(outs[1], "dev") | _texts(outs[1], "test")
    first = set(pairs[:120])
    assert held_out_large & first == held_out_small  # no old train pair moved into dev/test


def test_document_ids_keep_a_document_in_one_split(
    tmp_path: Path, toy_pairs: Callable[..., list[tuple[str, str]]], small_data: Data,
    write_lines: Callable[..., Path],
) -> None:
    pairs = toy_pairs(120, seed=5)
    doc_of = {p: f"doc{i // 10}" for i, p in enumerate(pairs)}
    tsv = write_lines(tmp_path / "c.tsv", [f"{s}\t{t}\t{doc_of[(s, t)]}" for s, t in pairs])
    out = tmp_path / "out"
    prepare_corpus(small_data(tsv, dev_ratio=0.3, test_ratio=0.0), out)
    dev_docs = {doc_of[p] for p in _texts(out, "dev")}
    assert dev_docs, "expected some documents in dev"
    n_dev = sum(1 for p in pairs if doc_of[p] in dev_docs)
    assert len(_texts(out, "dev")) == n_dev  # whole documents, never parts


def test_target_and_dev_corpora_become_their_splits(
    tmp_path: Path, toy_corpus: Callable[..., tuple[Path, Path]], small_data: Data,
) -> None:
    src, tgt = toy_corpus(100)
    dsrc, dtgt = toy_corpus(12, seed=7, name="dev")
    tsrc, ttgt = toy_corpus(15, seed=9, name="domain")
    out = tmp_path / "out"
    cfg = small_data(src, tgt, dev_src=str(dsrc), dev_tgt=str(dtgt), target_src=str(tsrc),
                     target_tgt=str(ttgt), test_ratio=0.0)
    report = prepare_corpus(cfg, out)
    assert report["splits"]["target"] == 15 and report["splits"]["dev"] == 12
    assert report["splits"]["train"] == 100


def test_existing_data_is_not_overwritten_without_the_flag(
    tmp_path: Path, toy_corpus: Callable[..., tuple[Path, Path]], small_data: Data,
) -> None:
    src, tgt = toy_corpus(60)
    out = tmp_path / "out"
    prepare_corpus(small_data(src, tgt), out)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(DataError, match="overwrite"):
        prepare_corpus(small_data(src, tgt), out)
    assert (out / "manifest.json").read_bytes() == before
    prepare_corpus(small_data(src, tgt, overwrite=True), out)
    assert (out / "manifest.json").read_bytes() != before  # new data set id


@pytest.mark.slow  # starts two spawned worker processes (~10-20 s on a busy machine)
def test_worker_processes_write_the_same_records(
    tmp_path: Path, toy_corpus: Callable[..., tuple[Path, Path]], small_data: Data,
) -> None:
    src, tgt = toy_corpus(300)
    a, b = tmp_path / "a", tmp_path / "b"
    prepare_corpus(small_data(src, tgt, workers=0), a)
    prepare_corpus(small_data(src, tgt, workers=2, chunk_lines=40), b)
    ra, rb = list(ShardedDataset(a, "train")), list(ShardedDataset(b, "train"))
    assert len(ra) == len(rb) > 200
    for x, y in zip(ra, rb, strict=True):
        assert np.array_equal(x["src"], y["src"]) and np.array_equal(x["tgt"], y["tgt"])
