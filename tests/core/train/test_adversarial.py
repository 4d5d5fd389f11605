"""Several optimizers (GAN): update schedule, freezing, exact resume, a real 1-D GAN."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torchsuite.core import StepOutput, Task
from torchsuite.core.errors import SuiteError
from torchsuite.core.train import (
    OptimizerSpec,
    TrainingDiverged,
    best_checkpoint,
    fit,
    load_checkpoint,
)
from torchsuite.core.train.logs import read_metrics
from torchsuite.core.train.precision import Precision
from torchsuite.core.train.trainer import seed_everything


def _phase_losses(run: Path) -> dict[int, tuple[float, float]]:
    return {r["step"]: (r["train.disc.loss"], r["train.gen.loss"])
            for r in read_metrics(run / "metrics.jsonl") if "train.gen.loss" in r}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_is_exact_for_both_optimizers(make_gan: Any, tmp_path: Path,
                                             precision: str) -> None:
    common = ["train.max_steps=10", "train.grad_accum=2", "gan.n_critic=2",
              "train.checkpoint_every=1", "train.keep_last=20", f"train.precision={precision}",
              "gan.loss=wgan-gp"]
    fit(make_gan(*common), tmp_path / "full")
    resumed = fit(make_gan(*common), tmp_path / "resumed",
                  resume_from=tmp_path / "full" / "checkpoints" / "step-4.pt")
    assert resumed.steps == 10
    a, b = _phase_losses(tmp_path / "full"), _phase_losses(tmp_path / "resumed")
    assert sorted(b) == list(range(5, 11))
    assert all(a[s] == b[s] for s in b), [(s, a[s], b[s]) for s in b if a[s] != b[s]]
    ca = load_checkpoint(tmp_path / "full" / "checkpoints" / "step-10.pt")
    cb = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "step-10.pt")
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    for name in ("disc", "gen"):
        sa, sb = ca["optimizers"][name]["state"], cb["optimizers"][name]["state"]
        assert sa.keys() == sb.keys() and len(sa) > 0
        assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
        assert ca["schedulers"][name] == cb["schedulers"][name]
    assert "optimizer" not in ca  # multi-optimizer checkpoints keep states by name


class _Recording:
    """Mixin for GanTask: records, per phase call, which parameters require grad."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)  # type: ignore[call-arg]
        self.log: list[tuple[str, bool, bool, int]] = []

    def adversarial_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        gen_grad = all(p.requires_grad for p in model["gen"].parameters())
        disc_grad = all(p.requires_grad for p in model["disc"].parameters())
        self.log.append((phase, gen_grad, disc_grad, id(batch[0])))
        return super().adversarial_step(model, batch, phase)  # type: ignore[misc]


def _recording_task(gan_module: ModuleType, make_gan: Any, *overrides: str,
                    gen_every: int = 1) -> Any:
    class Recording(_Recording, gan_module.GanTask):
        def configure_optimizers(self, model: nn.Module) -> Sequence[OptimizerSpec]:
            disc, gen = super().configure_optimizers(model)
            gen.every = gen_every
            return [disc, gen]

    return Recording(make_gan(*overrides).cfg)


def test_schedule_n_critic_every_and_freezing(gan_module: ModuleType, make_gan: Any,
                                              tmp_path: Path) -> None:
    task = _recording_task(gan_module, make_gan, "train.max_steps=4", "gan.n_critic=3",
                           "train.grad_accum=2", gen_every=2)
    seed_everything(task.cfg.train.seed)
    before = task.build_model()  # the trainer seeds the same way: identical initial weights
    fit(task, tmp_path)
    phases = [p for p, *_ in task.log]
    # 4 rounds x (3 critic updates) + generator in rounds 0 and 2; x2 micro-batches each
    assert phases == (["disc"] * 6 + ["gen"] * 2 + ["disc"] * 6) * 2
    assert all(disc and not gen for p, gen, disc, _ in task.log if p == "disc")
    assert all(gen and not disc for p, gen, disc, _ in task.log if p == "gen")
    after = load_checkpoint(best_checkpoint(tmp_path))["model"]
    for key, value in before.state_dict().items():
        assert not torch.equal(after[key], value), f"{key} was never updated"
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert "train.gen.loss" in records[0] and "train.gen.loss" not in records[1]
    assert {"lr.disc", "lr.gen", "grad_norm.disc", "train.disc.d_gap"} <= set(records[0])


def test_reuse_batch(gan_module: ModuleType, make_gan: Any, tmp_path: Path) -> None:
    task = _recording_task(gan_module, make_gan, "train.max_steps=3", "gan.reuse_batch=true")
    fit(task, tmp_path)
    ids = [(p, i) for p, _, _, i in task.log]
    disc_ids = [i for p, i in ids if p == "disc"]
    gen_ids = [i for p, i in ids if p == "gen"]
    assert gen_ids == disc_ids and len(set(disc_ids)) == 3


def test_nan_in_one_phase_names_it(make_gan: Any, tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"step 3 \(gen optimizer\)"):
        fit(make_gan("train.max_steps=6", "gan.nan_phase=gen", "gan.nan_at=3"), tmp_path)


def test_bad_optimizer_specs(gan_module: ModuleType, make_gan: Any, tmp_path: Path) -> None:
    class Overlap(gan_module.GanTask):
        def configure_optimizers(self, model: nn.Module) -> Sequence[OptimizerSpec]:
            return [OptimizerSpec("all", model), OptimizerSpec("gen", model["gen"])]

    class Twice(gan_module.GanTask):
        def configure_optimizers(self, model: nn.Module) -> Sequence[OptimizerSpec]:
            return [OptimizerSpec("x", model["disc"]), OptimizerSpec("x", model["gen"])]

    cfg = make_gan("train.max_steps=1").cfg
    with pytest.raises(SuiteError, match="belongs to both 'all' and 'gen'"):
        fit(Overlap(cfg), tmp_path / "a")
    with pytest.raises(SuiteError, match="unique"):
        fit(Twice(cfg), tmp_path / "b")


def test_resume_with_other_optimizer_names(gan_module: ModuleType, make_gan: Any,
                                           tmp_path: Path) -> None:
    class Renamed(gan_module.GanTask):
        def configure_optimizers(self, model: nn.Module) -> Sequence[OptimizerSpec]:
            return [OptimizerSpec("critic", model["disc"]), OptimizerSpec("gen", model["gen"])]

        def adversarial_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
            return super().adversarial_step(model, batch, "disc" if phase == "critic" else phase)

    fit(make_gan("train.max_steps=2"), tmp_path)
    expected = r"holds optimizers \['disc', 'gen'\].*defines \['critic', 'gen'\]"
    with pytest.raises(SuiteError, match=expected):
        fit(Renamed(make_gan("train.max_steps=4").cfg), tmp_path, resume_from=tmp_path)


def _ks(x: torch.Tensor, y: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    xs, ys = x.flatten().sort().values, y.flatten().sort().values
    grid = torch.cat([xs, ys])
    cx = torch.searchsorted(xs, grid, right=True) / len(xs)
    cy = torch.searchsorted(ys, grid, right=True) / len(ys)
    return float((cx - cy).abs().max())


def _train_and_sample(gan_module: ModuleType, make_gan: Any, run: Path, steps: int,
                      batch: int, lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train the non-saturating GAN with an R1 penalty; (untrained, trained, target) samples."""
    task = make_gan(f"train.max_steps={steps}", f"train.batch_size={batch}", "gan.n=4096",
                    "gan.loss=ns", "gan.gp=1", f"gan.d_lr={lr}", f"gan.g_lr={lr}",
                    "optim.min_lr_ratio=0.02", f"train.eval_every={steps // 2}",
                    "train.log_every=50")
    seed_everything(task.cfg.train.seed)
    untrained = task.build_model()
    fit(task, run)
    model = task.build_model()
    model.load_state_dict(load_checkpoint(run / "checkpoints" / f"step-{steps}.pt")["model"])
    target = gan_module.sample_target(4000, torch.Generator().manual_seed(6))
    with torch.no_grad():
        fake = gan_module.generate(model, 4000, torch.Generator().manual_seed(5))
        before = gan_module.generate(untrained, 4000, torch.Generator().manual_seed(5))
    return before, fake, target


def _check_mixture(fake: torch.Tensor, target: torch.Tensor, ks: float, mean_tol: float,
                   std_range: tuple[float, float]) -> None:
    assert _ks(fake, target) < ks
    right, left = fake[fake > 0], fake[fake <= 0]
    assert 0.4 < len(right) / len(fake) < 0.6  # both modes, no collapse
    assert abs(float(right.mean()) - 2.0) < mean_tol
    assert abs(float(left.mean()) + 2.0) < mean_tol
    lo, hi = std_range  # the target's modes have std 0.5
    assert lo < float(right.std()) < hi and lo < float(left.std()) < hi


def test_gan_matches_the_gaussian_mixture(gan_module: ModuleType, make_gan: Any,
                                          tmp_path: Path) -> None:
    before, fake, target = _train_and_sample(gan_module, make_gan, tmp_path, 300, 128, 3e-3)
    assert _ks(before, target) > 0.4  # the check can fail: the untrained generator fails it
    _check_mixture(fake, target, ks=0.15, mean_tol=0.35, std_range=(0.3, 0.9))


@pytest.mark.slow
def test_gan_matches_the_gaussian_mixture_closely(gan_module: ModuleType, make_gan: Any,
                                                  tmp_path: Path) -> None:
    _, fake, target = _train_and_sample(gan_module, make_gan, tmp_path, 1500, 256, 2e-3)
    _check_mixture(fake, target, ks=0.06, mean_tol=0.15, std_range=(0.4, 0.7))


def test_fp16_scalers_per_optimizer_resume_exactly(make_gan: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # fp16 + GradScaler is the CUDA recipe; CPU autocast supports fp16 too, which lets
    # this test exercise one scaler per optimizer (saved, restored) without a GPU.
    monkeypatch.setattr(Precision, "resolve",
                        classmethod(lambda cls, name, device: cls("cpu", torch.float16)))
    common = ["train.max_steps=8", "gan.n_critic=2", "train.checkpoint_every=1",
              "train.keep_last=20", "gan.loss=wgan-gp"]
    fit(make_gan(*common), tmp_path / "full")
    fit(make_gan(*common), tmp_path / "resumed",
        resume_from=tmp_path / "full" / "checkpoints" / "step-3.pt")
    a, b = _phase_losses(tmp_path / "full"), _phase_losses(tmp_path / "resumed")
    assert sorted(b) == list(range(4, 9)) and all(a[s] == b[s] for s in b)
    ca = load_checkpoint(tmp_path / "full" / "checkpoints" / "step-8.pt")
    cb = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "step-8.pt")
    assert ca["scalers"] == cb["scalers"]
    assert set(ca["scalers"]) == {"disc", "gen"}
    assert all(s is not None and s["scale"] > 0 for s in ca["scalers"].values())
    # 2 critic updates per generator update: each scaler counts its own good steps
    assert ca["scalers"]["disc"]["_growth_tracker"] != ca["scalers"]["gen"]["_growth_tracker"]


def test_dev_split_needs_a_validation_step(gan_module: ModuleType, make_gan: Any,
                                           tmp_path: Path) -> None:
    class NoValidation(gan_module.GanTask):
        validation_step = Task.validation_step

    with pytest.raises(SuiteError, match="no validation_step"):
        fit(NoValidation(make_gan("train.max_steps=2").cfg), tmp_path)
