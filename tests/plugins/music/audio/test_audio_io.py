"""Audio file reading/writing and the errors for bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import soundfile as sf
import torch
from torchsuite.core.errors import DataError
from torchsuite.plugins.music.audio.audio_io import load_audio, save_wav


def test_round_trip_and_resampling_is_logged(tmp_path: Path, tone,
                                             caplog: pytest.LogCaptureFixture) -> None:
    wave, _ = tone([440.0], 0.5, sr=22050)
    stereo = torch.stack([wave, wave], 1).numpy()
    sf.write(str(tmp_path / "a.wav"), stereo, 22050)
    with caplog.at_level(logging.WARNING):
        x = load_audio(tmp_path / "a.wav", 16000)
    assert "resampling" in caplog.text and "22050" in caplog.text
    assert abs(x.shape[0] - 8000) <= 1
    out = save_wav(tmp_path / "out" / "b.wav", x, 16000)
    back = load_audio(out, 16000)
    assert torch.allclose(back, x, atol=2e-4)


@pytest.mark.parametrize("content,expected", [
    (b"this is not audio at all", "could not be read as audio"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", "could not be read as audio"),
])
def test_non_audio_and_corrupt_files_name_the_file(tmp_path: Path, content: bytes,
                                                   expected: str) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=expected) as err:
        load_audio(bad, 16000)
    assert "bad.wav" in str(err.value)


def test_silent_and_missing_files_are_refused(tmp_path: Path) -> None:
    sf.write(str(tmp_path / "quiet.wav"), torch.zeros(16000).numpy(), 16000)
    with pytest.raises(DataError, match="silent"):
        load_audio(tmp_path / "quiet.wav", 16000)
    assert load_audio(tmp_path / "quiet.wav", 16000, allow_silent=True).abs().max() == 0
    with pytest.raises(DataError, match="does not exist"):
        load_audio(tmp_path / "nope.wav", 16000)
