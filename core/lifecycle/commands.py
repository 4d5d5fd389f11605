"""Lifecycle verbs: ``finetune``, ``distill``, ``compress``, ``export``, ``serve``.

Each verb takes the task, a trained run (``--from RUN``, or ``--teacher RUN``)
and the usual config arguments; the work is done by the module of the same
idea (:mod:`.transfer`, :mod:`.distill`, :mod:`.compress`, :mod:`.export`,
:mod:`.serve`), imported only when the verb runs so ``suite --help`` stays fast.
"""

from __future__ import annotations

import argparse

from ..cli_args import add_config_arguments, add_task_argument
from ..commands import CommandSet
from ..hookspecs import hookimpl
from .source import add_source_arguments


class _IntermixedParser(argparse.ArgumentParser):
    """Lets bare ``key=value`` overrides come after options (``--from RUN lr=1``).

    argparse binds an empty ``nargs="*"`` positional as soon as it meets the task name,
    so later bare words would be rejected; intermixed parsing collects them all.
    """

    _intermixed_depth = 0

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def,override]
        if self._intermixed_depth:
            return super().parse_known_args(args, namespace)
        self._intermixed_depth += 1
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed_depth -= 1


def _intermixed(p: argparse.ArgumentParser) -> None:
    p.__class__ = _IntermixedParser


def _overrides(args: argparse.Namespace) -> list[str]:
    return [*getattr(args, "overrides", []), *getattr(args, "set_", [])]


def _new_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="name of the new run (default: a timestamp)")
    p.add_argument("--run-dir", help="exact directory for the new run")


# --------------------------------------------------------------------------- finetune
def _configure_finetune(p: argparse.ArgumentParser) -> None:
    _intermixed(p)
    add_task_argument(p)
    add_source_arguments(p)
    add_config_arguments(p)
    _new_run_arguments(p)


def _finetune(args: argparse.Namespace) -> int:
    from .transfer import run_finetune

    run_finetune(args.task, args.from_run, files=args.config, overrides=_overrides(args),
                 name=args.name, run_dir=args.run_dir)
    return 0


# --------------------------------------------------------------------------- distill
def _configure_distill(p: argparse.ArgumentParser) -> None:
    _intermixed(p)
    add_task_argument(p)
    add_source_arguments(p, "--teacher", "teacher")
    add_config_arguments(p)
    _new_run_arguments(p)


def _distill(args: argparse.Namespace) -> int:
    from .distill import run_distill

    run_distill(args.task, args.teacher, files=args.config, overrides=_overrides(args),
                name=args.name, run_dir=args.run_dir)
    return 0


# --------------------------------------------------------------------------- compress
def _configure_compress(p: argparse.ArgumentParser) -> None:
    _intermixed(p)
    add_task_argument(p)
    add_source_arguments(p)
    add_config_arguments(p)
    _new_run_arguments(p)
    p.add_argument("--prune", type=float, default=0.0, metavar="AMOUNT",
                   help="fraction of weights (or channels with --structured) to remove, 0..1")
    p.add_argument("--structured", action="store_true",
                   help="prune whole output channels/rows (L2 norm) instead of single weights")
    p.add_argument("--finetune-steps", type=int, default=0, metavar="N",
                   help="train N steps on the train split after pruning (masks kept)")
    p.add_argument("--quantize", action="append", default=[],
                   choices=("dynamic-int8", "static-int8"),
                   help="also quantize (repeatable); static-int8 calibrates on dev data")
    p.add_argument("--split", default="dev", help="split the metrics are measured on")
    p.add_argument("--latency-runs", type=int, default=20, metavar="N",
                   help="timed forward passes per variant on example_inputs")


def _compress(args: argparse.Namespace) -> int:
    from .compress import CompressOptions, run_compress

    opts = CompressOptions(prune=args.prune, structured=args.structured,
                           finetune_steps=args.finetune_steps, quantize=list(args.quantize),
                           split=args.split, latency_runs=args.latency_runs)
    run_compress(args.task, args.from_run, opts, files=args.config,
                 overrides=_overrides(args), name=args.name, run_dir=args.run_dir)
    return 0


# --------------------------------------------------------------------------- export
def _configure_export(p: argparse.ArgumentParser) -> None:
    _intermixed(p)
    add_task_argument(p)
    add_source_arguments(p)
    add_config_arguments(p)
    p.add_argument("--format", dest="formats", action="append",
                   choices=("torchscript", "onnx", "exported"),
                   help="export format (repeatable; default: exported)")
    p.add_argument("--safetensors", action="store_true",
                   help="also write the weights as export/model.safetensors")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance of the check")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance of the check")
    p.add_argument("--out", help="folder for the exported files (default: <run>/export)")


def _export(args: argparse.Namespace) -> int:
    from .export import run_export

    ok = run_export(args.task, args.from_run, args.formats or ["exported"],
                    safetensors=args.safetensors, atol=args.atol, rtol=args.rtol,
                    files=args.config, overrides=_overrides(args), out_dir=args.out)
    if not ok:
        print("error: an exported model's outputs differ from the eager model's beyond the "
              "tolerance (see the table); loosen --atol/--rtol only if that is expected.")
    return 0 if ok else 1


# --------------------------------------------------------------------------- serve
def _configure_serve(p: argparse.ArgumentParser) -> None:
    _intermixed(p)
    add_task_argument(p)
    add_source_arguments(p)
    add_config_arguments(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=32,
                   help="most requests merged into one forward pass (1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a request may wait for others to join its batch")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20,
                   help="largest accepted request body (413 above)")
    p.add_argument("--device", default="cpu",
                   help="where the model runs: cpu, cuda, cuda:N (default/custom hooks move "
                        "inputs there)")
    p.add_argument("--fixed-wait", action="store_true",
                   help="always wait --max-wait-ms for a batch to fill (default: only while "
                        "other requests are arriving)")


def _serve(args: argparse.Namespace) -> int:
    from .serve import ServeOptions, run_server

    opts = ServeOptions(host=args.host, port=args.port, max_batch=args.max_batch,
                        max_wait_ms=args.max_wait_ms, max_body_bytes=args.max_body_bytes,
                        adaptive_wait=not args.fixed_wait, device=args.device)
    run_server(args.task, args.from_run, opts, files=args.config, overrides=_overrides(args))
    return 0


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_command("finetune", help="fine-tune a trained run on the target split",
                    configure=_configure_finetune, run=_finetune)
    cli.add_command("distill", help="train a smaller student on a trained teacher's outputs",
                    configure=_configure_distill, run=_distill)
    cli.add_command("compress", help="prune and/or quantize a trained run; size/latency/metric "
                    "table", configure=_configure_compress, run=_compress)
    cli.add_command("export", help="export a trained model (torchscript, onnx, torch.export)",
                    configure=_configure_export, run=_export)
    cli.add_command("serve", help="serve a trained model over HTTP (127.0.0.1 by default)",
                    configure=_configure_serve, run=_serve)
