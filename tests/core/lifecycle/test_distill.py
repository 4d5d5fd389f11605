"""``suite distill``: per-token KL on logits, MSE on regression outputs, student report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchsuite.core.errors import SuiteError
from torchsuite.core.lifecycle.distill import (
    distill_loss,
    distill_task,
    main_tensor,
    pick_kind,
    run_distill,
)
from torchsuite.core.lifecycle.source import load_source, resolve_task
from torchsuite.core.train.checkpoint import best_checkpoint

pytestmark = pytest.mark.usefixtures("use_registry")


def test_kl_is_per_token_mean_of_tempered_kl() -> None:
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 5, 7, generator=gen), torch.randn(3, 5, 7, generator=gen)
    temp = 2.0
    manual = torch.stack([
        F.kl_div(F.log_softmax(s[b, i] / temp, -1), F.softmax(t[b, i] / temp, -1),
                 reduction="sum")
        for b in range(3) for i in range(5)
    ]).mean() * temp**2
    assert torch.allclose(distill_loss(s, t, "kl", temp), manual, atol=1e-6)
    # per token: repeating every position leaves the value unchanged (a mean, not a sum)
    assert torch.allclose(distill_loss(s.repeat(1, 2, 1), t.repeat(1, 2, 1), "kl", temp), manual,
                          atol=1e-6)
    assert float(distill_loss(t, t, "kl", temp)) == pytest.approx(0.0, abs=1e-7)


def test_mse_and_kind_selection() -> None:
    s, t = torch.zeros(4, 1), torch.full((4, 1), 2.0)
    assert float(distill_loss(s, t, "mse", 1.0)) == pytest.approx(4.0)
    task = type("T", (), {})()
    assert pick_kind(task, torch.zeros(2, 3, 10), "auto") == "kl"
    assert pick_kind(task, torch.zeros(2, 1), "auto") == "mse"
    assert pick_kind(task, torch.zeros(2, 10), "mse") == "mse"
    with pytest.raises(SuiteError, match="differs from the teacher"):
        distill_loss(torch.zeros(2, 3), torch.zeros(2, 4), "kl", 1.0)
    assert main_tensor({"logits": s, "aux": t}) is s and main_tensor((t, s)) is t


def test_sequence_student_learns_from_teacher_per_token(seq_run: Path, tmp_path: Path,
                                                        quiet: list[str]) -> None:
    out = run_distill("lifecycle-seq", str(seq_run),
                      overrides=[*quiet, "model.hidden=16", "train.max_steps=60",
                                 "train.eval_every=30", "optim.lr=0.02",
                                 "distill.temperature=2.0", "distill.alpha=0.3"],
                      run_dir=str(tmp_path / "student"))
    result = json.loads((out / "distill.json").read_text())
    assert result["student"]["params"] < result["teacher"]["params"] / 2
    assert set(result["student"]) >= {"dev", "test"}
    assert "[distill]" in (out / "distill.toml").read_text()
    # the student is a normal run: it loads with its own (smaller) config
    student = load_source("lifecycle-seq", str(out))
    assert student.model.head.in_features == 16
    assert best_checkpoint(out).is_file()


def test_regression_student_with_alpha_zero_imitates_the_teacher(
    template_run: Path, tmp_path: Path, quiet: list[str]
) -> None:
    teacher = load_source("template-regression", str(template_run))
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(5))
    fresh = teacher.task.build_model().eval()
    with torch.no_grad():
        gap_before = F.mse_loss(fresh(x), teacher.model(x))
    out = run_distill("template-regression", str(template_run),
                      overrides=[*quiet, "model.hidden=8", "train.max_steps=120",
                                 "train.eval_every=60", "optim.lr=0.02", "distill.alpha=0.0"],
                      run_dir=str(tmp_path / "reg-student"))
    student = load_source("template-regression", str(out)).model
    with torch.no_grad():
        gap_after = F.mse_loss(student(x), teacher.model(x))
    assert gap_after < 0.2 * gap_before  # MSE to the teacher alone taught the student


def test_step_mixes_task_loss_and_per_token_kl(seq_run: Path) -> None:
    teacher = load_source("lifecycle-seq", str(seq_run))
    student = resolve_task("lifecycle-seq", base={"model": {"hidden": 8}},
                           overrides=["distill.alpha=0.25", "distill.temperature=3.0"],
                           section="distill")
    task = distill_task(student, teacher.task, teacher.model)
    model = task.build_model().train()
    x, y = next(iter(task.dataloader("train", train=True)))
    out = task.training_step(model, (x, y))
    with torch.no_grad():
        kd = distill_loss(model(x), teacher.model(x), "kl", 3.0)
        ce = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    assert float(out.metrics["distill"]) == pytest.approx(float(kd), rel=1e-5)
    assert float(out.metrics["task_loss"]) == pytest.approx(float(ce), rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(0.25 * float(ce) + 0.75 * float(kd), rel=1e-5)
    out.loss.backward()  # the gradient reaches the student, never the teacher
    assert model.head.weight.grad is not None
    assert all(p.grad is None for p in teacher.model.parameters())
    # validation reports the task's own loss (comparable with the teacher's)
    with torch.no_grad():
        val = task.validation_step(model, (x, y))
    assert float(val.loss) == pytest.approx(float(ce), rel=1e-5)


def test_teacher_of_another_task_is_refused(seq_run: Path) -> None:
    with pytest.raises(SuiteError, match=r"--teacher .*belongs to task"):
        run_distill("template-regression", str(seq_run))
