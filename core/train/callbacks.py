"""Training callbacks: small objects the :class:`~torchsuite.core.train.Trainer` calls.

A callback subclasses :class:`Callback` and overrides only the methods it needs;
every method is a no-op by default. The trainer calls them in this order::

    on_fit_start(state)                  once, after the model and (resumed) weights exist
    load_state_dict(saved)               a resumed run: the state the checkpoint holds
    repeat every optimizer step:
        on_step_end(step, metrics)       after the optimizer and schedule stepped
        on_evaluate_start(step)          at a dev evaluation, before it runs
        on_evaluate(step, metrics)       right after it, with the dev metrics
        on_checkpoint(path)              rank 0, after a checkpoint file was written
    on_fit_end(result)                   when fit returns (also after a signal or a stop)

A callback stops training with ``state.request_stop("why")`` (the run saves a
checkpoint and returns, ``FitResult.stopped_early`` and ``stop_reason`` set); an
exception it raises ends the fit with that exception (the tuner's pruning does this).

Callbacks come from two places: names in ``train.callbacks`` (``["ema"]``),
looked up among the callbacks plugins offer through the ``register_callbacks``
hook (:func:`resolve_callbacks`), and objects passed as ``fit(..., callbacks=[...])``.
A callback with state (:meth:`Callback.state_dict`) has it saved in every checkpoint
under ``"callbacks"`` and restored on resume, so it continues exactly; the state
must hold only tensors and primitives (checkpoints load with ``weights_only=True``).

Under ``torchrun`` every rank calls every method (the dev metrics are rank 0's on
every rank); side effects such as writing files belong behind ``state.is_main``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError, PluginError

if TYPE_CHECKING:
    from .trainer import FitResult

__all__ = [
    "Callback",
    "EMACallback",
    "TrainState",
    "ema_weights",
    "resolve_callbacks",
    "state_keys",
]


@dataclass
class TrainState:
    """What a callback sees of a running fit (the same object for the whole fit).

    Attributes:
        model: The unwrapped model (not the DDP/compiled wrapper); its parameters are
            the ones being trained.
        config: The task's resolved config (``config.train``, ``config.optim``, ...).
        run_dir: The run directory.
        step: Optimizer steps done so far (updated before each ``on_step_end``).
        max_steps: ``train.max_steps``.
        rank: This process's rank (0 without torchrun).
        world_size: Number of processes.
        strategy: ``train.strategy`` (``ddp`` or ``fsdp``) when ``world_size > 1``.
        stop_reason: Set by :meth:`request_stop`; empty while training goes on.
    """

    model: nn.Module
    config: Any
    run_dir: Path
    step: int
    max_steps: int
    rank: int = 0
    world_size: int = 1
    strategy: str = "ddp"
    stop_reason: str = ""
    _log: Callable[[dict[str, Any]], None] = field(default=lambda record: None, repr=False)

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0, the one that writes files."""
        return self.rank == 0

    def request_stop(self, reason: str) -> None:
        """Ask the trainer to save a checkpoint and stop after the current step.

        Args:
            reason: One line saying why; shown in the progress output and
                ``FitResult.stop_reason``.
        """
        if not self.stop_reason:
            self.stop_reason = reason or "stopped by a callback"

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` to the run's ``metrics.jsonl`` (rank 0; ``step`` added if absent).

        Args:
            record: JSON-serialisable values, e.g. ``{"event": "pruned"}``.
        """
        self._log({"step": self.step, **record})


class Callback:
    """Base class of training callbacks: every hook does nothing until overridden.

    Attributes:
        name: The key of this callback's state in checkpoints. Callbacks enabled
            through ``train.callbacks`` get their registered name; otherwise the
            class name is used.
    """

    name: str = ""

    def on_fit_start(self, state: TrainState) -> None:
        """Training is about to start (or continue, for a resumed run).

        Args:
            state: The fit's :class:`TrainState`; keep it to read the step or to
                call ``state.request_stop`` later.
        """

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        """One optimizer step finished.

        Args:
            step: Optimizer steps done, counting from 1.
            metrics: This process's ``train.loss``, ``grad_norm`` and ``lr`` of the step
                (not averaged across ranks; ``metrics.jsonl`` has the averages).
        """

    def on_evaluate_start(self, step: int) -> None:
        """A dev evaluation of the model is about to run (e.g. swap in other weights).

        Args:
            step: The optimizer step being evaluated.
        """

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        """A dev evaluation finished; its metrics are already in ``metrics.jsonl``.

        Call ``state.request_stop(reason)`` to end training here, or raise to abort.

        Args:
            step: The optimizer step that was evaluated.
            metrics: Dev metrics keyed as logged, e.g. ``{"dev.loss": 0.41}``.
        """

    def on_checkpoint(self, path: Path) -> None:
        """Rank 0 wrote a checkpoint (this callback's :meth:`state_dict` is in it).

        Args:
            path: The ``step-N.pt`` file.
        """

    def on_fit_end(self, result: FitResult) -> None:
        """The fit returns ``result`` (not called when it raises).

        Args:
            result: What ``fit`` returns.
        """

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (tensors and primitives only; ``{}``: none).

        Returns:
            A dict that :meth:`load_state_dict` accepts.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (called after :meth:`on_fit_start`).

        Args:
            state: The saved dict, as read back from the checkpoint.
        """


def state_keys(callbacks: Sequence[Callback]) -> list[str]:
    """Checkpoint keys of ``callbacks``: their name, numbered when a name repeats."""
    keys: list[str] = []
    for cb in callbacks:
        base = cb.name or type(cb).__name__
        key, n = base, 1
        while key in keys:
            n += 1
            key = f"{base}#{n}"
        keys.append(key)
    return keys


def resolve_callbacks(
    names: Iterable[str], available: Mapping[str, Callable[..., Any]] | None = None
) -> list[Callback]:
    """Build the callbacks ``train.callbacks`` names.

    Args:
        names: Registered callback names, in the order their hooks should run.
        available: Name -> factory (a class or function called without arguments);
            default: the plugin registry's ``callbacks``.

    Returns:
        One new :class:`Callback` per name, its ``name`` set to the registered name.

    Raises:
        ConfigError: A name nobody registered (the message names the closest one).
        PluginError: A factory that does not return a :class:`Callback`.
    """
    names = list(names)
    if not names:
        return []
    if available is None:
        from ..registry import get_registry

        available = get_registry().callbacks
    out: list[Callback] = []
    for name in names:
        factory = available.get(name)
        if factory is None:
            close = difflib.get_close_matches(name, list(available), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            known = ", ".join(sorted(available)) or "none"
            raise ConfigError(
                f"config key 'train.callbacks' names '{name}', which no plugin registers.{hint} "
                f"Registered callbacks: {known}. Fix train.callbacks, or install the plugin "
                "that provides it (`suite plugins` lists the loaded ones)."
            )
        cb = factory()
        if not isinstance(cb, Callback):
            raise PluginError(
                f"callback '{name}' ({factory!r}) returned {type(cb).__name__}, not a "
                "torchsuite.core.train.Callback; its plugin must register a Callback subclass."
            )
        if not cb.name:
            cb.name = name
        out.append(cb)
    return out


class EMACallback(Callback):
    """Exponential moving average of the weights, used for every dev evaluation.

    After each optimizer step ``ema = d * ema + (1 - d) * weights`` with
    ``d = min(train.ema_decay, (1 + n) / (10 + n))`` after ``n`` updates (the warm-up
    keeps early averages from clinging to the random initial weights); integer
    buffers are copied. Evaluations (and so ``best.pt`` selection and early
    stopping) use the averaged weights; training continues on the raw ones. The
    average is saved in every checkpoint under ``callbacks.ema`` (read it with
    :func:`ema_weights`) and resumed bit-exactly.

    Args:
        decay: The decay; ``None`` reads ``train.ema_decay`` at fit start.
    """

    name = "ema"

    def __init__(self, decay: float | None = None) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {}
        self._model: nn.Module | None = None
        self._backup: dict[str, torch.Tensor] = {}

    def on_fit_start(self, state: TrainState) -> None:
        if state.world_size > 1 and state.strategy == "fsdp":
            raise ConfigError(
                "train.callbacks 'ema' averages whole weight tensors, which train.strategy=fsdp "
                "shards across processes; use train.strategy=ddp or drop 'ema'."
            )
        if self.decay is None:
            self.decay = float(getattr(state.config.train, "ema_decay", 0.999))
        self._model = state.model
        self.shadow = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        assert self._model is not None and self.decay is not None
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in self._model.state_dict().items():
            avg = self.shadow[key]
            if avg.is_floating_point():
                avg.lerp_(value.detach(), 1.0 - d)
            else:
                avg.copy_(value)

    @torch.no_grad()
    def on_evaluate_start(self, step: int) -> None:
        assert self._model is not None
        for key, value in self._model.state_dict().items():
            self._backup[key] = value.detach().clone()
            value.copy_(self.shadow[key])

    @torch.no_grad()
    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        assert self._model is not None
        for key, value in self._model.state_dict().items():
            if key in self._backup:
                value.copy_(self._backup[key])  # training goes on with the raw weights
        self._backup.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "shadow": {k: v.detach().cpu().clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        if missing:
            raise ConfigError(
                f"the checkpoint's 'ema' state lacks weights {', '.join(missing[:3])} of the "
                "current model; resume with the run's own model config."
            )
        self.updates = int(state["updates"])
        for key, avg in self.shadow.items():
            avg.copy_(state["shadow"][key])


def ema_weights(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    """The averaged weights an ``ema`` callback saved in a checkpoint, if any.

    Args:
        ckpt: A checkpoint as :func:`~torchsuite.core.train.load_checkpoint` returns it.

    Returns:
        A model ``state_dict`` (load it with ``model.load_state_dict``), or ``None``
        when the run trained without ``ema``.
    """
    state = (ckpt.get("callbacks") or {}).get("ema")
    return dict(state["shadow"]) if state and "shadow" in state else None
