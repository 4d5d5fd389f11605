"""Fixtures for ``suite tune`` tests: the template task, fast trial overrides, the CLI."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

#: Small and quiet: each trial trains for well under a second.
FAST = [
    "data.train_size=256", "data.eval_size=64", "train.max_steps=40", "train.eval_every=10",
    "train.log_every=1000", "optim.warmup_steps=0", "train.checkpoints=false",
    "train.tensorboard=false", "train.progress=off",
]
#: Deliberately bad: 40 steps at this rate barely move the weights.
BAD_LR = "optim.lr=1e-5"
SPACE = {"optim.lr": "loguniform:1e-4:1e-1"}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run far faster on one thread than on a contended pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def task_cls(template_site: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The plugin template's ``template-regression`` task class."""
    monkeypatch.syspath_prepend(str(template_site))
    return importlib.import_module("suite_template.task").TemplateRegression


@pytest.fixture
def suite(
    template_site: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """``suite(*argv) -> (exit code, stdout, stderr)``: the CLI in this process (fast: torch
    is imported once), with the template plugin installed and ``suite tune`` registered
    even before core/registry.py lists it."""
    from torchsuite.core import cli, registry

    monkeypatch.syspath_prepend(str(template_site))
    module = "torchsuite.core.tune.commands"
    if module not in registry.CORE_MODULES:
        monkeypatch.setattr(registry, "CORE_MODULES", (*registry.CORE_MODULES, module))
    registry.reset_registry()

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse: --help, or a usage error
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    registry.reset_registry()


@pytest.fixture
def tune_space() -> dict[str, str]:
    """The search space ``make_tuner`` uses, for tuning processes started separately."""
    return dict(SPACE)


@pytest.fixture
def fast() -> list[str]:
    """Overrides for a sub-second trial, with the deliberately bad learning rate."""
    return [*FAST, BAD_LR]


@pytest.fixture
def make_tuner(task_cls: Any, fast: list[str]) -> Callable[..., Any]:
    """``make_tuner(study_dir, trials, **settings)``: a quiet, seeded Tuner over ``SPACE``."""
    from torchsuite.core.tune import TuneConfig, Tuner

    def make(study_dir: Path, trials: int, *, task: Any = None,
             overrides: list[str] | None = None, **settings: Any) -> Any:
        settings = {"seed": 0, "params": dict(SPACE), **settings}
        cfg = TuneConfig(trials=trials, **settings)
        return Tuner(task or task_cls, cfg, overrides=fast if overrides is None else overrides,
                     study_dir=study_dir, echo=lambda _: None)

    return make
