"""Fixtures for the translation tests: tiny generated parallel corpora and configs."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from torchsuite.plugins.translation.config import TranslationData

# A toy language pair: "German" is English word by word through a fixed lexicon, so a
# tiny model can learn it and every sentence has an exact reference.
LEXICON = {
    "a": "ein",
    "the": "der",
    "man": "mann",
    "woman": "frau",
    "dog": "hund",
    "cat": "katze",
    "runs": "läuft",
    "sleeps": "schläft",
    "eats": "isst",
    "big": "groß",
    "small": "klein",
    "red": "rot",
    "blue": "blau",
    "house": "haus",
    "ball": "ball",
    "in": "im",
    "park": "park",
    "with": "mit",
    "and": "und",
    "child": "kind",
}


def make_toy_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (german, english) toy pairs of 3-9 words."""
    rnd = random.Random(seed)
    words = sorted(LEXICON)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        en = " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 9)))
        if en in seen:
            continue
        seen.add(en)
        out.append((" ".join(LEXICON[w] for w in en.split()), en))
    return out


def _write_lines(path: Path, lines: list[str]) -> Path:
    """Write UTF-8 lines (plain, or gzip when the name ends in .gz)."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if path.suffix == ".gz":
        import gzip

        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def toy_corpus(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """``make(n, suffix="")`` -> aligned (src, tgt) files of ``n`` toy pairs."""

    def make(
        n: int = 200, suffix: str = "", seed: int = 0, name: str = "train"
    ) -> tuple[Path, Path]:
        pairs = make_toy_pairs(n, seed)
        src = _write_lines(tmp_path / f"{name}.de{suffix}", [p[0] for p in pairs])
        tgt = _write_lines(tmp_path / f"{name}.en{suffix}", [p[1] for p in pairs])
        return src, tgt

    return make


def _small_data(src: Path | str, tgt: Path | str = "", **kw: object) -> TranslationData:
    """A data config sized for tests: tiny vocabulary, in-process encoding."""
    base: dict[str, object] = {
        "src": str(src),
        "tgt": str(tgt),
        "vocab_size": 60,
        "workers": 0,
        "dedup_capacity": 10_000,
        "spm_sample": 5000,
    }
    base.update(kw)
    return TranslationData(**base)  # type: ignore[arg-type]


@pytest.fixture
def multi30k() -> Path:
    """The shared Multi30k folder, or a skip saying why."""
    env = os.environ.get("SUITE_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    folder = root / "multi30k"
    if not (folder / "train.de.gz").is_file():
        pytest.skip(
            f"Multi30k not found at {folder} (set SUITE_SHARED_DATA to the folder "
            "holding multi30k/); CI provides it"
        )
    return folder


@pytest.fixture
def write_lines() -> Callable[[Path, list[str]], Path]:
    """``write_lines(path, lines)``: UTF-8 text, gzip when the name ends in .gz."""
    return _write_lines


@pytest.fixture
def small_data() -> Callable[..., TranslationData]:
    """``small_data(src, tgt, **overrides)``: a data config sized for tests."""
    return _small_data


@pytest.fixture(scope="session")
def toy_pairs() -> Callable[..., list[tuple[str, str]]]:
    """``toy_pairs(n, seed=0)``: distinct (german, english) toy pairs."""
    return make_toy_pairs
