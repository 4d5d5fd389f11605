"""``suite finetune``: full / freeze / feature transfer reports before/after target metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchsuite.core.errors import SuiteError
from torchsuite.core.lifecycle.transfer import holdout_indices, run_finetune
from torchsuite.core.train.checkpoint import best_checkpoint, load_checkpoint

pytestmark = pytest.mark.usefixtures("use_registry")

FT = ["train.progress=off", "train.tensorboard=false", "train.log_every=1000",
      "optim.warmup_steps=0", "train.max_steps=80", "train.eval_every=40", "train.batch_size=32"]
LABELS = ("target (held-out)", "source dev", "source test")


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(best_checkpoint(run))["model"]


@pytest.mark.parametrize("mode", ["full", "freeze", "feature"])
def test_finetune_improves_target_and_reports_before_after(
    mode: str, template_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lr = "optim.lr=0.1" if mode == "full" else "optim.lr=0.05"
    extra = ["finetune.lr_scale=1.0"] if mode != "feature" else []
    out = run_finetune("template-regression", str(template_run),
                       overrides=[*FT, lr, f"finetune.mode={mode}", *extra],
                       run_dir=str(tmp_path / mode))
    report = json.loads((out / "transfer.json").read_text())
    assert report["mode"] == mode
    assert set(report["before"]) == set(LABELS) == set(report["after"])
    target_before = report["before"]["target (held-out)"]["mse"]
    target_after = report["after"]["target (held-out)"]["mse"]
    # the target split uses shifted weights: the source model is bad there, training fixes it
    assert target_after < 0.8 * target_before
    printed = capsys.readouterr().out
    assert "before" in printed and "after" in printed and "target (held-out)" in printed
    # the new run is a normal run of the task: its config has no finetune keys
    assert "[finetune]" not in (out / "config.toml").read_text()
    assert "mode = \"" + mode + "\"" in (out / "finetune.toml").read_text()

    src, new = _weights(template_run), _weights(out)
    changed = {k for k in src if not torch.equal(src[k], new[k])}
    if mode == "full":
        assert any(k.startswith("backbone.") for k in changed)
    else:  # freeze (trainable=["head"]) and feature keep the backbone exactly
        assert changed and all(k.startswith("head.") for k in changed)


def test_feature_mode_runs_the_backbone_only_to_fill_the_cache(
    template_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from suite_template.task import MLP

    calls = {"n": 0}
    original = MLP.forward

    def counting(self: MLP, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += int(self.training)  # training forwards only (not evaluation)
        return original(self, x)

    monkeypatch.setattr(MLP, "forward", counting)
    seen: list[int] = []
    original_bb = torch.nn.Sequential.forward

    def bb(self: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        seen.append(int(self.training))
        return original_bb(self, x)

    monkeypatch.setattr(torch.nn.Sequential, "forward", bb)
    run_finetune("template-regression", str(template_run),
                 overrides=[*FT, "train.max_steps=30", "finetune.mode=feature"],
                 run_dir=str(tmp_path / "feat"))
    assert calls["n"] == 30  # the head trained 30 steps through the model's forward
    assert sum(seen) == 0  # ... and the backbone never ran in training mode (replayed)


def test_freeze_on_sequence_task_with_two_trainable_modules(
    seq_run: Path, tmp_path: Path
) -> None:
    out = run_finetune("lifecycle-seq", str(seq_run),
                       overrides=[*FT, "train.max_steps=40", "optim.lr=0.02",
                                  "finetune.mode=freeze", 'finetune.trainable=["head","proj"]',
                                  "finetune.lr_scale=1.0"],
                       run_dir=str(tmp_path / "seq-freeze"))
    report = json.loads((out / "transfer.json").read_text())
    target = "target (held-out)"
    assert report["after"][target]["acc"] > report["before"][target]["acc"]
    src, new = _weights(seq_run), _weights(out)
    changed = {k.split(".")[0] for k in src if not torch.equal(src[k], new[k])}
    assert changed == {"head", "proj"}


def test_holdout_is_stable_and_disjoint() -> None:
    keep, held = holdout_indices(200, 0.25, "s")
    assert sorted(keep + held) == list(range(200)) and not set(keep) & set(held)
    assert 25 < len(held) < 75
    assert holdout_indices(300, 0.25, "s")[1][: len(held)] == held  # more data: same held-out


def test_bad_sources_are_clear_errors(template_run: Path, seq_run: Path) -> None:
    with pytest.raises(SuiteError, match="not found"):
        run_finetune("template-regression", "no-such-run", overrides=FT)
    with pytest.raises(SuiteError, match="belongs to task 'lifecycle-seq'"):
        run_finetune("template-regression", str(seq_run), overrides=FT)
    with pytest.raises(SuiteError, match=r"finetune\.trainable names 'nohead'"):
        run_finetune("template-regression", str(template_run),
                     overrides=[*FT, "finetune.mode=freeze", 'finetune.trainable=["nohead"]'])


def test_feature_mode_with_an_lstm_backbone(seq_run: Path, tmp_path: Path) -> None:
    out = run_finetune("lifecycle-seq", str(seq_run),
                       overrides=[*FT, "train.max_steps=40", "optim.lr=0.05",
                                  "finetune.mode=feature", "finetune.head=head"],
                       run_dir=str(tmp_path / "seq-feature"))
    report = json.loads((out / "transfer.json").read_text())
    target = "target (held-out)"
    assert report["after"][target]["acc"] > report["before"][target]["acc"]
    src, new = _weights(seq_run), _weights(out)
    changed = {k.split(".")[0] for k in src if not torch.equal(src[k], new[k])}
    assert changed == {"head"}  # backbone and proj frozen; only the fresh head trained
