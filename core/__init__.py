"""torchsuite.core: the shared core every task plugin builds on.

The public API is everything in ``__all__``; modules whose names start with an
underscore, and anything not listed here, may change without notice.
"""

from .commands import Command, CommandSet
from .config import (
    BaseConfig,
    config_keys,
    from_dict,
    load_toml,
    option,
    parse_override,
    resolve_config,
    to_dict,
    to_toml,
)
from .errors import ConfigError, DataError, PluginError, SuiteError
from .hookspecs import hookimpl, hookspec
from .registry import PluginInfo, Registry, get_registry, reset_registry
from .runs import create_run_dir, find_run, list_runs, read_run_config, write_run_config
from .task import SPLITS, StepOutput, Task, TaskStatus
from .train import (
    AdversarialTask,
    Callback,
    EMACallback,
    FitResult,
    OptimizerSpec,
    TrainState,
    fit,
)
from .train.config import DataConfig, OptimConfig, TrainableConfig, TrainConfig

__all__ = [
    "SPLITS",
    "AdversarialTask",
    "BaseConfig",
    "Callback",
    "Command",
    "CommandSet",
    "ConfigError",
    "DataConfig",
    "DataError",
    "EMACallback",
    "FitResult",
    "OptimConfig",
    "OptimizerSpec",
    "PluginError",
    "PluginInfo",
    "Registry",
    "StepOutput",
    "SuiteError",
    "Task",
    "TaskStatus",
    "TrainConfig",
    "TrainState",
    "TrainableConfig",
    "config_keys",
    "create_run_dir",
    "find_run",
    "fit",
    "from_dict",
    "get_registry",
    "hookimpl",
    "hookspec",
    "list_runs",
    "load_toml",
    "option",
    "parse_override",
    "read_run_config",
    "reset_registry",
    "resolve_config",
    "to_dict",
    "to_toml",
    "write_run_config",
]
