"""Fixtures for trainer tests: the ``tiny-train`` task, in-process and as an installed plugin."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from suite_testing import install_fake_distribution
from torchsuite.core import resolve_config

HERE = Path(__file__).parent


def _load_tiny() -> ModuleType:
    name = "tiny_train_task"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "tiny_task.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def make_task() -> Any:
    """``make_task("train.max_steps=5", ...)`` -> a TinyTask with those overrides."""
    tiny = _load_tiny()
    base = ["train.eval_every=4", "train.log_every=1", "train.batch_size=8",
            "optim.lr=0.01", "optim.warmup_steps=2", "train.progress=off",
            "train.tensorboard=false"]

    def make(*overrides: str) -> Any:
        return tiny.TinyTask(resolve_config(tiny.TinyConfig, overrides=[*base, *overrides]))

    return make


@pytest.fixture(scope="session")
def tiny_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder where ``tiny-train`` and ``gan-toy`` are installed plugins (subprocesses)."""
    site = tmp_path_factory.mktemp("tiny-site")
    files = {"tiny_train_task.py": (HERE / "tiny_task.py").read_text(),
             "gan_toy_task.py": (HERE / "gan_task.py").read_text()}
    return install_fake_distribution(site, "tiny-train-plugin", files,
                                     {"tinytrain": "tiny_train_task", "gantoy": "gan_toy_task"})


def _load_gan() -> ModuleType:
    name = "gan_toy_task"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "gan_task.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def gan_module() -> ModuleType:
    """The ``gan_task`` module (sampling helpers, the task class)."""
    return _load_gan()


@pytest.fixture
def make_gan() -> Any:
    """``make_gan("gan.n_critic=2", ...)`` -> a GanTask with quick test settings."""
    gan = _load_gan()
    base = ["train.eval_every=4", "train.log_every=1", "train.batch_size=32",
            "optim.warmup_steps=2", "train.progress=off", "train.tensorboard=false",
            "gan.n=256"]

    def make(*overrides: str) -> Any:
        return gan.GanTask(resolve_config(gan.GanConfig, overrides=[*base, *overrides]))

    return make
