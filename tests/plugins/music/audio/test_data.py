"""Preparing paired (notes, audio) data: rendered MIDI and user recordings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchsuite.core.errors import ConfigError, DataError
from torchsuite.plugins.music.audio.features import cents_between
from torchsuite.plugins.music.audio.task import MusicAudioTask


def test_rendered_midi_splits_by_piece_and_holds_the_target_voice_out(prepared) -> None:
    sets = prepared.datasets()
    assert {"train", "target"} <= set(sets)
    seg = round(0.5 * prepared.feature_spec.frame_rate)
    voices: dict[str, set[str]] = {}
    pieces: dict[str, set[str]] = {}
    for split, ds in sets.items():
        for i in range(len(ds)):
            item = ds[i]
            assert item["audio"].shape == (seg * prepared.cfg.model.hop,)
            assert item["f0"].shape == item["loud"].shape == (seg,)
            assert float(item["voiced"].mean()) >= 0.2  # near-silent segments were dropped
            voices.setdefault(split, set()).add(item["voice"])
            pieces.setdefault(split, set()).add(item["piece"].split("/")[0])
    assert voices["target"] == {"tone-soft"}
    assert all(v <= {"tone-bright", "tone-hollow"} for s, v in voices.items() if s != "target")
    # A song never straddles train/dev/test (target holds the new voice of every song).
    plain = [p for s, p in pieces.items() if s != "target"]
    for i, a in enumerate(plain):
        for b in plain[i + 1:]:
            assert not a & b
    # The model registers the training voices only: the target voice is new to it.
    assert prepared.build_model().voice.voices() == ["tone-bright", "tone-hollow"]


def test_rendered_audio_has_the_notes_pitch(prepared) -> None:
    from torchsuite.plugins.music.audio.features import detect_f0

    ds = prepared.datasets()["train"]
    item = ds[0]
    f0 = detect_f0(item["audio"], prepared.feature_spec)
    steady = item["voiced"].bool() & ~item["onset"].bool()
    steady[:-1] &= item["voiced"][1:].bool()  # skip note ends (release)
    cents = cents_between(f0[steady], item["f0"][steady])
    assert float(cents.median()) < 20.0


def test_recordings_without_midi_get_f0_from_the_audio(tmp_path: Path, tiny_cfg,
                                                       recordings: Path) -> None:
    task = MusicAudioTask(tiny_cfg(tmp_path))
    task.prepare(recordings)
    sets = task.datasets()
    items = [ds[i] for ds in sets.values() for i in range(len(ds))]
    assert items and {it["voice"] for it in items} == {"singer"}
    assert set(sets) <= {"target", "dev"}
    notes = torch.tensor([b * r for b in (196.0, 247.0, 330.0) for r in (1.0, 1.25, 1.5)])
    f0 = torch.cat([it["f0"][it["voiced"].bool()] for it in items])
    assert all(it["notes"] == 0 for it in items) and f0.numel() > 100
    # Every take steps through a major triad; nearly every voiced frame is on one of its
    # notes (the exceptions are the frames whose window straddles two notes).
    nearest = cents_between(f0[:, None], notes[None, :]).min(-1).values
    assert float((nearest < 30).float().mean()) > 0.9


def test_bad_sources_and_configs_are_explained(tmp_path: Path, tiny_cfg) -> None:
    task = MusicAudioTask(tiny_cfg(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        task.prepare(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="neither audio"):
        task.prepare(tmp_path / "notes.txt")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.wav").write_bytes(b"not a wav")
    with pytest.raises(DataError, match=r"no usable audio.*a\.wav"):
        task.prepare(junk)
    with pytest.raises(DataError, match=r"unknown voice.*available: tone-bright"):
        MusicAudioTask(tiny_cfg(tmp_path / "v", data__voices=["tuba"])).prepare(None)
    with pytest.raises(ConfigError, match="target voice must be new"):
        tiny_cfg(tmp_path, data__target_voice="tone-bright")
    with pytest.raises(DataError, match="suite prepare music-audio"):
        MusicAudioTask(tiny_cfg(tmp_path / "empty")).datasets()


def test_a_missing_soundfont_names_the_install_command(tmp_path: Path, tiny_cfg,
                                                       midi_dir: Path) -> None:
    task = MusicAudioTask(tiny_cfg(tmp_path, data__renderer="fluidsynth",
                                   data__voices=["violin"], data__target_voice="",
                                   data__soundfont=str(tmp_path / "none.sf2")))
    with pytest.raises(DataError, match=r"install-system-deps\.sh"):
        task.prepare(midi_dir)
    assert not (tmp_path / "data" / "manifest.json").exists()


def test_recordings_with_aligned_midi_take_f0_from_the_notes(tmp_path: Path, tiny_cfg, tone,
                                                             write_melody) -> None:
    import soundfile as sf

    d = tmp_path / "violinist"
    d.mkdir()
    wave, _ = tone([261.63, 329.63, 392.0], 0.5)
    sf.write(str(d / "take.wav"), wave.numpy(), 16000)
    write_melody(d / "take.mid", [60, 64, 67], step=0.5)
    task = MusicAudioTask(tiny_cfg(tmp_path))
    task.prepare(d)
    items = [ds[i] for ds in task.datasets().values() for i in range(len(ds))]
    assert items and all(it["notes"] == 1 and it["voice"] == "violinist" for it in items)
    f0 = torch.cat([it["f0"][it["voiced"].bool()] for it in items])
    # Exactly the MIDI pitches (C4, E4, G4), not a detector's estimate.
    notes = torch.tensor([261.6256, 329.6276, 391.9954])
    assert bool(((f0[:, None] - notes[None, :]).abs().min(-1).values < 1e-3).all())
