"""Lifecycle verbs: ``finetune``, ``export``, ``serve`` (implemented by issue #6)."""

from __future__ import annotations

import argparse

from ..cli_args import add_config_arguments, add_task_argument
from ..commands import CommandSet
from ..errors import SuiteError
from ..hookspecs import hookimpl


def _not_yet(verb: str):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        raise SuiteError(f"`suite {verb}` is not available in this version yet (issue #6).")

    return run


def _configure(p: argparse.ArgumentParser) -> None:
    add_task_argument(p)
    p.add_argument("--from", dest="from_run", help="run directory or name to start from")
    add_config_arguments(p)


@hookimpl
def register_commands(cli: CommandSet) -> None:
    for verb, text in [("finetune", "fine-tune a trained run on the target split"),
                       ("export", "export a trained model (torchscript, onnx, torch.export)"),
                       ("serve", "serve a trained model over HTTP on 127.0.0.1")]:
        cli.add_command(verb, help=text, configure=_configure, run=_not_yet(verb))
