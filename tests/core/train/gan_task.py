"""``gan-toy``: a GAN on a 1-D two-Gaussian mixture, trained through the adversarial hooks.

The generator maps 4-D noise to a number; the discriminator scores numbers. The
target is ``0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)``. Noise comes from the global
torch RNG (so exact resume really checks the RNG) and the discriminator updates
``gan.n_critic`` times per generator update, each on a fresh batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset
from torchsuite.core import StepOutput, Task, TrainableConfig, hookimpl, option
from torchsuite.core.train import AdversarialTask, OptimizerSpec

MEANS = (-2.0, 2.0)
STD = 0.5
Z = 4


@dataclass
class GanOptions:
    n_critic: int = option(1, "discriminator updates per generator update", ge=1)
    hidden: int = option(32, "hidden units of both networks", ge=1)
    n: int = option(4096, "training samples", ge=1)
    d_lr: float = option(2e-3, "discriminator learning rate", ge=0.0)
    g_lr: float = option(2e-3, "generator learning rate", ge=0.0)
    reuse_batch: bool = option(False, "generator reuses the discriminator's batch")
    loss: str = option("ns", "non-saturating GAN (+ R1 penalty when gp > 0) or WGAN-GP",
                       choices=("ns", "wgan-gp"))
    gp: float = option(0.0, "gradient-penalty weight (R1 for ns, GP for wgan-gp)", ge=0.0)
    nan_phase: str = option("", "phase whose loss turns NaN at nan_at (tests)")
    nan_at: int = option(0, "round from which nan_phase's loss is NaN (0: never)", ge=0)


@dataclass
class GanConfig(TrainableConfig):
    gan: GanOptions = field(default_factory=GanOptions)


def sample_target(n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` samples of the target mixture, shape (n, 1)."""
    mode = torch.randint(0, 2, (n, 1), generator=gen).float()
    centre = MEANS[0] + (MEANS[1] - MEANS[0]) * mode
    return centre + STD * torch.randn(n, 1, generator=gen)


def _mlp(inp: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                         nn.LeakyReLU(0.2), nn.Linear(hidden, 1))


def generate(model: nn.Module, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """``n`` generator samples, shape (n, 1)."""
    device = next(model.parameters()).device
    z = torch.randn(n, Z, generator=gen).to(device)
    return model["gen"](z)


def _penalty(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (|grad D(x)| - 1)^2 at random interpolates of real and fake."""
    t = torch.rand(len(real), 1, device=real.device)
    x = (t * real + (1 - t) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def _check_ranks_agree(model: nn.Module) -> None:
    """Under torchrun: every process must hold the same weights (gradients averaged)."""
    if not torch.distributed.is_initialized():
        return
    mine = torch.stack([p.detach().double().sum() for p in model.parameters()])
    every = [torch.zeros_like(mine) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(every, mine)
    if not all(torch.equal(every[0], other) for other in every[1:]):
        raise RuntimeError("the processes' models differ: gradients were not averaged")


class GanTask(AdversarialTask, Task[GanConfig]):
    name = "gan-toy"
    Config = GanConfig
    description = "1-D Gaussian-mixture GAN (trainer test task)"

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__(cfg)
        self.rounds: dict[str, int] = {}

    def datasets(self) -> Mapping[str, Dataset[Any]]:
        return {"train": TensorDataset(sample_target(self.cfg.gan.n, torch.Generator()
                                                     .manual_seed(1))),
                "dev": TensorDataset(sample_target(512, torch.Generator().manual_seed(2)))}

    def build_model(self) -> nn.Module:
        h = self.cfg.gan.hidden
        return nn.ModuleDict({"gen": _mlp(Z, h), "disc": _mlp(1, h)})

    def configure_optimizers(self, model: nn.Module) -> Sequence[OptimizerSpec]:
        g = self.cfg.gan
        return [
            OptimizerSpec("disc", model["disc"], steps=g.n_critic, lr=g.d_lr, betas=(0.5, 0.9),
                          weight_decay=0.0),
            OptimizerSpec("gen", model["gen"], lr=g.g_lr, betas=(0.5, 0.9), weight_decay=0.0,
                          reuse_batch=g.reuse_batch),
        ]

    def adversarial_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        (real,) = batch
        fake = generate(model, len(real))
        self.rounds[phase] = self.rounds.get(phase, 0) + 1
        g = self.cfg.gan
        disc = model["disc"]
        if phase == "disc":  # the generator's parameters are frozen during this phase
            if g.loss == "ns" and g.gp > 0:
                real = real.detach().requires_grad_(True)
            d_real, d_fake = disc(real), disc(fake)
            if g.loss == "wgan-gp":
                loss = d_fake.mean() - d_real.mean() + g.gp * _penalty(disc, real, fake)
            else:
                loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
                if g.gp > 0:  # R1: keep the discriminator flat on real data
                    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
                    loss = loss + g.gp / 2 * grad.pow(2).sum(1).mean()
            metrics = {"d_gap": (d_real.mean() - d_fake.mean()).detach()}
        else:
            d_fake = disc(fake)
            loss = -d_fake.mean() if g.loss == "wgan-gp" else F.softplus(-d_fake).mean()
            metrics = {"fake_mean": fake.mean().detach()}
        if g.nan_at and phase == g.nan_phase and self.rounds[phase] >= g.nan_at:
            loss = loss * float("nan")
        return StepOutput(loss, metrics, weight=float(len(real)))

    def validation_step(self, model: nn.Module, batch: Any) -> StepOutput:
        """1-D Wasserstein distance between a fixed-noise fake batch and the real batch."""
        (real,) = batch
        _check_ranks_agree(model)
        fake = generate(model, len(real), torch.Generator().manual_seed(len(real)))
        w1 = (fake.flatten().sort().values - real.flatten().sort().values).abs().mean()
        return StepOutput(w1, {"w1": w1}, weight=float(len(real)))

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.randn(2, Z),)


@hookimpl
def register_tasks(register: Any) -> None:
    register(GanTask)
