"""Knowledge distillation: ``suite distill TASK --teacher RUN``.

The student is the task with the teacher run's config plus the command line's
overrides (``model.d_model=128``), trained by the core trainer on::

    loss = alpha * task_loss + (1 - alpha) * distill_term

* logits (a float output whose last dimension is > 1, e.g. ``[B, T, V]`` for a
  sequence model): ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``,
  summed over classes and averaged over every leading position, i.e. per token;
* regression heads (last dimension 1, or a task class with
  ``output_kind = "regression"``): ``MSE(student, teacher)``.

Outputs are taken with forward hooks on the top-level module while the task's own
``training_step`` runs, so no task code changes: the student's step gives the task
loss and the student's outputs, the teacher task's step (no grad, eval mode) on the
same batch gives the teacher's. If the forward returns a tuple/list the first
tensor is used, a dict its ``"logits"`` entry (else its first tensor value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SuiteError
from ..task import StepOutput, Task
from .transfer import unwrap

__all__ = ["distill_loss", "distill_task", "main_tensor", "run_distill"]


def main_tensor(output: Any) -> torch.Tensor:
    """The tensor of a model output that distillation compares (see module docstring)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        if isinstance(output.get("logits"), torch.Tensor):
            return output["logits"]
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise SuiteError(
        f"the model returns {type(output).__name__}, which holds no tensor to distill; "
        "return a tensor, a tuple starting with one, or a dict with 'logits'."
    )


def pick_kind(task: Task[Any], output: torch.Tensor, setting: str) -> str:
    """``"kl"`` or ``"mse"`` for ``distill.loss = setting`` (``auto`` decides by output)."""
    if setting != "auto":
        return setting
    if getattr(type(task), "output_kind", "") == "regression":
        return "mse"
    is_logits = output.is_floating_point() and output.dim() >= 2 and output.shape[-1] > 1
    return "kl" if is_logits else "mse"


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str,
                 temperature: float) -> torch.Tensor:
    """The distillation term between one student and one teacher output.

    Args:
        student: ``[..., C]`` logits or ``[..., D]`` regression outputs (with grad).
        teacher: Same shape, no grad.
        kind: ``"kl"`` or ``"mse"``.
        temperature: Softmax temperature for ``kl``.
    """
    if student.shape != teacher.shape:
        raise SuiteError(
            f"student output shape {tuple(student.shape)} differs from the teacher's "
            f"{tuple(teacher.shape)}; distillation needs the same outputs (e.g. the same "
            "vocabulary): change only hidden sizes/depths in the student overrides."
        )
    if kind == "mse":
        return F.mse_loss(student.float(), teacher.float())
    t = temperature
    s_log = F.log_softmax(student.float() / t, dim=-1)   # [..., C]
    t_log = F.log_softmax(teacher.float() / t, dim=-1)   # [..., C]
    per_position = F.kl_div(s_log, t_log, log_target=True, reduction="none").sum(-1)  # [...]
    return per_position.mean() * t * t


@dataclass
class _Teacher:
    task: Task[Any]
    model: nn.Module
    validating: bool = False


class _Capture:
    """Records every output of a module's forward while active."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.outputs = module, []  # type: ignore[var-annotated]

    def __enter__(self) -> list[Any]:
        self.handle = self.module.register_forward_hook(
            lambda _m, _i, out: self.outputs.append(out)
        )
        return self.outputs

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


class _DistillMixin:
    """Mixed in front of the task's class: the distillation loss around its training_step."""

    _teacher: _Teacher

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        base = super().training_step  # type: ignore[misc]
        if self._teacher.validating:
            return base(model, batch)
        cfg = self.cfg.distill  # type: ignore[attr-defined]
        with _Capture(unwrap(model)) as student_outs:
            out: StepOutput = base(model, batch)
        teacher = self._teacher.model
        device = next(unwrap(model).parameters()).device
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        teacher.eval()
        with torch.no_grad(), _Capture(teacher) as teacher_outs:
            self._teacher.task.training_step(teacher, batch)
        if not student_outs or len(student_outs) != len(teacher_outs):
            raise SuiteError(
                "distillation could not pair student and teacher outputs (the task's "
                "training_step called the model a different number of times)."
            )
        terms = []
        for s, t in zip(student_outs, teacher_outs, strict=True):
            s_t, t_t = main_tensor(s), main_tensor(t)
            kind = pick_kind(self, s_t, cfg.loss)  # type: ignore[arg-type]
            terms.append(distill_loss(s_t, t_t.detach(), kind, cfg.temperature))
        kd = torch.stack(terms).mean()
        loss = cfg.alpha * out.loss + (1.0 - cfg.alpha) * kd
        metrics = {**out.metrics, "task_loss": out.loss.detach(), "distill": kd.detach()}
        return StepOutput(loss, metrics, out.weight)

    def validation_step(self, model: nn.Module, batch: Any) -> StepOutput:
        # dev metrics are the task's own (comparable with the teacher's), not the mixed loss
        self._teacher.validating = True
        try:
            return super().validation_step(model, batch)  # type: ignore[misc]
        finally:
            self._teacher.validating = False


def distill_task(student: Task[Any], teacher_task: Task[Any], teacher: nn.Module) -> Task[Any]:
    """``student`` re-classed so its training_step adds the distillation term."""
    cls = type(student)
    sub = type(f"Distill{cls.__name__}", (_DistillMixin, cls), {"__module__": cls.__module__})
    new = sub(student.cfg)
    teacher.requires_grad_(False)
    new._teacher = _Teacher(teacher_task, teacher)
    return new


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def run_distill(
    task_name: str,
    teacher_run: str,
    *,
    files: list[str] | tuple[str, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    name: str | None = None,
    run_dir: str | None = None,
) -> Path:
    """``suite distill``: train a student run; print and write teacher vs student metrics."""
    from ..config import to_toml
    from ..runs import create_run_dir, write_run_config
    from ..train import fit
    from ..train.checkpoint import best_checkpoint, load_checkpoint
    from .report import table, write_json
    from .sections import base_config
    from .source import load_source, resolve_task, task_config_from_run

    teacher = load_source(task_name, teacher_run, flag="--teacher")
    _, saved = task_config_from_run(task_name, teacher_run, "--teacher")
    student = resolve_task(task_name, base=saved, files=files, overrides=overrides,
                           section="distill")
    task = distill_task(student, teacher.task, teacher.model)
    built: list[nn.Module] = []
    original_build = task.build_model

    def build() -> nn.Module:
        built.append(original_build())
        return built[-1]

    task.build_model = build  # type: ignore[method-assign]
    dcfg = student.cfg.distill
    out = create_run_dir(task_name, name, run_dir)
    write_run_config(out, base_config(student.cfg, type(student).Config), task_name)
    (out / "distill.toml").write_text(
        f"# distilled from teacher {teacher.run_dir} ({teacher.checkpoint.name})\n"
        f'teacher_run = "{teacher.run_dir}"\n\n[distill]\n' + to_toml(dcfg, comments=False)
    )
    print(f"distilling {task_name}: teacher {teacher.checkpoint} "
          f"({_params(teacher.model):,} params), alpha={dcfg.alpha}, T={dcfg.temperature}")
    print(f"run directory: {out}")
    fit(task, out)
    model = unwrap(built[-1])
    model.load_state_dict(load_checkpoint(best_checkpoint(out))["model"])
    model.cpu().eval()
    teacher.model.cpu().eval()
    splits = [s for s in ("dev", "test") if s in student.datasets()]
    rows, result = [], {"teacher_run": str(teacher.run_dir), "teacher": {}, "student": {}}
    for who, m in (("teacher", teacher.model), ("student", model)):
        result[who]["params"] = _params(m)  # type: ignore[index]
        for split in splits:
            metrics = student.evaluate(m, split)
            result[who][split] = metrics  # type: ignore[index]
            rows += [(who, _params(m), split, k, v) for k, v in metrics.items()]
    write_json(out / "distill.json", result)
    print(table(["model", "params", "split", "metric", "value"], rows))
    print(f"wrote {out / 'distill.json'} and {best_checkpoint(out)}")
    return out
