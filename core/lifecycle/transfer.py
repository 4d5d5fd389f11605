"""Transfer learning: ``suite finetune TASK --from RUN`` on the ``target`` split.

The source run's best weights are trained further on ``target`` through the
core trainer, unchanged: a thin subclass of the task class (made at run time,
so it works for every task) swaps the splits and the model set-up and leaves
losses, metrics and evaluation to the task.

Splits seen by the trainer during fine-tuning:

=============  =====================================================================
``train``      the target split minus its held-out part
``dev``        the held-out part of target: records whose index hashes (blake2b of
               ``finetune.salt`` + index, :func:`~torchsuite.core.data.split.group_hash`)
               below ``finetune.holdout``; with ``holdout = 0``, or a streamed
               (iterable) target, the task's own dev split
``test``       the task's test split (source domain), unchanged
``source_dev`` the task's dev split (source domain), for the forgetting check
=============  =====================================================================

Modes (``finetune.mode``):

* ``full`` — every weight trains, at ``optim.lr * finetune.lr_scale``.
* ``freeze`` — only parameters under the modules named in ``finetune.trainable``
  (prefixes of ``model.named_parameters()`` names, e.g. ``["head"]``) train, at
  ``optim.lr * finetune.lr_scale``.
* ``feature`` — the module named ``finetune.backbone`` is frozen and run once over
  the target training batches; its outputs are cached in memory, the module named
  ``finetune.head`` is re-initialised and trained on the cached outputs (the
  backbone is never run again during training), at ``optim.lr``.

Module-name convention for tasks: a model whose forward is
``head(backbone(...))``-shaped exposes ``self.backbone`` and ``self.head``
(the names are configurable, any ``get_submodule`` path works). The backbone may be
called several times per forward (e.g. on source and target sequences): the cache
replays its outputs in call order. Batches must not be randomly augmented in the
feature mode (the cache holds one pass).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset, Subset

from ..data.split import group_hash
from ..errors import SuiteError
from ..task import Task
from ..train.checkpoint import atomic_save, best_checkpoint, load_checkpoint

__all__ = [
    "FeatureCache",
    "TransferReport",
    "evaluate_splits",
    "finetune_task",
    "holdout_indices",
    "load_trained_weights",
    "unwrap",
]

_FEATURES = "__cached_features__"
_BATCH = "__batch__"


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP/FSDP (``.module``) or ``torch.compile`` (``._orig_mod``)."""
    for attr in ("_orig_mod", "module"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return unwrap(inner)
    return model


def holdout_indices(n: int, fraction: float, salt: str) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into (kept, held out) by a stable hash of each index."""
    cut = fraction * float(1 << 64)
    held = [i for i in range(n) if group_hash(str(i), salt) < cut]
    if fraction > 0 and not held and n > 1:
        held = [n - 1]  # tiny target sets still get a dev record
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], held


def _submodule(model: nn.Module, name: str, key: str) -> nn.Module:
    try:
        return unwrap(model).get_submodule(name)
    except AttributeError:
        children = ", ".join(n for n, _ in unwrap(model).named_children()) or "(none)"
        raise SuiteError(
            f"config key '{key}' names module '{name}', which the model does not have; its "
            f"top-level modules are: {children}. Set {key}=<one of them>."
        ) from None


def _freeze_all_but(model: nn.Module, trainable: list[str]) -> int:
    """Freeze every parameter not under one of the ``trainable`` prefixes; returns #trainable."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in trainable:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            children = ", ".join(n for n, _ in model.named_children())
            raise SuiteError(
                f"finetune.trainable names '{prefix}', which matches no parameter of the model; "
                f"its top-level modules are: {children}. Example: finetune.trainable=[\"head\"]."
            )
    count = 0
    for name, param in model.named_parameters():
        keep = any(name == p or name.startswith(p + ".") for p in trainable)
        param.requires_grad_(keep)
        count += param.numel() if keep else 0
    return count


def _reset(module: nn.Module) -> None:
    """Fresh initialisation for every submodule that knows how to reset itself."""
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


class FeatureCache:
    """Outputs of a frozen backbone over a fixed list of batches, replayed in training.

    Built once from the source model: each batch goes through the task's own
    ``training_step`` (so the task decides how inputs reach the model) with the
    backbone's outputs recorded. In training, the backbone's ``forward`` is replaced
    for the duration of one step by a function that returns the recorded outputs.
    """

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    @classmethod
    def build(cls, task: Task[Any], model: nn.Module, backbone: str,
              batches: Iterable[Any]) -> FeatureCache:
        module = _submodule(model, backbone, "finetune.backbone")
        items: list[dict[str, Any]] = []
        recorded: list[Any] = []

        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            recorded.append(_detach(out))

        handle = module.register_forward_hook(hook)
        model.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    recorded.clear()
                    task.training_step(model, batch)
                    if not recorded:
                        raise SuiteError(
                            f"finetune.backbone '{backbone}' is not called by the model's forward, "
                            "so there is nothing to cache; name the module that computes the "
                            "features (`finetune.backbone=...`)."
                        )
                    items.append({_FEATURES: list(recorded), _BATCH: batch})
        finally:
            handle.remove()
        return cls(items)

    def batches(self, seed: int) -> Iterator[dict[str, Any]]:
        """The cached batches in a fresh shuffled order per call."""
        order = list(range(len(self.items)))
        random.Random(seed).shuffle(order)
        for i in order:
            yield self.items[i]

    @staticmethod
    def is_item(batch: Any) -> bool:
        return isinstance(batch, dict) and _FEATURES in batch

    @staticmethod
    def replay(model: nn.Module, backbone: str, item: dict[str, Any]) -> _Replay:
        return _Replay(_submodule(model, backbone, "finetune.backbone"), item[_FEATURES])


def _detach(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.detach()
    if isinstance(out, tuple):
        return tuple(_detach(o) for o in out)
    if isinstance(out, list):
        return [_detach(o) for o in out]
    if isinstance(out, dict):
        return {k: _detach(v) for k, v in out.items()}
    return out


class _Replay:
    """Context manager: the module returns queued outputs instead of computing them."""

    def __init__(self, module: nn.Module, outputs: list[Any]) -> None:
        self.module = module
        self.outputs = list(outputs)

    def _forward(self, *_args: Any, **_kwargs: Any) -> Any:
        if not self.outputs:
            raise SuiteError(
                "the backbone was called more often than when its features were cached; the "
                "feature mode needs a deterministic forward (no random augmentation)."
            )
        return self.outputs.pop(0)

    def __enter__(self) -> _Replay:
        self.module.forward = self._forward  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.module.forward  # back to the class's forward


@dataclass
class _State:
    """What the fine-tuning subclass needs besides the config."""

    source_state: dict[str, torch.Tensor]
    cache: FeatureCache | None = None
    model: nn.Module | None = None


class _FinetuneMixin:
    """Mixed in front of the task's class: splits, weights, freezing, feature replay."""

    _ft: _State

    def datasets(self) -> Mapping[str, Dataset[Any] | IterableDataset[Any]]:
        sets = dict(super().datasets())  # type: ignore[misc]
        name = getattr(self, "name", "?")
        if "target" not in sets:
            raise SuiteError(
                f"task '{name}' has no 'target' split, so there is nothing to fine-tune on. "
                f"Prepare data with a target split (`suite prepare {name}`), see DESIGN.md."
            )
        ft = self.cfg.finetune  # type: ignore[attr-defined]
        target = sets["target"]
        out: dict[str, Any] = {"target": target}
        if "dev" in sets:
            out["source_dev"] = sets["dev"]
        if "test" in sets:
            out["test"] = sets["test"]
        if ft.holdout > 0 and not isinstance(target, IterableDataset):
            keep, held = holdout_indices(len(target), ft.holdout, ft.salt)  # type: ignore[arg-type]
            out["train"], out["dev"] = Subset(target, keep), Subset(target, held)
        else:
            out["train"] = target
            if "dev" in sets:
                out["dev"] = sets["dev"]
        return out

    def dataloader(self, split: str, *, train: bool) -> Iterable[Any]:
        cache = self._ft.cache
        if split == "train" and train and cache is not None:
            return _CachedLoader(cache, self.cfg.train.seed)  # type: ignore[attr-defined]
        return super().dataloader(split, train=train)  # type: ignore[misc]

    def augment(self, batch: Any) -> Any:
        if FeatureCache.is_item(batch):
            return batch  # cached features are of the un-augmented batch
        return super().augment(batch)  # type: ignore[misc]

    def build_model(self) -> nn.Module:
        model: nn.Module = super().build_model()  # type: ignore[misc]
        model.load_state_dict(self._ft.source_state)
        ft = self.cfg.finetune  # type: ignore[attr-defined]
        if ft.mode == "freeze":
            _freeze_all_but(model, list(ft.trainable))
        elif ft.mode == "feature":
            _submodule(model, ft.backbone, "finetune.backbone")
            _reset(_submodule(model, ft.head, "finetune.head"))
            _freeze_all_but(model, [ft.head])
        self._ft.model = model
        return model

    def training_step(self, model: nn.Module, batch: Any) -> Any:
        if FeatureCache.is_item(batch):
            with FeatureCache.replay(model, self.cfg.finetune.backbone, batch):  # type: ignore[attr-defined]
                return super().training_step(model, batch[_BATCH])  # type: ignore[misc]
        return super().training_step(model, batch)  # type: ignore[misc]


class _CachedLoader:
    """An epoch of cached feature batches; a new shuffle each time it is iterated."""

    def __init__(self, cache: FeatureCache, seed: int) -> None:
        self.cache, self.seed, self.epoch = cache, seed, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        return self.cache.batches(self.seed * 1000003 + self.epoch)

    def __len__(self) -> int:
        return len(self.cache.items)


def finetune_task(task: Task[Any], source_state: dict[str, torch.Tensor]) -> Task[Any]:
    """The task re-classed for fine-tuning (same name, same methods, swapped splits/model).

    Args:
        task: A task instance whose config has a ``finetune`` section.
        source_state: The source model's ``state_dict``.
    """
    cls = type(task)
    sub = type(f"Finetune{cls.__name__}", (_FinetuneMixin, cls), {"__module__": cls.__module__})
    new = sub(task.cfg)
    new._ft = _State(source_state)
    return new


def evaluate_splits(
    task: Task[Any], model: nn.Module, splits: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """``{label: task.evaluate(model, split)}`` for the splits the task has."""
    have = task.datasets()
    out: dict[str, dict[str, float]] = {}
    for label, split in splits.items():
        if split in have:
            out[label] = task.evaluate(model, split)
    return out


def load_trained_weights(task: Task[Any], model: nn.Module, run_dir: Path) -> Path:
    """Load the fine-tuned run's best checkpoint into ``model``; write one if the trainer
    left none (``train.checkpoints=false``) so every later verb finds the weights."""
    try:
        path = best_checkpoint(run_dir)
    except SuiteError:
        path = run_dir / "checkpoints" / "best.pt"
        state = {k: v.detach().clone() for k, v in unwrap(model).state_dict().items()}
        atomic_save({"format": 1, "model": state, "task": task.name, "step": -1,
                     "config": {}}, path)
        return path
    unwrap(model).load_state_dict(load_checkpoint(path)["model"])
    return path


@dataclass
class TransferReport:
    """Metrics of the source and the fine-tuned model, per evaluated split."""

    before: dict[str, dict[str, float]]
    after: dict[str, dict[str, float]]

    def rows(self) -> list[tuple[str, str, float, float | None, float | None]]:
        rows = []
        for label, metrics in self.before.items():
            for key, value in metrics.items():
                after = self.after.get(label, {}).get(key)
                rows.append((label, key, value, after, None if after is None else after - value))
        return rows


def run_finetune(
    task_name: str,
    from_run: str,
    *,
    files: list[str] | tuple[str, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    name: str | None = None,
    run_dir: str | None = None,
) -> Path:
    """``suite finetune``: fine-tune run ``from_run`` of ``task_name`` on its target split.

    Writes a new run (``config.toml`` with the task's own keys, ``finetune.toml``,
    ``metrics.jsonl``, ``checkpoints/``, ``transfer.json``) and prints the before/after
    table. Returns the new run directory.
    """
    from ..config import to_toml
    from ..runs import create_run_dir, write_run_config
    from ..train import fit
    from .report import table, write_json
    from .sections import base_config
    from .source import load_source

    source = load_source(task_name, from_run, files=files, overrides=overrides,
                         section="finetune")
    cfg = source.task.cfg
    ft = cfg.finetune
    if ft.mode in ("full", "freeze"):
        cfg.optim.lr = cfg.optim.lr * ft.lr_scale
    task = finetune_task(source.task, source.model.state_dict())
    print(f"fine-tuning {task_name} from {source.checkpoint} (step {source.step}), "
          f"mode={ft.mode}, lr={cfg.optim.lr:g}")

    splits = {"target (held-out)" if ft.holdout > 0 else "target": "dev" if ft.holdout > 0
              else "target", "source dev": "source_dev", "source test": "test"}
    before = evaluate_splits(task, source.model, splits)

    if ft.mode == "feature":
        # the cache is still empty, so this is the task's own loader over target-train
        batches = task.dataloader("train", train=False)
        task._ft.cache = FeatureCache.build(source.task, source.model, ft.backbone, batches)
        print(f"cached backbone features of {len(task._ft.cache.items)} target batches")

    out = create_run_dir(task.name, name, run_dir)
    write_run_config(out, base_config(cfg, type(source.task).Config), task.name)
    (out / "finetune.toml").write_text(
        f"# fine-tuned from {source.run_dir} ({source.checkpoint.name})\n"
        f'source_run = "{source.run_dir}"\n\n[finetune]\n'
        + to_toml(ft, comments=False)
    )
    print(f"run directory: {out}")
    fit(task, out)
    model = task._ft.model
    if model is None:
        raise SuiteError("the trainer never built the model; nothing was fine-tuned.")
    ckpt = load_trained_weights(task, model, out)
    task._ft.cache = None  # evaluation runs the whole model again
    after = evaluate_splits(task, unwrap(model), splits)
    report = TransferReport(before, after)
    write_json(out / "transfer.json", {
        "source_run": str(source.run_dir), "source_checkpoint": str(source.checkpoint),
        "checkpoint": str(ckpt), "mode": ft.mode, "before": before, "after": after,
        "splits": splits,
    })
    print(table(["split", "metric", "before", "after", "change"], report.rows()))
    print(f"wrote {out / 'transfer.json'} and {ckpt}")
    return out

