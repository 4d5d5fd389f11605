"""Several optimizers in one run: adversarial (GAN) training with an update schedule.

A task opts in by defining two methods (the :class:`AdversarialTask` mixin
documents them; inheriting from it is optional, the trainer looks for the
methods):

``configure_optimizers(model) -> Sequence[OptimizerSpec]``
    Which parameters each optimizer owns and how often it updates. The list
    order is the update order inside one trainer step (a *round*).
``adversarial_step(model, batch, phase) -> StepOutput``
    The loss of optimizer ``phase`` (its :attr:`OptimizerSpec.name`) on one batch.

One trainer step (``train.max_steps`` counts these) runs every spec in order;
spec ``s`` updates ``s.steps`` times in a row (``n_critic``), only in rounds
where ``round % s.every == 0``. Each update is an ordinary trainer update:
``train.grad_accum`` micro-batches under autocast, backward through its own
``GradScaler``, unscale, clip (``s.clip_grad_norm`` or ``train.clip_grad_norm``)
over *its* parameters, NaN/Inf guard, optimizer step, its own LR schedule
(stepped once per round). While a phase runs, the parameters of the *other*
optimizers have ``requires_grad=False`` (as Lightning's ``toggle_optimizer``),
so a discriminator loss may call the generator without ``detach()`` and no
gradient leaks into the other network. Every optimizer, scheduler and scaler is
checkpointed under its name, and resume is exact for all of them.

Example — a GAN (``model`` holds ``model["gen"]`` and ``model["disc"]``)::

    from torchsuite.core import StepOutput, Task
    from torchsuite.core.train import AdversarialTask, OptimizerSpec

    class Gan(AdversarialTask, Task[GanConfig]):
        def build_model(self):
            return nn.ModuleDict({"gen": Generator(), "disc": Discriminator()})

        def configure_optimizers(self, model):
            return [OptimizerSpec("disc", model["disc"], steps=self.cfg.gan.n_critic,
                                  betas=(0.5, 0.9)),
                    OptimizerSpec("gen", model["gen"], betas=(0.5, 0.9))]

        def adversarial_step(self, model, batch, phase):
            real = batch[0]
            fake = model["gen"](torch.randn(len(real), 8, device=real.device))
            if phase == "disc":   # gen's parameters are frozen during this phase
                loss = (F.softplus(-model["disc"](real)) + F.softplus(model["disc"](fake))).mean()
            else:
                loss = F.softplus(-model["disc"](fake)).mean()
            return StepOutput(loss, {"d_real": model["disc"](real).mean().detach()})

        def validation_step(self, model, batch):  # needed with a dev split
            ...  # e.g. a distance between generated and real samples

A spectrogram refiner with a multi-scale discriminator and a feature-matching
loss is the same shape: ``"disc"`` first (hinge or LSGAN loss on real vs
refined spectrograms), then ``"gen"`` with ``reuse_batch=True`` so both see the
same batch, its loss = reconstruction + ``lambda_fm`` x feature matching +
adversarial term. The generator forward runs once per phase (it is not cached
across phases, so AMP/backward never see a stale graph).

Batches: by default every update draws fresh micro-batches from the train
stream (WGAN's ``n_critic`` critic updates each see new data);
``reuse_batch=True`` makes an update reuse the micro-batches that the previous
update of the round drew (pix2pix/HiFi-GAN style D-then-G on one batch).

Logged per round: ``train.<phase>.loss``, ``train.<phase>.<metric>`` (last
micro-batch), ``lr.<phase>``, ``grad_norm.<phase>``; ``train.loss`` is the loss
of the last phase that updated (usually the generator's). Under torchrun the
model is not wrapped in DDP (its phases use disjoint parameter subsets);
gradients of the phase's parameters are averaged across processes by hand
before the step, and rank 0's buffers (BatchNorm statistics) are broadcast at
the start of every round, as DDP would. A task with a dev split must define
``validation_step`` (the dev loss/metrics to monitor, e.g. a distance between
generated and real samples); there is no ``training_step`` to fall back on.
``train.strategy=fsdp`` is not supported with several optimizers.
``train.compile`` compiles each direct child module of the model in place
(``module.compile()``), so ``model["gen"]`` keeps working.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SuiteError
from ..task import StepOutput
from .config import OptimConfig
from .optim import build_scheduler, optimizer_for

__all__ = ["AdversarialTask", "OptimizerSpec", "Phase", "build_phases", "is_multi_optimizer"]


@dataclass
class OptimizerSpec:
    """One optimizer of a multi-optimizer task (see the module docstring).

    Attributes:
        name: Unique phase name passed to ``adversarial_step`` ("gen", "disc").
        params: A module or an iterable of parameters this optimizer owns. No
            parameter may belong to two specs; parameters in no spec are not trained.
        steps: Updates in a row per round (``n_critic`` for a WGAN critic).
        every: Update only in rounds ``r`` with ``r % every == 0`` (r counts from 0).
        lr: Peak learning rate (None: ``optim.lr``).
        betas: AdamW betas (None: ``optim.betas``); GANs often use ``(0.5, 0.9)``.
        weight_decay: Decoupled weight decay on weight matrices (None: ``optim.weight_decay``).
        clip_grad_norm: Clip this optimizer's gradient norm (None: ``train.clip_grad_norm``;
            0: off).
        schedule: Follow ``optim.schedule``/``optim.warmup_steps``; False: constant lr.
        reuse_batch: Reuse the micro-batches the previous update of this round drew.
    """

    name: str
    params: nn.Module | Iterable[nn.Parameter]
    steps: int = 1
    every: int = 1
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None
    clip_grad_norm: float | None = None
    schedule: bool = True
    reuse_batch: bool = False


class AdversarialTask:
    """Mixin documenting the two hooks of a multi-optimizer task (module docstring).

    Put it before ``Task`` in the bases: ``class Gan(AdversarialTask, Task[Cfg])``.
    """

    def configure_optimizers(self, model: nn.Module) -> Sequence[OptimizerSpec]:
        """The optimizers, in update order, each with its parameters and schedule.

        Args:
            model: The model from ``build_model()`` (on its device, not wrapped).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement "
                                  "configure_optimizers()")

    def adversarial_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        """The loss that optimizer ``phase`` minimises on ``batch`` (+ metrics to log).

        Only ``phase``'s parameters require gradients while this runs.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement adversarial_step()")


def is_multi_optimizer(task: Any) -> bool:
    """Whether ``task`` defines its own optimizers (the adversarial hooks)."""
    conf = getattr(type(task), "configure_optimizers", None)
    return conf is not None and conf is not AdversarialTask.configure_optimizers


@dataclass
class Phase:
    """One optimizer with everything the trainer needs to update it."""

    name: str
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    params: list[nn.Parameter]
    l1_params: list[nn.Parameter]
    clip: float
    steps: int = 1
    every: int = 1
    reuse_batch: bool = False
    frozen: list[nn.Parameter] = dataclasses.field(default_factory=list)  # other phases' params

    def active(self, round_index: int) -> bool:
        """Whether this phase updates in round ``round_index`` (0-based)."""
        return round_index % self.every == 0

    @contextlib.contextmanager
    def toggled(self) -> Iterator[None]:
        """Freeze the other phases' parameters while this phase computes its loss."""
        was = [p.requires_grad for p in self.frozen]
        for p in self.frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(self.frozen, was, strict=True):
                p.requires_grad_(flag)


def _param_list(spec: OptimizerSpec) -> list[nn.Parameter]:
    params = spec.params.parameters() if isinstance(spec.params, nn.Module) else spec.params
    return [p for p in params if p.requires_grad]


def build_phases(task: Any, model: nn.Module, ocfg: OptimConfig, max_steps: int,
                 clip_default: float, device_type: str, fp16: bool) -> list[Phase]:
    """Turn ``task.configure_optimizers(model)`` into checked :class:`Phase` objects.

    Raises:
        SuiteError: empty/duplicate names, a parameter owned twice, or an optimizer
            with no trainable parameters (the message names the task and spec).
    """
    specs = list(task.configure_optimizers(model))
    where = f"task '{getattr(task, 'name', type(task).__name__)}': configure_optimizers()"
    if not specs:
        raise SuiteError(f"{where} returned no OptimizerSpec; return at least one.")
    names = [s.name for s in specs]
    if len(set(names)) != len(names) or not all(names):
        raise SuiteError(f"{where} returned names {names}; give each optimizer a unique, "
                         "non-empty name.")
    owned: dict[int, str] = {}
    lists = []
    for spec in specs:
        if spec.steps < 1 or spec.every < 1:
            raise SuiteError(f"{where}: OptimizerSpec '{spec.name}' has steps={spec.steps}, "
                             f"every={spec.every}; both must be at least 1.")
        params = _param_list(spec)
        if not params:
            raise SuiteError(f"{where}: OptimizerSpec '{spec.name}' has no trainable "
                             "parameters; pass the module it should train.")
        for p in params:
            if id(p) in owned:
                raise SuiteError(f"{where}: a parameter belongs to both '{owned[id(p)]}' and "
                                 f"'{spec.name}'; give each parameter to one optimizer.")
            owned[id(p)] = spec.name
        lists.append(params)
    everything = [p for params in lists for p in params]
    phases = []
    for spec, params in zip(specs, lists, strict=True):
        cfg = dataclasses.replace(
            ocfg,
            lr=ocfg.lr if spec.lr is None else spec.lr,
            betas=list(spec.betas) if spec.betas is not None else ocfg.betas,
            weight_decay=ocfg.weight_decay if spec.weight_decay is None else spec.weight_decay,
        )
        if not spec.schedule:
            cfg = dataclasses.replace(cfg, schedule="constant", warmup_steps=0)
        optimizer = optimizer_for(params, cfg)
        mine = {id(p) for p in params}
        phases.append(Phase(
            name=spec.name, optimizer=optimizer,
            scheduler=build_scheduler(optimizer, cfg, max_steps),
            scaler=torch.amp.GradScaler(device_type, enabled=fp16),
            params=params, l1_params=[p for p in params if p.ndim >= 2] if ocfg.l1 > 0 else [],
            clip=clip_default if spec.clip_grad_norm is None else spec.clip_grad_norm,
            steps=spec.steps, every=spec.every, reuse_batch=spec.reuse_batch,
            frozen=[p for p in everything if id(p) not in mine],
        ))
    return phases


