"""Fixtures for lifecycle tests: a registry with the template and ``lifecycle-seq`` tasks,
and trained source runs of both (trained once per session, well under a second each)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torchsuite.core import registry as registry_mod
from torchsuite.core.registry import Registry

HERE = Path(__file__).parent
SEQ_MODULE = "lifecycle_seq_task"

#: Small, quiet training settings shared by every lifecycle test.
QUIET = ["train.progress=off", "train.tensorboard=false", "train.log_every=1000",
         "optim.warmup_steps=0"]


def load_seq() -> ModuleType:
    """``seq_task.py`` imported once under a stable module name (dataclasses need one)."""
    if SEQ_MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(SEQ_MODULE, HERE / "seq_task.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[SEQ_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[SEQ_MODULE]


@pytest.fixture(scope="session")
def lifecycle_registry(template_site_session: Path) -> Registry:
    """A registry holding only the core verbs, ``template-regression`` and ``lifecycle-seq``."""
    if str(template_site_session) not in sys.path:
        sys.path.insert(0, str(template_site_session))
    importlib.import_module("suite_template.plugin")
    load_seq()
    eps = [EntryPoint("template", "suite_template.plugin", "suite.plugins"),
           EntryPoint("lifecycle-seq", SEQ_MODULE, "suite.plugins")]
    return Registry().load(eps)


@pytest.fixture(scope="session")
def template_site_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from suite_testing import REPO, install_fake_distribution

    site = tmp_path_factory.mktemp("lifecycle-site")
    src = REPO / "examples" / "plugin-template" / "suite_template"
    files = {f"suite_template/{p.name}": p.read_text() for p in src.glob("*.py")}
    return install_fake_distribution(site, "suite-template-plugin", files,
                                     {"template": "suite_template.plugin"})


@pytest.fixture
def use_registry(lifecycle_registry: Registry, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> Iterator[Registry]:
    """Make ``get_registry()`` return the lifecycle registry; cwd is a fresh temp folder."""
    monkeypatch.setattr(registry_mod, "_REGISTRY", lifecycle_registry)
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats a contended pool
    yield lifecycle_registry
    torch.set_num_threads(before)


def _train(registry: Registry, task: str, run: Path, overrides: list[str]) -> Path:
    from torchsuite.core.config import resolve_config
    from torchsuite.core.train import fit

    cls = registry.task(task)
    fit(cls(resolve_config(cls.Config, overrides=[*QUIET, *overrides])), run)
    return run


@pytest.fixture(scope="session")
def template_run(lifecycle_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained ``template-regression`` run (source / teacher for the tests)."""
    run = tmp_path_factory.mktemp("runs") / "template-src"
    return _train(lifecycle_registry, "template-regression", run,
                  ["data.train_size=512", "data.eval_size=128", "train.max_steps=100",
                   "train.eval_every=50", "train.batch_size=32", "optim.lr=0.01"])


@pytest.fixture(scope="session")
def seq_run(lifecycle_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained ``lifecycle-seq`` run."""
    run = tmp_path_factory.mktemp("runs") / "seq-src"
    return _train(lifecycle_registry, "lifecycle-seq", run,
                  ["train.max_steps=120", "train.eval_every=40", "train.batch_size=32",
                   "model.hidden=64", "optim.lr=0.02"])


@pytest.fixture
def quiet() -> list[str]:
    """Overrides that keep training quiet and small (progress, TensorBoard, logging)."""
    return list(QUIET)
