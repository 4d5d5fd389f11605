"""Config sections the lifecycle verbs add to a task's config, without touching the task.

``suite finetune TASK finetune.mode=freeze`` must accept ``finetune.*`` keys while
``suite train TASK`` must not. :func:`extend_config` builds, at run time, a dataclass
subclass of the task's ``Config`` with one extra section, so the core's config
resolution (unknown-key hints, type checks, TOML output) works unchanged. The
run directory's ``config.toml`` keeps only the task's own keys (see
:func:`base_config`), so every other verb can read a fine-tuned or distilled run;
the lifecycle settings go to a sibling file (``finetune.toml``, ``distill.toml``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import from_dict, option, to_dict

__all__ = [
    "LIFECYCLE_SECTIONS",
    "DistillConfig",
    "FinetuneConfig",
    "base_config",
    "extend_config",
    "strip_sections",
]


@dataclasses.dataclass
class FinetuneConfig:
    """``[finetune]``: how ``suite finetune`` adapts a trained model to the target split."""

    mode: str = option(
        "full",
        "full: train every weight at a lower lr; freeze: train only `trainable` modules; "
        "feature: cache the frozen backbone's outputs once and train a fresh head on them",
        choices=("full", "freeze", "feature"),
    )
    lr_scale: float = option(
        0.1, "optim.lr is multiplied by this in the full and freeze modes (feature: 1.0)", ge=0.0
    )
    trainable: list[str] = option(
        ["head"], "freeze mode: module names (prefixes of parameter names) that keep training"
    )
    backbone: str = option(
        "backbone", "feature mode: the module whose outputs are cached (frozen)"
    )
    head: str = option("head", "feature mode: the module re-initialised and trained")
    holdout: float = option(
        0.2,
        "fraction of the target split held out (stable hash of the record index) as the "
        "fine-tuning dev set; 0 uses the task's own dev split",
        ge=0.0,
        le=0.9,
    )
    salt: str = option("finetune", "salt of the target hold-out hash")


@dataclasses.dataclass
class DistillConfig:
    """``[distill]``: how ``suite distill`` trains a student on a teacher's outputs."""

    alpha: float = option(
        0.5, "weight of the task loss; (1 - alpha) goes to the distillation term", ge=0.0, le=1.0
    )
    temperature: float = option(2.0, "softmax temperature for KL on logits", ge=0.01)
    loss: str = option(
        "auto",
        "distillation term: kl on softened logits (per token for sequences), mse on "
        "regression outputs; auto picks kl for float outputs whose last dim > 1 unless the "
        "task class says output_kind = 'regression'",
        choices=("auto", "kl", "mse"),
    )


#: Section name -> dataclass, for every section a lifecycle verb may add.
LIFECYCLE_SECTIONS: dict[str, type[Any]] = {"finetune": FinetuneConfig, "distill": DistillConfig}

_CACHE: dict[tuple[type[Any], str], type[Any]] = {}


def extend_config(cls: type[Any], section: str) -> type[Any]:
    """A dataclass subclass of ``cls`` with one more section (``finetune`` or ``distill``).

    Args:
        cls: The task's config dataclass.
        section: A key of :data:`LIFECYCLE_SECTIONS`.

    Returns:
        The subclass (cached, so repeated calls give the same class).
    """
    key = (cls, section)
    if key not in _CACHE:
        section_cls = LIFECYCLE_SECTIONS[section]
        _CACHE[key] = dataclasses.make_dataclass(
            f"{cls.__name__}With{section.title()}",
            [(section, section_cls, option(default_factory=section_cls, help=section_cls.__doc__))],
            bases=(cls,),
        )
        _CACHE[key].__module__ = cls.__module__
    return _CACHE[key]


def strip_sections(tree: dict[str, Any]) -> dict[str, Any]:
    """A saved config dict without lifecycle sections (a run of a run stays loadable)."""
    return {k: v for k, v in tree.items() if k not in LIFECYCLE_SECTIONS}


def base_config(cfg: Any, cls: type[Any]) -> Any:
    """``cfg`` (an extended config) rebuilt as an instance of the task's own ``cls``."""
    return from_dict(cls, strip_sections(to_dict(cfg)))
