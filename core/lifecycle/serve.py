"""Serving: ``suite serve TASK --from RUN [--host 127.0.0.1 --port 8000]``.

A FastAPI app run by uvicorn (the ``[serve]`` extra) around a trained model:

=======================================  ============================================
``GET  /health``                         ``{"status": "ok", "task", "checkpoint",
                                         "step", "batching": {...counters}}``
``GET  /v1/tasks/<task>``                the task's request format and an example
                                         request (ready to POST back)
``POST /v1/tasks/<task>/predict``        one example in, its prediction out (JSON)
=======================================  ============================================

Errors are JSON ``{"error": "<reason>"}`` with a 4xx status: 400 malformed JSON,
404 unknown task path, 413 body over ``--max-body-bytes``, 422 a well-formed body
the task cannot use. The server keeps serving after any of them. It binds
127.0.0.1 unless ``--host`` says otherwise.

Concurrent requests are merged into batches (:class:`~.batching.DynamicBatcher`):
up to ``--max-batch`` requests, waiting at most ``--max-wait-ms`` for a batch to fill,
and only while other requests have arrived but are not queued yet (``--fixed-wait``
always waits the full time).

Task hooks (optional methods on the task class; the defaults work for any task
whose ``example_inputs()`` are tensors with a leading batch dimension):

``serve_decode(self, payload) -> example``
    One request's JSON -> one example (whatever ``serve_predict`` takes). Raise
    ``ValueError`` (or a :class:`~torchsuite.core.errors.SuiteError`) with a reason
    for input the task cannot use; the client gets a 422 with that reason.
    Default: ``{"inputs": [arg0, arg1, ...]}``, one nested list per tensor of
    ``example_inputs()`` *without* the batch dimension, with the same shape and
    kind (int/float/bool) as one row of it.
``serve_predict(self, model, examples) -> list[output]``
    Run a batch of decoded examples (a list) and return one output per example,
    in order; an ``Exception`` instance in the list fails just that request.
    Plugins with a decoding loop (translation, continuation) implement this.
    Default: with ``serve_decode``'s default, examples whose shapes agree are
    stacked into one batch per shape group and run with one ``model(...)`` call;
    every output tensor is split along dim 0.
``serve_encode(self, output) -> JSON``
    One example's output -> a JSON-able value. Default: ``{"outputs": [...]}``,
    one nested list per output tensor.
``serve_example(self) -> JSON``
    An example request body for ``GET /v1/tasks/<task>`` (default: built from
    ``example_inputs()``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SuiteError
from ..task import Task
from .batching import DynamicBatcher
from .export import flatten_outputs

try:  # FastAPI resolves the endpoint's annotations by name in this module's globals
    from fastapi import Request
except ImportError:  # the [serve] extra is missing: build_app/run_server say so
    Request = Any  # type: ignore[misc,assignment]

__all__ = [
    "ServeAdapter",
    "ServeOptions",
    "build_app",
    "run_server",
    "serve_in_thread",
]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeOptions:
    """``suite serve`` options (see its ``--help``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_body_bytes: int = 1 << 20
    request_timeout_s: float = 60.0
    adaptive_wait: bool = True
    device: str = "cpu"


class RequestError(ValueError):
    """Input the task cannot use (HTTP 422)."""


# --------------------------------------------------------------------------- task glue
def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "float" if t.is_floating_point() else "int"


class ServeAdapter:
    """JSON <-> model for one task: the task's ``serve_*`` hooks or the tensor defaults.

    Args:
        task: The task instance (its config is the run's).
        model: The trained model in eval mode.
    """

    def __init__(self, task: Task[Any], model: nn.Module) -> None:
        self.task, self.model = task, model.eval()
        self._template: tuple[Any, ...] | None = None

    @property
    def template(self) -> tuple[Any, ...]:
        """``task.example_inputs()``, computed once (shapes/dtypes the defaults expect)."""
        if self._template is None:
            self._template = tuple(self.task.example_inputs())
        return self._template

    # ------------------------------------------------------------------ decode
    def decode(self, payload: Any) -> Any:
        """One request body (parsed JSON) -> one example; :class:`RequestError` if unusable."""
        hook = getattr(self.task, "serve_decode", None)
        try:
            if callable(hook):
                return hook(payload)
            return self._default_decode(payload)
        except RequestError:
            raise
        except (ValueError, TypeError, KeyError, SuiteError) as exc:
            raise RequestError(str(exc).strip("'\"")) from None

    def _default_decode(self, payload: Any) -> tuple[torch.Tensor, ...]:
        tensors = [x for x in self.template if isinstance(x, torch.Tensor)]
        if len(tensors) != len(self.template):
            raise RequestError(f"task '{self.task.name}' has non-tensor example inputs and no "
                               "serve_decode hook, so it cannot take JSON requests")
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
            raise RequestError('expected a JSON object {"inputs": [...]} with one nested list '
                               f"per model input ({len(tensors)} here); GET /v1/tasks/"
                               f"{self.task.name} shows an example")
        values = payload["inputs"]
        if len(values) != len(tensors):
            raise RequestError(f'"inputs" has {len(values)} entries, the model takes '
                               f"{len(tensors)}")
        out = []
        for i, (value, ref) in enumerate(zip(values, tensors, strict=True)):
            try:
                t = torch.tensor(value)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise RequestError(f"inputs[{i}] is not a rectangular list of numbers: "
                                   f"{exc}") from None
            want = tuple(ref.shape[1:])
            if tuple(t.shape) != want:
                raise RequestError(f"inputs[{i}] has shape {list(t.shape)}, expected "
                                   f"{list(want)} (one example, no batch dimension)")
            kind = _kind(ref)
            if kind != "float" and t.is_floating_point():
                raise RequestError(f"inputs[{i}] must hold {kind}s, got floats")
            if kind == "float" and not bool(torch.isfinite(t.float()).all()):
                raise RequestError(f"inputs[{i}] holds NaN or infinity")
            if kind == "int" and t.numel():
                info = torch.iinfo(ref.dtype)  # e.g. uint8 pixels: 0..255, never wrapped
                if int(t.min()) < info.min or int(t.max()) > info.max:
                    raise RequestError(f"inputs[{i}] must hold integers in {info.min}..{info.max}"
                                       f" ({str(ref.dtype).removeprefix('torch.')})")
            out.append(t.to(ref.dtype))
        return tuple(out)

    # ------------------------------------------------------------------ predict
    def predict(self, examples: list[Any]) -> list[Any]:
        """A batch of decoded examples -> one output per example (the batcher's function)."""
        hook = getattr(self.task, "serve_predict", None)
        with torch.inference_mode():
            if callable(hook):
                return list(hook(self.model, examples))
            return self._default_predict(examples)

    def _default_predict(self, examples: list[tuple[torch.Tensor, ...]]) -> list[Any]:
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, ex in enumerate(examples):
            groups.setdefault(tuple(tuple(t.shape) for t in ex), []).append(i)
        results: list[Any] = [None] * len(examples)
        for idx in groups.values():
            args = tuple(torch.stack([examples[i][k] for i in idx]).to(device)
                         for k in range(len(examples[idx[0]])))
            outs = [o.cpu() for o in flatten_outputs(self.model(*args))]
            n = len(idx)
            for j, i in enumerate(idx):
                results[i] = [o[j] if o.dim() > 0 and o.shape[0] == n else o for o in outs]
        return results

    # ------------------------------------------------------------------ encode
    def encode(self, output: Any) -> Any:
        """One example's output -> JSON-able value."""
        hook = getattr(self.task, "serve_encode", None)
        if callable(hook):
            return hook(output)
        return {"outputs": [t.tolist() for t in flatten_outputs(output)]}

    def example_request(self) -> Any:
        """A request body that :meth:`decode` accepts."""
        hook = getattr(self.task, "serve_example", None)
        if callable(hook):
            return hook()
        return {"inputs": [x[0].tolist() for x in self.template]}


# --------------------------------------------------------------------------- the app
def _require_fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise SuiteError("serving needs FastAPI and uvicorn: pip install 'torchsuite[serve]'."
                         ) from None
    return fastapi


def build_app(adapter: ServeAdapter, opts: ServeOptions, info: dict[str, Any] | None = None
              ) -> Any:
    """The FastAPI app; ``app.state.batcher`` must be closed by whoever stops the server."""
    fastapi = _require_fastapi()
    from fastapi.responses import JSONResponse, Response

    task_name = adapter.task.name
    batcher = DynamicBatcher(adapter.predict, opts.max_batch, opts.max_wait_ms / 1000.0,
                             adaptive=opts.adaptive_wait)
    app = fastapi.FastAPI(title=f"torchsuite: {task_name}", docs_url=None, redoc_url=None,
                          openapi_url=None)
    app.state.batcher = batcher
    meta = dict(info or {})

    def error(status: int, reason: str) -> Any:
        return JSONResponse({"error": reason}, status_code=status)

    @app.get("/health")
    def health() -> dict[str, Any]:
        s = batcher.stats
        return {"status": "ok", "task": task_name, **meta,
                "batching": {"max_batch": opts.max_batch, "max_wait_ms": opts.max_wait_ms,
                             "requests": s.requests, "batches": s.batches,
                             "largest": s.largest}}

    @app.get("/v1/tasks/{name}")
    def describe(name: str) -> Any:
        if name != task_name:
            return error(404, f"this server serves task '{task_name}', not '{name}'")
        return {"task": task_name, "predict": f"/v1/tasks/{task_name}/predict",
                "max_body_bytes": opts.max_body_bytes,
                "example_request": adapter.example_request()}

    @app.post("/v1/tasks/{name}/predict")
    async def predict(name: str, request: Request) -> Any:
        if name != task_name:
            return error(404, f"this server serves task '{task_name}', not '{name}'")
        batcher.expect()  # a batch being formed now may wait for this request
        submitted = False
        try:
            declared = request.headers.get("content-length")
            too_big = (f"request body over the limit of {opts.max_body_bytes} bytes "
                       "(--max-body-bytes)")
            if declared is not None:
                if not declared.isdigit():
                    return error(400, "invalid Content-Length header")
                if int(declared) > opts.max_body_bytes:
                    return error(413, too_big)
            body = bytearray()
            async for chunk in request.stream():  # counted as it arrives: chunked bodies too
                body += chunk
                if len(body) > opts.max_body_bytes:
                    return error(413, too_big)
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return error(400, f"request body is not valid JSON: {exc}")
            try:
                example = adapter.decode(payload)
            except RequestError as exc:
                return error(422, str(exc))
            submitted = True
            future = batcher.submit(example, expected=True)
        finally:
            if not submitted:
                batcher.cancel()
        try:
            output = await asyncio.wait_for(asyncio.wrap_future(future),
                                            timeout=opts.request_timeout_s)
        except TimeoutError:
            return error(503, f"no result within {opts.request_timeout_s:g} s")
        except RequestError as exc:
            return error(422, str(exc))
        except Exception as exc:  # the model failed on this input: say so, keep serving
            return error(500, f"prediction failed: {type(exc).__name__}: {exc}")
        try:
            # serialised here, not by FastAPI's recursive jsonable_encoder (per-request CPU)
            text = json.dumps(adapter.encode(output), allow_nan=False)
        except ValueError:
            return error(500, "the model produced NaN or infinity for this input")
        except TypeError as exc:
            return error(500, f"the task's output is not JSON-serialisable: {exc}")
        return Response(text, media_type="application/json")

    return app


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn on a background thread; yields its base URL.

    ``port=0`` picks a free port. Used by tests and ``benchmarks/lifecycle_serve.py``.
    """
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only for such listeners
    # (with proto 0 every response waits ~40 ms for Nagle + delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("the server did not start")
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        batcher = getattr(app.state, "batcher", None)
        if batcher is not None:
            batcher.close()


def run_server(
    task_name: str,
    from_run: str,
    opts: ServeOptions,
    *,
    files: Sequence[str] = (),
    overrides: Sequence[str] = (),
) -> None:
    """``suite serve``: load the run and serve it until interrupted (Ctrl-C / SIGTERM)."""
    _require_fastapi()
    import uvicorn

    from .source import load_source

    if opts.max_batch < 1:
        raise SuiteError(f"--max-batch {opts.max_batch}: expected 1 or more.")
    if opts.max_body_bytes < 1:
        raise SuiteError(f"--max-body-bytes {opts.max_body_bytes}: expected 1 or more.")
    source = load_source(task_name, from_run, files=files, overrides=overrides)
    try:
        model = source.model.to(opts.device).eval()
    except (RuntimeError, AssertionError) as exc:
        raise SuiteError(f"--device {opts.device}: {exc}") from None
    adapter = ServeAdapter(source.task, model)
    adapter.example_request()  # fail now, not on the first request, if example_inputs breaks
    app = build_app(adapter, opts, {"checkpoint": str(source.checkpoint), "step": source.step})
    if opts.host not in _LOOPBACK:
        print(f"warning: --host {opts.host} makes the server reachable from other machines; "
              "it has no authentication.")
    base = f"http://{opts.host}:{opts.port}"
    print(f"serving {task_name} from {source.checkpoint} on {base} ({opts.device})\n"
          f"  POST {base}/v1/tasks/{task_name}/predict   GET {base}/health   "
          f"GET {base}/v1/tasks/{task_name} (example request)\n"
          f"  batching: up to {opts.max_batch} requests, {opts.max_wait_ms:g} ms wait; "
          f"bodies up to {opts.max_body_bytes} bytes. Ctrl-C stops.", flush=True)
    try:
        uvicorn.run(app, host=opts.host, port=opts.port, log_level="warning",
                    access_log=False)
    finally:
        app.state.batcher.close()
