"""Export: ``suite export TASK --from RUN --format exported|torchscript|onnx [--safetensors]``.

Every format is written under ``<run>/export/`` and then *checked*: the written
file is loaded back and run on the task's ``example_inputs()`` (and, when the
batch dimension stayed dynamic, on a batch of twice that size), and its outputs
are compared with the eager model's; the largest absolute difference and the
tolerance are printed. Formats:

* ``exported`` — ``torch.export.export`` with a dynamic batch dimension where the
  model allows it (a shared ``Dim("batch", min=1)``, traced at a batch of at least 2 so
  a batch-1 example is not baked in; else ``Dim.AUTO``; else static shapes), saved
  with ``torch.export.save`` (``model.pt2``). ONNX uses the same attempts.
* ``torchscript`` — ``torch.jit.trace`` (control flow is frozen at the example
  inputs), ``model.torchscript.pt``.
* ``onnx`` — ``torch.onnx.export`` (the ``torch.export``-based exporter), ``model.onnx``;
  ``onnxruntime`` runs it for the check when it is installed (the ``[export]`` extra),
  otherwise the check is reported as skipped.
* ``--safetensors`` — the weights as ``model.safetensors`` (shared tensors handled),
  re-loaded into a fresh ``build_model()`` and checked the same way.

When a format cannot take the model, the layer that breaks it is found by
exporting the model's submodules one level at a time on the inputs each of them
saw in an eager forward, and the error names it (``layer 'backbone.lstm' (LSTM)``).

Task hooks (optional, duck-typed on the task class):

* ``export_module(self, model) -> nn.Module`` — the module to export instead of the
  trained model (e.g. an encoder, or a wrapper with tensor-only outputs).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import SuiteError
from ..task import Task

__all__ = [
    "FORMATS",
    "ExportCheck",
    "compare_outputs",
    "export_format",
    "flatten_outputs",
    "locate_failure",
    "run_export",
    "save_safetensors",
]

#: Format name -> file name under ``export/``.
FORMATS: dict[str, str] = {
    "exported": "model.pt2",
    "torchscript": "model.torchscript.pt",
    "onnx": "model.onnx",
}


@dataclass
class ExportCheck:
    """The outcome of one format: file, largest deviation from eager, verdict."""

    format: str
    file: str
    max_abs_diff: float | None
    atol: float
    rtol: float
    ok: bool
    dynamic_batch: bool | None = None
    note: str = ""


@contextmanager
def _quiet() -> Iterator[None]:
    """Exporters warn about deprecations and internals the user cannot act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------- outputs
def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """The tensors of a model output (tensor, tuple/list, dict in key order), flattened."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in out for t in flatten_outputs(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    return []


def compare_outputs(expected: Any, actual: Any, atol: float, rtol: float) -> tuple[float, bool]:
    """Largest ``|expected - actual|`` over all output tensors and whether all are close.

    Raises:
        SuiteError: the outputs differ in number or shape (the export changed the model).
    """
    exp, act = flatten_outputs(expected), flatten_outputs(actual)
    if len(exp) != len(act):
        raise SuiteError(f"the exported model returns {len(act)} tensors, the eager model "
                         f"{len(exp)}.")
    worst, ok = 0.0, True
    for i, (e, a) in enumerate(zip(exp, act, strict=True)):
        a = torch.as_tensor(a)
        if tuple(e.shape) != tuple(a.shape):
            raise SuiteError(f"output {i}: the exported model gives shape {tuple(a.shape)}, the "
                             f"eager model {tuple(e.shape)}.")
        if not e.is_floating_point():
            diff = float((e.long() != a.long()).sum())
            ok = ok and diff == 0
        else:
            e, a = e.double(), a.double()
            diff = float((e - a).abs().max()) if e.numel() else 0.0
            ok = ok and bool(torch.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True))
        worst = max(worst, diff)
    return worst, ok


def _doubled(inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The example inputs with every tensor's batch dimension doubled (None: no tensors)."""
    tensors = [x for x in inputs if isinstance(x, torch.Tensor) and x.dim() > 0]
    if not tensors:
        return None
    return tuple(torch.cat([x, x.flip(0)]) if isinstance(x, torch.Tensor) and x.dim() > 0 else x
                 for x in inputs)


# --------------------------------------------------------------------------- formats
def _attempts(inputs: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], Any]]:
    """``(sample inputs, dynamic_shapes)`` to try in order, most general first.

    1. one shared ``Dim("batch", min=1)`` on dim 0 of every tensor, traced at a batch of
       at least 2 (a sample batch of 1 would be specialised to the constant 1);
    2. ``Dim.AUTO`` on each tensor's dim 0 at the example inputs (export decides);
    3. fully static shapes.
    """
    from torch.export import Dim

    tensors = [x for x in inputs if isinstance(x, torch.Tensor) and x.dim() > 0]
    out: list[tuple[tuple[Any, ...], Any]] = []
    if tensors and len({int(t.shape[0]) for t in tensors}) == 1:
        batch = Dim("batch", min=1)
        sample = _doubled(inputs) if int(tensors[0].shape[0]) == 1 else inputs
        out.append((sample, tuple({0: batch} if isinstance(x, torch.Tensor) and x.dim() > 0
                                  else None for x in inputs)))
    if tensors:
        out.append((inputs, tuple({0: Dim.AUTO} if isinstance(x, torch.Tensor) and x.dim() > 0
                                  else None for x in inputs)))
    out.append((inputs, None))
    return out


def _first_that_works(inputs: tuple[Any, ...], fn: Callable[[tuple[Any, ...], Any], Any]) -> Any:
    """``fn(sample, dynamic_shapes)`` for the first of :func:`_attempts` that succeeds."""
    attempts = _attempts(inputs)
    for i, (sample, shapes) in enumerate(attempts):
        try:
            with _quiet():
                return fn(sample, shapes)
        except Exception:
            if i == len(attempts) - 1:
                raise
    raise AssertionError("unreachable")


def _export_program(model: nn.Module, inputs: tuple[Any, ...]) -> Any:
    return _first_that_works(
        inputs, lambda x, shapes: torch.export.export(model, x, dynamic_shapes=shapes))


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _exported(model: nn.Module, inputs: tuple[Any, ...], path: Path) -> Callable[..., Any]:
    program = _export_program(model, inputs)
    _write_atomic(path, lambda p: torch.export.save(program, str(p)))
    with _quiet():
        return torch.export.load(str(path)).module()


def _torchscript(model: nn.Module, inputs: tuple[Any, ...], path: Path) -> Callable[..., Any]:
    with _quiet():
        traced = torch.jit.trace(model, inputs, check_trace=False)
        _write_atomic(path, lambda p: torch.jit.save(traced, str(p)))
        return torch.jit.load(str(path))


def _onnx_export(model: nn.Module, inputs: tuple[Any, ...], target: Any) -> None:
    _first_that_works(inputs, lambda x, shapes: torch.onnx.export(
        model, x, target, dynamic_shapes=shapes, dynamo=True, verbose=False))


def _onnx(model: nn.Module, inputs: tuple[Any, ...], path: Path) -> Callable[..., Any] | None:
    _write_atomic(path, lambda p: _onnx_export(model, inputs, str(p)))
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*args: Any) -> list[Any]:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        feed = {n: t.detach().cpu().numpy() for n, t in zip(names, tensors, strict=False)}
        return [torch.from_numpy(o) for o in session.run(None, feed)]

    return run


_EXPORTERS: dict[str, Callable[[nn.Module, tuple[Any, ...], Path], Callable[..., Any] | None]] = {
    "exported": _exported,
    "torchscript": _torchscript,
    "onnx": _onnx,
}


def _try_export(fmt: str, module: nn.Module, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> None:
    """Export ``module`` in memory in format ``fmt`` (used to find the failing layer)."""
    with _quiet():
        if fmt == "exported":
            torch.export.export(module, args, kwargs or None)
        elif fmt == "torchscript":
            traced = torch.jit.trace(module, args, check_trace=False)
            traced(*args)
        else:
            # f=None: build the ONNX program in memory, write nothing
            torch.onnx.export(module, args, None, kwargs=kwargs or None, dynamo=True,
                              verbose=False)


def locate_failure(model: nn.Module, inputs: tuple[Any, ...], fmt: str,
                   max_tries: int = 40) -> tuple[str, BaseException | None]:
    """The deepest submodule that cannot be exported in ``fmt`` on its own inputs.

    Runs the model once eagerly to record what each submodule receives, then,
    starting at the root, descends into the first child whose own export fails.

    Returns:
        ``(dotted name, its error)``; ``("", None)`` when no child fails on its own
        (the problem is in the model's own ``forward``).
    """
    seen: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    handles = []
    for name, module in model.named_modules():
        if name:
            def hook(_m: nn.Module, args: Any, kwargs: Any, _n: str = name) -> None:
                seen.setdefault(_n, (tuple(args), dict(kwargs)))

            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            model(*inputs)
    except Exception:
        pass  # whatever ran before the failure was recorded
    finally:
        for h in handles:
            h.remove()
    current, error, tries = "", None, 0
    while tries < max_tries:
        parent = model.get_submodule(current)
        for child_name, child in parent.named_children():
            full = f"{current}.{child_name}" if current else child_name
            if full not in seen:
                continue
            tries += 1
            try:
                _try_export(fmt, child, *seen[full])
            except Exception as exc:
                current, error = full, exc
                break
        else:
            break
    return current, error


def _require_onnx() -> None:
    """The ONNX exporter needs onnx + onnxscript; say so instead of blaming a layer."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise SuiteError(f"--format onnx needs {' and '.join(missing)}: "
                         "pip install 'torchsuite[export]'.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = next((x for x in text.splitlines() if x.strip()), "")
    return f"{type(exc).__name__}: {line[:300]}"


def export_format(model: nn.Module, inputs: tuple[Any, ...], fmt: str, folder: Path,
                  atol: float = 1e-4, rtol: float = 1e-3) -> ExportCheck:
    """Write ``model`` in format ``fmt`` under ``folder`` and check it against eager.

    Raises:
        SuiteError: the format cannot take the model; the message names the layer.
    """
    if fmt not in _EXPORTERS:
        raise SuiteError(f"--format {fmt}: unknown; choose one of {', '.join(FORMATS)}.")
    if fmt == "onnx":
        _require_onnx()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FORMATS[fmt]
    model = model.eval()
    with torch.no_grad():
        expected = model(*inputs)
    try:
        with torch.no_grad():
            loaded = _EXPORTERS[fmt](model, inputs, path)
            actual = None if loaded is None else loaded(*inputs)
    except Exception as exc:
        layer, err = locate_failure(model, inputs, fmt)
        if layer:
            kind = type(model.get_submodule(layer)).__name__
            where = f"layer '{layer}' ({kind}) cannot be exported: {_first_line(err)}"  # type: ignore[arg-type]
        else:
            where = f"the model's own forward fails to export: {_first_line(exc)}"
        raise SuiteError(
            f"--format {fmt}: {where}. Try another --format, or give the task an "
            f"`export_module(model)` hook returning an exportable module."
        ) from exc
    if actual is None:
        return ExportCheck(fmt, str(path), None, atol, rtol, True,
                           note="onnxruntime not installed: file written, outputs not checked "
                                "(pip install 'torchsuite[export]')")
    worst, ok = compare_outputs(expected, actual, atol, rtol)
    dynamic = None
    bigger = _doubled(inputs)
    if bigger is not None and fmt != "torchscript":
        try:
            with torch.no_grad():
                more, exp_more = loaded(*bigger), model(*bigger)  # type: ignore[misc]
            worst2, ok2 = compare_outputs(exp_more, more, atol, rtol)
            worst, ok, dynamic = max(worst, worst2), ok and ok2, True
        except Exception:
            dynamic = False  # the batch size was specialised during export
    note = "checked with onnxruntime" if fmt == "onnx" else ""
    if fmt == "torchscript":
        note = "traced: control flow fixed at the example inputs"
    return ExportCheck(fmt, str(path), worst, atol, rtol, ok, dynamic, note)


# --------------------------------------------------------------------------- weights
def save_safetensors(model: nn.Module, path: Path, metadata: dict[str, str]) -> Path:
    """Write ``model``'s weights as safetensors (tied/shared tensors stored once)."""
    try:
        from safetensors.torch import save_model
    except ImportError:
        raise SuiteError("--safetensors needs the safetensors package: "
                         "pip install 'torchsuite[export]'.") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda p: save_model(model, str(p), metadata=metadata))
    return path


def _check_safetensors(task: Task[Any], model: nn.Module, path: Path, inputs: tuple[Any, ...],
                       atol: float, rtol: float) -> ExportCheck:
    from safetensors.torch import load_model

    fresh = task.build_model().eval()
    load_model(fresh, str(path))
    with torch.no_grad():
        worst, ok = compare_outputs(model(*inputs), fresh(*inputs), atol, rtol)
    return ExportCheck("safetensors", str(path), worst, atol, rtol, ok,
                       note="weights only; load into build_model()")


# --------------------------------------------------------------------------- the verb
def run_export(
    task_name: str,
    from_run: str,
    formats: Sequence[str],
    *,
    safetensors: bool = False,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    files: Sequence[str] = (),
    overrides: Sequence[str] = (),
    out_dir: str | None = None,
) -> bool:
    """``suite export``: write and check each format; print a table; True when all match.

    Raises:
        SuiteError: a format cannot take the model (after the others were written).
    """
    from .report import table, write_json
    from .source import load_source

    source = load_source(task_name, from_run, files=files, overrides=overrides)
    task = source.task
    model = source.model.cpu().eval()
    hook = getattr(task, "export_module", None)
    target = hook(model) if callable(hook) else model
    inputs = tuple(task.example_inputs())
    folder = Path(out_dir) if out_dir else source.run_dir / "export"
    print(f"exporting {source.checkpoint} to {folder}")
    checks: list[ExportCheck] = []
    failures: list[str] = []
    for fmt in dict.fromkeys(formats):  # keep order, drop repeats
        print(f"  {fmt} ...")
        try:
            checks.append(export_format(copy.deepcopy(target), inputs, fmt, folder, atol, rtol))
        except SuiteError as exc:
            failures.append(str(exc))
            print(f"  {fmt} failed: {exc}")
    if safetensors:
        path = save_safetensors(model, folder / "model.safetensors",
                                {"task": task_name, "source": str(source.checkpoint)})
        checks.append(_check_safetensors(task, model, path, inputs, atol, rtol))
    rows = [(c.format, "ok" if c.ok else "MISMATCH",
             "-" if c.max_abs_diff is None else f"{c.max_abs_diff:.3g}",
             f"atol={c.atol:g} rtol={c.rtol:g}",
             {True: "yes", False: "no", None: "-"}[c.dynamic_batch], c.file, c.note)
            for c in checks]
    if rows:
        print(table(["format", "check", "max |diff|", "tolerance", "dynamic batch", "file",
                     "note"], rows))
    write_json(folder / "export.json", {
        "task": task_name, "source_run": str(source.run_dir),
        "source_checkpoint": str(source.checkpoint),
        "example_inputs_shapes": [list(getattr(x, "shape", [])) for x in inputs],
        "checks": [asdict(c) for c in checks], "failures": failures,
    })
    print(f"wrote {folder}")
    if failures:
        raise SuiteError(" ".join(failures))
    return all(c.ok for c in checks)
