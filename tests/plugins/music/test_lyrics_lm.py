"""The lyrics language model: sentencepiece + a small Transformer, trained and sampled."""

from __future__ import annotations

from pathlib import Path

import pytest
from torchsuite.core import DataError
from torchsuite.plugins.music.lyrics import syllables
from torchsuite.plugins.music.lyrics_lm import LyricsLM, train_lyrics_lm

TEXTS = [
    "Ach Gott, vom Him-mel sieh da-rein und lass dich des er-bar-men.",
    "Nun dan-ket al-le Gott mit Her-zen, Mund und Hän-den.",
    "Wer nur den lie-ben Gott lässt wal-ten und hof-fet auf ihn al-le-zeit.",
    "Al-lein Gott in der Höh' sei Ehr' und Dank für sei-ne Gna-de.",
    "Ein' fe-ste Burg ist un-ser Gott, ein' gu-te Wehr und Waf-fen.",
    "Je-su, mei-ne Freu-de, mei-nes Her-zens Wei-de.",
] * 4


def test_train_sample_and_reload(tmp_path: Path) -> None:
    lm = train_lyrics_lm(TEXTS, tmp_path / "lm", vocab_size=80, steps=3, d_model=32,
                         seq_len=48, batch_size=4, log_every=0)
    text = lm.sample("Nun", seed=1)
    assert text.startswith("Nun") and len(syllables(text)) >= 2
    again = LyricsLM.load(tmp_path / "lm")
    assert again.sample("Nun", seed=1) == text
    assert again.nll(TEXTS[:1]) == lm.nll(TEXTS[:1])
    assert (tmp_path / "lm" / "spm.model").is_file()


@pytest.mark.slow
def test_training_lowers_held_out_nll(tmp_path: Path) -> None:
    untrained = train_lyrics_lm(TEXTS, tmp_path / "u", vocab_size=80, steps=0, d_model=32,
                                log_every=0)
    lm = train_lyrics_lm(TEXTS, tmp_path / "lm", vocab_size=80, steps=60, d_model=32,
                         seq_len=48, lr=5e-3, batch_size=8, log_every=0)
    held = ["Nun dan-ket al-le Gott mit Her-zen."]
    assert lm.nll(held) < untrained.nll(held) - 0.5


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs texts"):
        train_lyrics_lm(["", " "], tmp_path / "x")
    with pytest.raises(DataError, match="no lyrics model"):
        LyricsLM.load(tmp_path / "nothing")
