"""The Task protocol: what a plugin implements so the core can train, evaluate and ship it.

A task is a class with a unique ``name``, a ``Config`` dataclass and a handful of
methods. The core creates one instance per resolved config (``task = MyTask(cfg)``)
and calls, depending on the verb:

========================  ==================================================
``suite prepare``         :meth:`Task.prepare`
``suite train``           :meth:`Task.datasets` (via :meth:`Task.dataloader`),
                          :meth:`Task.build_model`, :meth:`Task.training_step`,
                          :meth:`Task.validation_step`
``suite eval``            :meth:`Task.evaluate`
``suite export/serve``    :meth:`Task.example_inputs`
========================  ==================================================

Minimal example (see ``examples/plugin-template/`` for an installable one)::

    from dataclasses import dataclass, field
    import torch
    from torchsuite.core import Task, StepOutput, TrainableConfig, DataConfig, option

    @dataclass
    class RegressionData(DataConfig):
        n: int = option(1024, "number of synthetic samples")

    @dataclass
    class RegressionConfig(TrainableConfig):
        data: RegressionData = field(default_factory=RegressionData)

    class Regression(Task[RegressionConfig]):
        name = "regression"
        Config = RegressionConfig

        def datasets(self):
            x = torch.randn(self.cfg.data.n, 4)
            return {"train": TensorDataset(x, x.sum(1, keepdim=True)), "dev": ...}

        def build_model(self):
            return torch.nn.Linear(4, 1)

        def training_step(self, model, batch):
            x, y = batch
            loss = torch.nn.functional.mse_loss(model(x), y)
            return StepOutput(loss, {"mse": loss.detach()})

Design note: DESIGN.md sketches ``prepare(cfg, ...)``, ``datasets(cfg)`` and
``build_model(cfg)`` but ``training_step(model, batch)`` without a config. A task
*instance* bound to one config gives every method the same ``self.cfg`` (label
smoothing in ``training_step``, decoding options in ``evaluate``) and rules out
mixing two configs in one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .config import BaseConfig
from .errors import DataError

__all__ = ["SPLITS", "StepOutput", "Task", "TaskStatus"]

#: The four split names (DESIGN.md): original training data, selection, held-out
#: test, and a new similar data set for fine-tuning.
SPLITS: tuple[str, ...] = ("train", "dev", "test", "target")

ConfigT = TypeVar("ConfigT", bound=BaseConfig)


class TaskStatus:
    """Values for :attr:`Task.status`, shown by ``suite tasks``."""

    READY = "ready"
    PLACEHOLDER = "placeholder"


@dataclass
class StepOutput:
    """What :meth:`Task.training_step` / :meth:`Task.validation_step` return.

    Attributes:
        loss: Scalar tensor to minimise (the trainer calls ``backward`` on it).
        metrics: Named scalars to log (tensors or floats); averaged over batches in
            evaluation and reported as ``dev.<name>``.
        weight: How much this batch counts when averaging (e.g. its token count);
            defaults to 1.
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)
    weight: float = 1.0


class Task(Generic[ConfigT]):
    """Base class for tasks. Subclasses set ``name`` and ``Config`` and override methods.

    Class attributes:
        name: Unique task name used on the command line (``suite train <name>``).
        Config: The config dataclass; every field defaulted (see :func:`option`).
        description: One line for ``suite tasks``.
        status: :attr:`TaskStatus.READY`, or :attr:`TaskStatus.PLACEHOLDER` for a
            task that is registered but cannot train yet (``suite tasks`` says so).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[BaseConfig]] = BaseConfig
    description: ClassVar[str] = ""
    status: ClassVar[str] = TaskStatus.READY

    def __init__(self, cfg: ConfigT) -> None:
        self.cfg: ConfigT = cfg

    # ------------------------------------------------------------------ data
    @property
    def data_dir(self) -> Path:
        """Prepared-data directory: ``cfg.data.dir`` if set, else ``data/<task>``."""
        data = getattr(self.cfg, "data", None)
        configured = getattr(data, "dir", "") if data is not None else ""
        return Path(configured) if configured else Path("data") / self.name

    def prepare(self, source: Path | None = None) -> Path:
        """Turn raw inputs into shards + a split manifest under :attr:`data_dir`.

        Args:
            source: Raw input given by the user (``suite prepare TASK --source X``),
                or ``None`` for the task's embedded default.

        Returns:
            The directory written. Must print/log where it wrote and show progress
            for anything slow.
        """
        return self.data_dir

    def datasets(self) -> Mapping[str, Dataset[Any] | IterableDataset[Any]]:
        """The splits to serve, keyed by name from :data:`SPLITS` (at least ``train``).

        Raise :class:`DataError` with a how-to message when the data is missing.
        """
        raise NotImplementedError(f"task '{self.name}' does not implement datasets()")

    def collate(self, samples: list[Any]) -> Any:
        """Merge samples into a batch (default: ``torch.utils.data.default_collate``)."""
        return torch.utils.data.default_collate(samples)

    def dataloader(self, split: str, *, train: bool) -> Iterable[Any]:
        """Batches of ``split``. Override for token-budget batching or a custom sampler.

        The default wraps :meth:`datasets` in a ``DataLoader`` with
        ``cfg.train.batch_size``/``num_workers`` and :meth:`collate`; map-style
        datasets are shuffled for training with a seeded generator.
        """
        sets = self.datasets()
        if split not in sets:
            raise DataError(
                f"task '{self.name}' has no '{split}' split (it has: {', '.join(sets)}). "
                f"Re-run `suite prepare {self.name}` or choose another split."
            )
        ds = sets[split]
        tcfg = getattr(self.cfg, "train", None)
        batch_size = getattr(tcfg, "batch_size", 32)
        workers = getattr(tcfg, "num_workers", 0)
        if isinstance(ds, IterableDataset):
            return DataLoader(
                ds, batch_size=batch_size, num_workers=workers, collate_fn=self.collate
            )
        gen = torch.Generator().manual_seed(getattr(tcfg, "seed", 0))
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=train,
            generator=gen,
            num_workers=workers,
            collate_fn=self.collate,
            drop_last=False,
        )

    def augment(self, batch: Any) -> Any:
        """Training-time data augmentation applied to each training batch (default: none)."""
        return batch

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        """A fresh model for ``self.cfg`` (the model owns its dropout settings)."""
        raise NotImplementedError(f"task '{self.name}' does not implement build_model()")

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        """Forward one training batch and return its loss and metrics."""
        raise NotImplementedError(f"task '{self.name}' does not implement training_step()")

    def validation_step(self, model: nn.Module, batch: Any) -> StepOutput:
        """Forward one dev batch (no grad); defaults to :meth:`training_step`."""
        return self.training_step(model, batch)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Task quality metrics on ``split`` (BLEU, NLL, driving score, ...).

        The default averages :meth:`validation_step` metrics over the split.
        """
        model.eval()
        totals: dict[str, float] = {}
        weight = 0.0
        with torch.no_grad():
            for batch in self.dataloader(split, train=False):
                out = self.validation_step(model, batch)
                w = float(out.weight)
                weight += w
                totals["loss"] = totals.get("loss", 0.0) + float(out.loss) * w
                for k, v in out.metrics.items():
                    totals[k] = totals.get(k, 0.0) + float(v) * w
        if weight == 0:
            raise DataError(f"split '{split}' of task '{self.name}' is empty; nothing to evaluate.")
        return {k: v / weight for k, v in totals.items()}

    def after_evaluate(self, run_dir: Path, split: str, model: nn.Module) -> dict[str, Any]:
        """Called by ``suite eval`` right after :meth:`evaluate` on the same task instance.

        The place for what only a standalone evaluation should pay for (the Trainer's
        periodic dev evaluations never call it): write what a reader needs beside the
        numbers (hypotheses, plots) under ``run_dir / "samples"`` and return JSON-able
        details (metric signatures, statistics of generated samples) that ``suite eval``
        prints and stores in ``eval-<split>.json``. The default adds nothing.
        """
        return {}

    def on_fit_end(self, run_dir: Path, model: nn.Module | None = None) -> Any:
        """Called once on the main process when training ends (not when it was interrupted).

        Write samples, plots or reports into ``run_dir`` (e.g. ``run_dir / "samples"``) and
        print where they went. The default does nothing.

        Args:
            run_dir: The run directory of the finished fit.
            model: The model in its final state (unwrapped from DDP); ``None`` when called
                outside the Trainer, in which case load what you need from ``run_dir``.
        """
        return None

    def example_inputs(self) -> tuple[Any, ...]:
        """Inputs for export and serving: ``model(*task.example_inputs())`` must run."""
        raise NotImplementedError(f"task '{self.name}' does not implement example_inputs()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
