"""Settings of one search (the ``[tune]`` table) and how they are read.

A config file may carry a ``[tune]`` table next to the task's own sections::

    [tune]
    trials = 30
    metric = "dev.loss"
    direction = "min"
    pruner = "median"

    [tune.params]
    "optim.lr" = "loguniform:1e-4:1e-2"
    "model.d_model" = [128, 256, 512]     # same as "choice:128,256,512"

The task's config resolution refuses unknown sections, so :func:`split_tune_table`
takes ``[tune]`` out of the files before the task config is resolved. Command-line
flags (``--trials``, ``--param`` ...) win over the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import from_dict, load_toml, option
from ..errors import ConfigError

__all__ = ["TuneConfig", "merge_tree", "split_tune_table"]


@dataclass
class TuneConfig:
    """What ``suite tune`` searches and how."""

    trials: int = option(20, "finished trials the study should reach (all processes together)",
                         ge=1)
    metric: str = option("dev.loss", "dev metric to optimise, as the trainer logs it (dev.NAME)")
    direction: str = option("min", "whether the metric should go down or up",
                            choices=("min", "max"))
    pruner: str = option("median", "early stopping of bad trials on intermediate dev metrics",
                         choices=("median", "successive-halving", "hyperband", "none"))
    sampler: str = option("tpe", "how new trials are proposed", choices=("tpe", "random"))
    study: str = option("tune", "study name: runs/<task>/<study>/ and the name in the storage")
    storage: str = option("", "Optuna storage URL (empty: SQLite study.db in the study dir)")
    seed: int | None = option(None, "sampler seed (unset: random; use one per machine "
                                    "when several share a storage)")
    timeout: float = option(0.0, "start no new trial after this many seconds (0: no limit)",
                            ge=0.0)
    heartbeat: int = option(60, "seconds between liveness beats of a running trial (SQL "
                                "storages); one silent for 2x this is failed and retried", ge=1)
    params: dict[str, Any] = option({}, "search space: config key = spec (see --param)")

    def validate(self) -> None:
        """Check the metric name and study name."""
        if not self.metric.startswith("dev.") or len(self.metric) <= 4:
            raise ConfigError(
                f"tune metric '{self.metric}' must name a dev metric as the trainer logs it, "
                f"e.g. dev.loss or dev.bleu."
            )
        if not self.study or "/" in self.study or self.study.startswith("."):
            raise ConfigError(
                f"study name '{self.study}' must be a plain directory name (no '/')."
            )

    def override(self, **values: Any) -> TuneConfig:
        """A copy with the non-``None`` ``values`` set (command-line flags win over files)."""
        known = {f.name for f in fields(self)}
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise TypeError(f"TuneConfig has no field {key!r}")
            if value is not None:
                data[key] = value
        cfg = from_dict(TuneConfig, data, prefix="tune.")
        cfg.validate()
        return cfg


def merge_tree(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into ``base`` (later TOML files win key by key)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_tree(base[key], value)
        else:
            base[key] = merge_tree({}, value) if isinstance(value, Mapping) else value
    return base


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": spec}}`` (an unquoted ``optim.lr = spec``) -> ``{"optim.lr": spec}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def split_tune_table(
    files: Sequence[str | Path],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read config files; return (merged ``[tune]`` table, everything else merged).

    The second value is passed as ``base`` to
    :func:`~torchsuite.core.config.resolve_config` instead of the files themselves.
    """
    tune: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for file in files:
        data = load_toml(file)
        table = data.pop("tune", {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"config file '{file}': 'tune' must be a table ([tune]).")
        params = table.get("params", {})
        if not isinstance(params, Mapping):
            raise ConfigError(
                f"config file '{file}': [tune] params must be a table ([tune.params]) of "
                f'"key" = "spec" entries.'
            )
        merged = dict(table)
        merged["params"] = {**tune.get("params", {}), **_flatten(params)}
        tune.update(merged)
        merge_tree(rest, data)
    return tune, rest


def tune_config(table: Mapping[str, Any], **flags: Any) -> TuneConfig:
    """Validate a ``[tune]`` table and apply command-line ``flags`` on top.

    ``flags["params"]`` (from ``--param``) is merged into the table's params.
    """
    cfg = from_dict(TuneConfig, dict(table), prefix="tune.")
    params = {**cfg.params, **(flags.pop("params", None) or {})}
    return cfg.override(params=params, **flags)
