"""End to end through the `suite` CLI on the default data: chorales rendered by FluidSynth."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite_testing import run_suite


@pytest.mark.slow  # music21 parsing + FluidSynth rendering + three fresh interpreters
@pytest.mark.usefixtures("fluidsynth")
def test_prepare_train_synthesize_on_rendered_chorales(tmp_path: Path) -> None:
    pytest.importorskip("music21", reason="the [music] extra (music21) is not installed")
    small = ["data.max_pieces=3", "data.max_seconds=4", 'data.voices=["violin","flute"]',
             "data.target_voice=cello"]
    proc = run_suite(["prepare", "music-audio", *small], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "segments" in proc.stdout
    proc = run_suite(["train", "music-audio", "--name", "t", "train.max_steps=4",
                      "train.batch_size=4", "eval.max_segments=2", "eval.classifier_steps=10",
                      "eval.griffin_lim_iters=2"], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "music-audio" / "t"
    assert list((run / "checkpoints").glob("step-*.pt"))  # 3 pieces may leave no dev split
    from torchsuite.plugins.music.audio.notes import Line, NoteEvent

    Line("m", [NoteEvent(67, 0.0, 0.5), NoteEvent(69, 0.5, 1.0)]).to_midi().write(
        str(tmp_path / "m.mid"))
    proc = run_suite(["music", "synthesize", "m.mid", "--voice", "flute", "--from", str(run)],
                     cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (run / "samples" / "synth-m-flute.wav").is_file()
    proc = run_suite(["music", "synthesize", "m.mid", "--voice", "tuba", "--from", str(run)],
                     cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and "violin" in proc.stderr and "Traceback" not in proc.stderr
