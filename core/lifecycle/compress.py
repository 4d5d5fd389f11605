"""Compression: ``suite compress TASK --from RUN --prune 0.5 --quantize dynamic-int8``.

Variants, each measured the same way (one table, also written as
``compress.json``): size of its ``state_dict`` file on disk, median CPU latency of
``model(*task.example_inputs())`` and the task's metrics on a split, with the
change against the float model.

* **pruning** — ``torch.nn.utils.prune`` magnitude pruning of every Linear/Conv
  weight (and LSTM/GRU weights when unstructured): L1 per weight, or with
  ``--structured`` whole output channels/rows by L2 norm. The last prunable layer
  (normally the output head) stays dense so no output is cut off. Optional
  ``--finetune-steps N`` train with the masks in place through the core trainer;
  then ``prune.remove`` makes the zeros permanent (plain ``weight`` tensors).
* **dynamic-int8** — ``torch.ao.quantization.quantize_dynamic`` on Linear and
  LSTM/GRU layers (int8 weights, activations quantized on the fly).
* **static-int8** — FX graph mode (``prepare_fx``/``convert_fx``, x86 qconfig),
  calibrated by running the task's ``validation_step`` on dev batches. Models FX
  cannot trace are reported as such in the table.

Each quantization is applied to the float model and, when ``--prune`` is given,
also to the pruned one (rows ``pruned+dynamic-int8``, ``pruned+static-int8``).

The new run keeps the float (pruned) weights as ``checkpoints/best.pt``, so every
other verb works on it, and the quantized state dicts under ``compressed/``
(:func:`load_quantized` rebuilds one from ``build_model()``, reading the file with
``weights_only=True``).
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import SuiteError
from ..task import Task

__all__ = [
    "CompressOptions",
    "Variant",
    "latency_ms",
    "load_quantized",
    "prunable",
    "prune_model",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "relative_drop",
    "run_compress",
    "sparsity",
    "state_size_bytes",
]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RNN = (nn.LSTM, nn.GRU)


@dataclass
class CompressOptions:
    """What ``suite compress`` does (its command-line options)."""

    prune: float = 0.0
    structured: bool = False
    finetune_steps: int = 0
    quantize: list[str] = field(default_factory=list)
    split: str = "dev"
    latency_runs: int = 20
    calibration_batches: int = 8


@contextmanager
def quiet_ao() -> Iterator[None]:
    """torch.ao warns on every call that it moves to torchao; say it once in the docs instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*(deprecated|TypedStorage).*")
        yield


# --------------------------------------------------------------------------- pruning
def prunable(model: nn.Module, structured: bool) -> list[tuple[str, nn.Module, str]]:
    """``(module name, module, parameter name)`` to prune, the last layer left out."""
    found: list[tuple[str, nn.Module, str]] = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, *_CONV)):
            found.append((name, module, "weight"))
        elif isinstance(module, _RNN) and not structured:
            found += [(name, module, p) for p, _ in module.named_parameters(recurse=False)
                      if p.startswith("weight")]
    if len(found) > 1:
        last = found[-1][0]
        found = [f for f in found if f[0] != last]
    return found


def prune_model(model: nn.Module, amount: float, structured: bool) -> list[str]:
    """Attach magnitude-pruning masks (in place); returns the pruned ``module.param`` names.

    Args:
        model: The float model.
        amount: Fraction of weights (unstructured) or output channels (structured).
        structured: Prune whole rows/channels (``ln_structured``, L2, dim 0).
    """
    if not 0.0 < amount < 1.0:
        raise SuiteError(f"--prune {amount}: expected a fraction between 0 and 1, e.g. 0.5.")
    targets = prunable(model, structured)
    if not targets:
        raise SuiteError(
            "the model has no Linear, Conv or LSTM/GRU layer besides its output layer, so "
            "there is nothing to prune."
        )
    for _, module, param in targets:
        if structured:
            prune.ln_structured(module, param, amount=amount, n=2, dim=0)
        else:
            prune.l1_unstructured(module, param, amount=amount)
    return [f"{n}.{p}" if n else p for n, _, p in targets]


def make_permanent(model: nn.Module) -> None:
    """``prune.remove`` on every pruned parameter: masks folded into plain weights."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
        if isinstance(module, _RNN):
            module.flatten_parameters()


def sparsity(model: nn.Module, names: list[str] | None = None) -> float:
    """Fraction of exact zeros in the named parameters (all weight matrices by default)."""
    params = dict(model.named_parameters())
    chosen = [params[n] for n in names] if names else [
        p for n, p in params.items() if p.dim() > 1
    ]
    total = sum(p.numel() for p in chosen)
    zeros = sum(int((p == 0).sum()) for p in chosen)
    return zeros / total if total else 0.0


# --------------------------------------------------------------------------- quantization
def _slow_path_only(_module: nn.Module, _args: Any) -> None:
    """A no-op pre-hook: its presence turns off the Transformer layers' fused fast path."""


def _no_transformer_fast_path(model: nn.Module) -> None:
    """Keep ``nn.Transformer*`` modules off their fused CPU/CUDA fast path.

    The fast path reads ``linear1.weight`` etc. as tensors; after quantization those are
    methods of the int8 Linear and the forward crashes. A pre-hook on a layer (and
    ``use_nested_tensor = False`` on an encoder stack) is how PyTorch itself opts out,
    per module, without the global ``torch.backends.mha`` switch.
    """
    for module in model.modules():
        if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            module.register_forward_pre_hook(_slow_path_only)
        elif isinstance(module, nn.TransformerEncoder):
            module.use_nested_tensor = False


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy with Linear and LSTM/GRU layers dynamically quantized to int8 (torch.ao)."""
    from torch.ao.quantization import quantize_dynamic

    with quiet_ao():
        quantized = quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear, *_RNN},
                                     dtype=torch.qint8)
    _no_transformer_fast_path(quantized)
    return quantized


def quantize_static_int8(model: nn.Module, example_inputs: tuple[Any, ...],
                         calibrate: Callable[[nn.Module], None]) -> nn.Module:
    """A statically quantized copy (FX graph mode, x86 qconfig) calibrated by ``calibrate``.

    Raises:
        SuiteError: the model cannot be traced/quantized (the reason is in the message).
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    try:
        with quiet_ao():
            prepared = prepare_fx(copy.deepcopy(model).eval(),
                                  get_default_qconfig_mapping("x86"), example_inputs)
            with torch.no_grad():
                calibrate(prepared)
            quantized = convert_fx(prepared)
            with torch.no_grad():
                quantized(*example_inputs)
        return quantized
    except SuiteError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise SuiteError(f"static int8 is not possible for this model: "
                         f"{type(exc).__name__}: {first}") from None


def load_quantized(model: nn.Module, path: Path, kind: str = "dynamic-int8",
                   example_inputs: tuple[Any, ...] = ()) -> nn.Module:
    """Rebuild a quantized variant written by ``suite compress`` into ``model``'s structure.

    Args:
        model: A fresh float model of the same config (``task.build_model()``).
        path: The variant's file (``<run>/compressed/dynamic-int8.pt`` ...).
        kind: ``"dynamic-int8"`` or ``"static-int8"`` (the latter needs ``example_inputs``).

    The file is read with ``weights_only=True``; the only extra type allowed is
    ``torch.ScriptObject`` (the packed int8 weights are torch's own C++ classes).
    """
    if kind == "dynamic-int8":
        quantized = quantize_dynamic_int8(model)
    elif kind == "static-int8":
        quantized = quantize_static_int8(model, example_inputs, lambda m: m(*example_inputs))
    else:
        raise SuiteError(f"unknown quantized variant '{kind}': expected dynamic-int8 or "
                         "static-int8.")
    with quiet_ao(), torch.serialization.safe_globals([torch.ScriptObject]):
        state = torch.load(path, map_location="cpu", weights_only=True)
    quantized.load_state_dict(state)
    return quantized.eval()


# --------------------------------------------------------------------------- measuring
def state_size_bytes(model: nn.Module, path: Path) -> int:
    """Save ``model.state_dict()`` to ``path``; its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet_ao():
        torch.save(model.state_dict(), path)
    return path.stat().st_size


def latency_ms(model: nn.Module, inputs: tuple[Any, ...], runs: int = 20, warmup: int = 3,
               threads: int = 1) -> float:
    """Median wall time of ``model(*inputs)`` on CPU in milliseconds.

    Every variant is timed with the same intra-op thread count (default 1): on a
    shared machine a thread pool waiting for busy cores makes small ops look slow at
    random, which would swamp the differences being measured.
    """
    model.eval()
    times = []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad(), quiet_ao():
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                model(*inputs)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times)


@dataclass
class Variant:
    """One row of the compression table."""

    name: str
    size_bytes: int | None = None
    latency_ms: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    sparsity: float | None = None
    note: str = ""
    file: str = ""


def _headline(task: Task[Any], metrics: dict[str, float]) -> tuple[str, str]:
    """The metric the table compares and whether higher is better (train.monitor)."""
    tcfg = getattr(task.cfg, "train", None)
    monitor = str(getattr(tcfg, "monitor", "") or "").removeprefix("dev.")
    mode = str(getattr(tcfg, "monitor_mode", "min"))
    key = monitor if monitor in metrics else "loss"
    return key, mode if key == monitor else "min"


def relative_drop(base: float, value: float, mode: str) -> float:
    """How much worse ``value`` is than ``base`` as a signed fraction (+ = worse)."""
    if base == 0:
        return 0.0 if value == base else float("inf")
    worse = (value - base) if mode == "min" else (base - value)
    return worse / abs(base)


# --------------------------------------------------------------------------- the verb
def _finetune_pruned(task: Task[Any], model: nn.Module, steps: int, out: Path) -> None:
    """Train the masked model ``steps`` steps on the train split (masks stay applied)."""
    from ..train import fit

    cls = type(task)

    def build_model(self: Task[Any]) -> nn.Module:
        return model

    sub = type(f"Pruned{cls.__name__}", (cls,), {"build_model": build_model,
                                                 "__module__": cls.__module__})
    cfg = copy.deepcopy(task.cfg)
    cfg.train.max_steps = steps
    cfg.train.eval_every = 0
    cfg.train.checkpoints = False  # masked weights; the permanent ones are saved below
    cfg.optim.warmup_steps = min(cfg.optim.warmup_steps, max(1, steps // 10))
    print(f"fine-tuning the pruned model for {steps} steps")
    fit(sub(cfg), out / "prune-finetune")


def run_compress(
    task_name: str,
    from_run: str,
    opts: CompressOptions,
    *,
    files: list[str] | tuple[str, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    name: str | None = None,
    run_dir: str | None = None,
) -> Path:
    """``suite compress``: write a new run with the compressed variants and print the table."""
    from ..runs import create_run_dir, write_run_config
    from ..train.checkpoint import atomic_save
    from .report import table, write_json
    from .source import load_source

    if not opts.prune and not opts.quantize:
        raise SuiteError("nothing to do: give --prune AMOUNT and/or --quantize dynamic-int8.")
    source = load_source(task_name, from_run, files=files, overrides=overrides)
    task = source.task
    if opts.split not in task.datasets():
        raise SuiteError(f"--split {opts.split}: task '{task_name}' has no such split "
                         f"(it has: {', '.join(task.datasets())}).")
    out = create_run_dir(task_name, name, run_dir)
    write_run_config(out, task.cfg, task_name)
    folder = out / "compressed"
    print(f"compressing {source.checkpoint}; run directory: {out}")
    torch.set_grad_enabled(True)
    inputs = tuple(task.example_inputs())

    def measure(variant: Variant, model: nn.Module) -> Variant:
        model.eval()
        variant.size_bytes = state_size_bytes(model, folder / f"{variant.name}.pt")
        variant.file = str(folder / f"{variant.name}.pt")
        variant.latency_ms = latency_ms(model, inputs, opts.latency_runs)
        with quiet_ao():
            variant.metrics = task.evaluate(model, opts.split)
        print(f"  measured {variant.name}")
        return variant

    float_model = source.model.cpu().eval()
    variants = [measure(Variant("float"), float_model)]
    base = float_model
    if opts.prune:
        pruned = copy.deepcopy(float_model)
        names = prune_model(pruned, opts.prune, opts.structured)
        if opts.finetune_steps:
            _finetune_pruned(task, pruned, opts.finetune_steps, out)
        make_permanent(pruned)
        kind = "structured" if opts.structured else "unstructured"
        v = Variant(f"pruned-{kind}-{opts.prune:g}", sparsity=sparsity(pruned, names),
                    note=f"{len(names)} layers" + (f", {opts.finetune_steps} fine-tune steps"
                                                   if opts.finetune_steps else ""))
        variants.append(measure(v, pruned.cpu()))
        base = pruned.cpu()
    ckpt = atomic_save({"format": 1, "model": base.state_dict(), "task": task_name,
                        "step": source.step, "config": {}}, out / "checkpoints" / "best.pt")
    # quantize the float model (what the goal compares) and, after pruning, the pruned one too
    bases = [("", float_model, "float")] + ([("pruned+", base, "pruned")] if opts.prune else [])
    for q in opts.quantize:
        for prefix, model_in, label in bases:
            of = f" of the {label} model"
            if q == "dynamic-int8":
                variants.append(measure(Variant(f"{prefix}dynamic-int8",
                                                note="Linear/LSTM/GRU" + of),
                                        quantize_dynamic_int8(model_in)))
            elif q == "static-int8":
                def calibrate(m: nn.Module) -> None:
                    for i, batch in enumerate(task.dataloader("dev", train=False)):
                        if i >= opts.calibration_batches:
                            break
                        task.validation_step(m, batch)

                try:
                    model = quantize_static_int8(model_in, inputs, calibrate)
                    variants.append(measure(Variant(f"{prefix}static-int8", note="FX, x86" + of),
                                            model))
                except SuiteError as exc:
                    variants.append(Variant(f"{prefix}static-int8", note=str(exc)))
                    print(f"  {prefix}static-int8 skipped: {exc}")

    key, mode = _headline(task, variants[0].metrics)
    ref = variants[0]
    rows = []
    for v in variants:
        value = v.metrics.get(key)
        drop = None if value is None else relative_drop(ref.metrics[key], value, mode) * 100
        rows.append((v.name, None if v.size_bytes is None else v.size_bytes / 1e6,
                     None if v.size_bytes is None else ref.size_bytes / v.size_bytes,  # type: ignore[operator]
                     v.latency_ms,
                     None if v.latency_ms is None else ref.latency_ms / v.latency_ms,  # type: ignore[operator]
                     value, drop, v.sparsity, v.note))
    headers = ["variant", "size MB", "smaller x", "latency ms", "faster x", f"{opts.split}.{key}",
               "worse %", "sparsity", "note"]
    write_json(out / "compress.json", {
        "source_run": str(source.run_dir), "source_checkpoint": str(source.checkpoint),
        "split": opts.split, "metric": key, "metric_mode": mode,
        "example_inputs_shapes": [list(getattr(x, "shape", [])) for x in inputs],
        "variants": [v.__dict__ for v in variants],
    })
    print(table(headers, rows))
    print(f"wrote {out / 'compress.json'}, {folder} and {ckpt}")
    return out
