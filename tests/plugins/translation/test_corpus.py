"""Streaming readers: alignment, decoding errors, TSV and gzip input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from torchsuite.core import DataError
from torchsuite.plugins.translation.corpus import Corpus, check_alignment, read_pairs
from torchsuite.plugins.translation.prepare import prepare_corpus

Lines = Callable[..., Path]
Data = Callable[..., Any]


def test_misaligned_files_error_names_counts_and_line_and_writes_nothing(
    tmp_path: Path, write_lines: Lines, small_data: Data
) -> None:
    src = write_lines(tmp_path / "a.de", [f"satz {i}" for i in range(6)])
    tgt = write_lines(tmp_path / "a.en", [f"sentence {i}" for i in range(4)])
    out = tmp_path / "prepared"
    with pytest.raises(DataError) as err:
        prepare_corpus(small_data(src, tgt), out)
    msg = str(err.value)
    assert "6 lines" in msg and "has 4" in msg
    assert "line 5 cannot be paired" in msg
    assert str(src) in msg and str(tgt) in msg
    assert not out.exists()


def test_undecodable_bytes_strict_names_file_and_line(
    tmp_path: Path, write_lines: Lines, small_data: Data
) -> None:
    src = tmp_path / "bad.de"
    src.write_bytes(b"gut\nauch gut\nkaputt \xff\xfe hier\n")
    tgt = write_lines(tmp_path / "bad.en", ["good", "also good", "broken here"])
    out = tmp_path / "prepared"
    with pytest.raises(DataError) as err:
        prepare_corpus(small_data(src, tgt), out)
    assert f"{src}, line 3" in str(err.value) and "--errors replace" in str(err.value)
    assert not out.exists()


def test_errors_replace_substitutes_replacement_character(
    tmp_path: Path, write_lines: Lines, small_data: Data
) -> None:
    src = tmp_path / "bad.de"
    src.write_bytes(b"gut\nkaputt \xff hier\n")
    tgt = write_lines(tmp_path / "bad.en", ["good", "broken here"])
    pairs = list(read_pairs(Corpus.from_paths(str(src), str(tgt)), errors="replace"))
    assert pairs[1][1] == "kaputt \ufffd hier" and pairs[1][2] == "broken here"


def test_tsv_and_gzip_read_the_same_pairs(
    tmp_path: Path, write_lines: Lines, small_data: Data
) -> None:
    rows = [("eins", "one"), ("zwei", "two"), ("drei", "three")]
    tsv = write_lines(tmp_path / "c.tsv.gz", [f"{a}\t{b}\tdoc{i}" for i, (a, b) in enumerate(rows)])
    src = write_lines(tmp_path / "c.de.gz", [a for a, _ in rows])
    tgt = write_lines(tmp_path / "c.en", [b for _, b in rows])
    from_tsv = list(read_pairs(Corpus.from_paths(str(tsv), "")))
    from_files = list(read_pairs(Corpus.from_paths(str(src), str(tgt))))
    assert [p[1:3] for p in from_tsv] == [p[1:3] for p in from_files] == rows
    assert [p[3] for p in from_tsv] == ["doc0", "doc1", "doc2"]
    assert check_alignment(Corpus.from_paths(str(tsv), "")) == 3


def test_tsv_line_without_two_columns_is_named(
    tmp_path: Path, write_lines: Lines, small_data: Data
) -> None:
    tsv = write_lines(tmp_path / "d.tsv", ["a\tb", "only one column", "c\td"])
    with pytest.raises(DataError, match=r"d\.tsv, line 2: expected 2 tab-separated"):
        check_alignment(Corpus.from_paths(str(tsv), ""))


def test_missing_file_and_non_tsv_without_target(
    tmp_path: Path, write_lines: Lines, small_data: Data
) -> None:
    with pytest.raises(DataError, match="does not exist"):
        Corpus.from_paths(str(tmp_path / "nope.de"), str(tmp_path / "nope.en"))
    plain = write_lines(tmp_path / "x.de", ["a"])
    with pytest.raises(DataError, match="--tgt"):
        Corpus.from_paths(str(plain), "")


def test_cli_prepare_reports_misalignment_in_one_paragraph(
    workdir: Path, write_lines: Lines, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchsuite.core.cli import main

    write_lines(workdir / "a.de", ["eins", "zwei", "drei"])
    write_lines(workdir / "a.en", ["one", "two"])
    assert main(["prepare", "translation", "--src", "a.de", "--tgt", "a.en"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: misaligned corpus: a.de has 3 lines but a.en has 2")
    assert "Traceback" not in err
    assert not (workdir / "data").exists()
    write_lines(workdir / "a.en", ["one", "two", "three"])
    assert main(["prepare", "translation", "--src", "a.de", "--tgt", "a.en",
                 "--vocab-size", "20", "--workers", "0", "--dedup-capacity", "1000"]) == 0
    assert (workdir / "data" / "translation" / "manifest.json").is_file()
