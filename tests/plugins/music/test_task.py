"""The music task end to end on tiny settings: prepare -> core fit -> samples -> generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torchsuite.core import ConfigError, DataError
from torchsuite.core.cli import main as suite
from torchsuite.core.data.shards import read_manifest
from torchsuite.core.train import fit
from torchsuite.plugins.music.grammar import is_well_formed
from torchsuite.plugins.music.task import MusicConfig, MusicTask


def tiny_config(data_dir: Path, **train: int) -> MusicConfig:
    cfg = MusicConfig()
    cfg.data.dir = str(data_dir)
    cfg.data.workers = 1
    cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.model.d_ff = 32, 2, 2, 64
    cfg.model.seq_len = 96
    cfg.train.max_steps, cfg.train.batch_size = train.get("steps", 12), 4
    cfg.train.eval_every, cfg.train.log_every = 0, 4
    cfg.train.progress = "off"
    cfg.optim.warmup_steps = 2
    cfg.sample.bars = 2
    return cfg


def test_prepare_a_midi_folder_splits_by_piece(tmp_path: Path, midi_dir: Path) -> None:
    (midi_dir / "broken.mid").write_bytes(b"not midi")
    task = MusicTask(tiny_config(tmp_path / "data"))
    out = task.prepare(midi_dir)
    manifest = read_manifest(out)
    counts = {s: i.num_records for s, i in manifest.splits.items()}
    assert sum(counts.values()) == 20 and counts["train"] >= 12
    assert manifest.meta["failed"] == 1 and "broken.mid" in manifest.meta["errors"][0]
    names = {split: {task.pieces(split)[i]["name"] for i in range(n)}
             for split, n in counts.items() if n}
    assert sum(len(v) for v in names.values()) == 20  # each piece in exactly one split
    rec = task.pieces("train")[0]
    assert is_well_formed(task.tok, rec["tokens"].tolist())
    with pytest.raises(DataError, match="already holds a prepared data set"):
        MusicTask(tiny_config(tmp_path / "data")).prepare(midi_dir)  # never overwritten


@pytest.mark.slow
def test_prepare_the_corpus_with_a_target_style(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("music21", reason="the [music] extra (music21) is not installed")
    cfg = tiny_config(tmp_path / "data")
    cfg.data.styles, cfg.data.target_style = ["bach", "palestrina"], "palestrina"
    cfg.data.max_files = {"bach": 8, "palestrina": 2}
    task = MusicTask(cfg)
    task.prepare(None)
    out = capsys.readouterr()
    assert "reading music21 corpus: 10/10 files" in out.err  # progress, then the summary
    assert "pieces/s" in out.out
    counts = {s: i.num_records for s, i in read_manifest(cfg.data.dir).splits.items()}
    assert counts["target"] == 2 and sum(counts.values()) == 10
    target = task.pieces("target")
    assert {target[i]["style"] for i in range(2)} == {"palestrina"}
    train = task.pieces("train")
    assert {train[i]["style"] for i in range(len(train))} == {"bach"}
    assert any(train[i]["lyrics"] for i in range(len(train)))  # chorales carry lyrics


def test_prepare_rejects_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        MusicTask(tiny_config(tmp_path / "data")).prepare(tmp_path / "nope")


def test_train_through_the_core_trainer_then_generate(tmp_path: Path, midi_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """One tiny run (prepare -> core fit -> sample) serves every verb that reads a run."""
    import pretty_midi
    from torchsuite.core import write_run_config

    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(tmp_path / "data", steps=16)
    cfg.data.salt = "salt-3"  # a salt whose hash gives this little folder a dev split
    task = MusicTask(cfg)
    task.prepare(midi_dir)
    assert "dev" in task.splits()
    run = tmp_path / "runs" / "music" / "r1"
    run.mkdir(parents=True)
    write_run_config(run, cfg, "music")
    result = fit(task, run)
    assert result.steps == 16
    dev = result.dev_metrics
    for key in ("dev.nll", "dev.ppl", "dev.unigram_nll", "dev.ngram_nll"):
        assert key in dev
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert dev["dev.nll"] < first["train.loss"]  # it learned something
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["sample-bach.mid", "sample-bach.png"]
    assert "samples/sample-bach.mid" in capsys.readouterr().out

    out = tmp_path / "out"
    code = suite(["music", "generate", "--from", str(run), "--bars", "2", "--seed", "5",
                  "--top-k", "20", "--temperature", "0.7", "--out", str(out)])
    assert code == 0
    mid = out / "bach-seed5.mid"
    assert mid.is_file() and (out / "bach-seed5.png").is_file()
    assert str(mid) in capsys.readouterr().out
    pm = pretty_midi.PrettyMIDI(str(mid))
    assert pm.get_end_time() > 0 and sum(len(i.notes) for i in pm.instruments) > 0
    # a prompt: the piece continues the prompt's first bar
    prompt = sorted(midi_dir.glob("*.mid"))[0]
    code = suite(["music", "generate", "--from", str(run), "--prompt", str(prompt),
                  "--prompt-bars", "1", "--bars", "2", "--temperature", "0.7",
                  "--out", str(out)])
    assert code == 0
    again = pretty_midi.PrettyMIDI(str(out / "bach-seed0.mid"))
    original = pretty_midi.PrettyMIDI(str(prompt))
    first_bar = {(round(n.start, 3), n.pitch) for i in original.instruments for n in i.notes
                 if n.start < 2.0 - 1e-6}  # 4/4 at 120 bpm: a bar is 2 s
    kept = {(round(n.start, 3), n.pitch) for i in again.instruments for n in i.notes}
    assert first_bar and {p for _, p in first_bar} <= {p for _, p in kept}
    assert suite(["music", "generate", "--from", str(run), "--style", "nope"]) == 2
    capsys.readouterr()
    assert suite(["eval", "music", "--from", str(run), "--split", "train",
                  "--set", "eval.pieces=2", "--set", "eval.bars=1"]) == 0
    printed = capsys.readouterr().out
    for key in ("train.nll", "train.unigram_nll", "train.ngram_nll", "train.gen.note_density",
                "train.real.note_density", "train.pitch_class_distance"):
        assert key in printed
    assert suite(["music", "generate", "--from", str(run), "--lyrics", "Ach Gott, vom Him-mel _",
                  "--out", str(out)]) == 0
    song = pretty_midi.PrettyMIDI(str(out / "lyrics-bach-seed0.mid"))
    assert [ly.text for ly in song.lyrics] == ["Ach", "Gott,", "vom", "Him-", "mel"]


def test_quick_profile_changes_only_defaults() -> None:
    cfg = MusicConfig(quick=True)
    cfg.model.d_model = 96
    cfg.validate()
    assert cfg.model.d_model == 96 and cfg.model.n_layers == 2 and cfg.train.max_steps == 40
    assert cfg.data.styles == ["bach"]
    cfg.validate()  # idempotent
    assert cfg.train.max_steps == 40 and cfg.optim.lr == 5e-3


def test_config_errors_name_the_key() -> None:
    cfg = MusicConfig()
    cfg.data.target_style = "irish"
    cfg.data.styles = ["bach"]
    with pytest.raises(ConfigError, match=r"data\.target_style"):
        cfg.validate()
    cfg = MusicConfig()
    cfg.model.n_heads = 3
    with pytest.raises(ConfigError, match=r"model\.d_model"):
        cfg.validate()
