"""``suite serve``: real HTTP on a loopback server; bad input gets a 4xx, serving goes on."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from torchsuite.core.lifecycle.batching import DynamicBatcher
from torchsuite.core.lifecycle.serve import (
    ServeAdapter,
    ServeOptions,
    build_app,
    serve_in_thread,
)
from torchsuite.core.lifecycle.source import load_source

pytestmark = pytest.mark.usefixtures("use_registry")


def call(url: str, body: bytes | None = None, method: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post(url: str, payload: Any) -> tuple[int, Any]:
    return call(url, json.dumps(payload).encode())


@pytest.fixture
def template_server(template_run: Path) -> Iterator[tuple[str, Any]]:
    source = load_source("template-regression", str(template_run))
    opts = ServeOptions(max_batch=8, max_wait_ms=30.0, max_body_bytes=2000)
    app = build_app(ServeAdapter(source.task, source.model), opts)
    with serve_in_thread(app) as url:
        yield url, source.model


def test_health_example_and_prediction_match_the_model(
    template_server: tuple[str, Any]
) -> None:
    url, model = template_server
    status, health = call(f"{url}/health")
    assert status == 200 and health["status"] == "ok" and health["task"] == "template-regression"
    status, info = call(f"{url}/v1/tasks/template-regression")
    assert status == 200
    example = info["example_request"]
    status, out = post(f"{url}{info['predict']}", example)
    assert status == 200, out
    x = torch.tensor(example["inputs"][0]).unsqueeze(0)
    expected = model(x)[0].tolist()
    assert out["outputs"][0] == pytest.approx(expected, abs=1e-5)


def test_garbage_gets_4xx_with_a_reason_and_the_server_keeps_serving(
    template_server: tuple[str, Any]
) -> None:
    url, _ = template_server
    predict = f"{url}/v1/tasks/template-regression/predict"
    status, body = call(predict, b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = post(predict, {"inputs": [[1.0, 2.0]]})
    assert status == 422 and "expected [8]" in body["error"]
    status, body = post(predict, {"x": 1})
    assert status == 422 and '"inputs"' in body["error"]
    status, body = post(predict, {"inputs": [["a"] * 8]})
    assert status == 422 and "inputs[0]" in body["error"]
    status, body = post(predict, {"inputs": [[float("nan")] * 8]})  # json.dumps writes NaN
    assert status == 422 and "NaN" in body["error"]
    status, body = call(predict, b"[" + b"1.0," * 1000 + b"1.0]")
    assert status == 413 and "2000 bytes" in body["error"]
    status, body = post(f"{url}/v1/tasks/other-task/predict", {"inputs": [[0.0] * 8]})
    assert status == 404 and "template-regression" in body["error"]
    status, body = post(predict, {"inputs": [[0.5] * 8]})
    assert status == 200 and len(body["outputs"][0]) == 1


def test_concurrent_requests_are_batched_and_answers_stay_in_order(template_run: Path) -> None:
    # A fixed (not adaptive) wait, long enough that a loaded CI machine still gets the 16
    # clients released by the barrier into shared batches.
    source = load_source("template-regression", str(template_run))
    opts = ServeOptions(max_batch=8, max_wait_ms=300.0, adaptive_wait=False)
    app = build_app(ServeAdapter(source.task, source.model), opts)
    xs = torch.randn(16, 8, generator=torch.Generator().manual_seed(3))
    results: dict[int, Any] = {}
    barrier = threading.Barrier(16)

    with serve_in_thread(app) as url:
        def one(i: int) -> None:
            barrier.wait()
            results[i] = post(f"{url}/v1/tasks/template-regression/predict",
                              {"inputs": [xs[i].tolist()]})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _, health = call(f"{url}/health")
    expected = source.model(xs)
    for i in range(16):
        status, body = results[i]
        assert status == 200
        assert body["outputs"][0] == pytest.approx(expected[i].tolist(), abs=1e-5)
    assert health["batching"]["requests"] == 16
    assert health["batching"]["batches"] < 16 and health["batching"]["largest"] > 1


def test_task_hooks_decode_and_encode_variable_length_sequences(seq_run: Path) -> None:
    source = load_source("lifecycle-seq", str(seq_run))
    app = build_app(ServeAdapter(source.task, source.model), ServeOptions(max_wait_ms=20.0))
    seqs = [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10, 11], [0]]
    with serve_in_thread(app) as url:
        predict = f"{url}/v1/tasks/lifecycle-seq/predict"
        got: dict[int, Any] = {}
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(
            i, post(predict, {"tokens": seqs[i]}))) for i in range(len(seqs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status, body = post(predict, {"tokens": [99]})
        assert status == 422 and "0..11" in body["error"]
        status, info = call(f"{url}/v1/tasks/lifecycle-seq")
        assert post(predict, info["example_request"])[0] == 200
    for i, seq in enumerate(seqs):
        status, body = got[i]
        assert status == 200
        tags = source.model(torch.tensor([seq])).argmax(-1)[0].tolist()
        assert body["tags"] == tags  # the trained model: prev + token mod 5
    assert got[0][1]["tags"] == [1, 3, 0]


def test_batcher_waits_at_most_max_wait_and_isolates_failures() -> None:
    seen: list[int] = []

    def fn(items: list[int]) -> list[Any]:
        seen.append(len(items))
        if 13 in items and len(items) > 1:
            raise RuntimeError("a bad item spoils the batch")
        return [ValueError("odd") if i == 7 else i * 2 for i in items]

    batcher = DynamicBatcher(fn, max_batch=4, max_wait_s=0.05)
    try:
        t0 = time.monotonic()
        assert batcher.submit(1).result(5) == 2  # alone: returned after the wait, not stuck
        assert time.monotonic() - t0 < 2.0
        futures = [batcher.submit(i) for i in (2, 7, 13, 4)]
        assert futures[0].result(5) == 4 and futures[2].result(5) == 26
        with pytest.raises(ValueError, match="odd"):
            futures[1].result(5)
        assert futures[3].result(5) == 8
        assert max(seen) == 4  # the four queued items formed one batch before the retry
    finally:
        batcher.close()


def test_chunked_body_over_the_limit_is_refused(template_server: tuple[str, Any]) -> None:
    import http.client
    from urllib.parse import urlsplit

    url, _ = template_server
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        chunks = (b"[" + b"0.0," * 200 for _ in range(10))  # no Content-Length: chunked
        conn.request("POST", "/v1/tasks/template-regression/predict", body=chunks,
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413 and "over the limit" in json.loads(resp.read())["error"]
    finally:
        conn.close()
    assert post(f"{url}/v1/tasks/template-regression/predict", {"inputs": [[0.0] * 8]})[0] == 200


@pytest.mark.slow
def test_cli_serve_binds_loopback_and_answers(template_run: Path, template_site_session: Path,
                                              tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "SUITE_DISABLE_PLUGINS": "music,music-audio,translation,driving",
           "PYTHONPATH": os.pathsep.join([str(template_site_session),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchsuite.core.cli", "serve", "template-regression", "--from",
         str(template_run), "--port", str(port), "--max-batch", "4"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, health = call(f"http://127.0.0.1:{port}/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.3)
        else:
            pytest.fail("suite serve did not come up within 120 s")
        assert status == 200 and health["batching"]["max_batch"] == 4
        assert health["checkpoint"].endswith("best.pt")
        status, body = post(f"http://127.0.0.1:{port}/v1/tasks/template-regression/predict",
                            {"inputs": [[0.1] * 8]})
        assert status == 200 and len(body["outputs"][0]) == 1
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}" in out


def test_adaptive_batcher_skips_the_wait_only_when_idle() -> None:
    sizes: list[int] = []

    def fn(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    batcher = DynamicBatcher(fn, max_batch=8, max_wait_s=2.0, adaptive=True)
    try:
        t0 = time.monotonic()
        assert batcher.submit(1).result(5) == 1
        assert time.monotonic() - t0 < 1.0  # idle server, nothing announced: no 2 s wait
        batcher.expect()
        first = batcher.submit(2)
        time.sleep(0.2)  # the announced request is still "reading its body"
        second = batcher.submit(3, expected=True)
        assert (first.result(5), second.result(5)) == (2, 3)
        assert sizes == [1, 2]  # the batch waited for the announced request
        # under load (last batch > 1) a lone arrival waits for company, bounded by max_wait
        batcher.max_wait_s = 0.3
        a = batcher.submit(4)
        time.sleep(0.1)
        b = batcher.submit(5)
        assert (a.result(5), b.result(5)) == (4, 5) and sizes[-1] == 2
    finally:
        batcher.close()


def test_default_decoding_checks_shape_kind_and_integer_range() -> None:
    from torchsuite.core.lifecycle.serve import RequestError

    class Pixels:
        name = "pixels"

        def example_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.zeros(1, 2, 2, dtype=torch.uint8), torch.zeros(1, 3)

    adapter = ServeAdapter(Pixels(), torch.nn.Identity())  # type: ignore[arg-type]
    img, vec = adapter.decode({"inputs": [[[0, 255], [7, 9]], [0.5, 1, 2]]})
    assert img.dtype == torch.uint8 and img.tolist() == [[0, 255], [7, 9]]
    assert vec.dtype == torch.float32 and vec.tolist() == [0.5, 1.0, 2.0]
    for bad, reason in [({"inputs": [[[0, 256], [0, 0]], [0, 0, 0]]}, "0..255"),
                        ({"inputs": [[[0.5, 1], [0, 0]], [0, 0, 0]]}, "must hold ints"),
                        ({"inputs": [[[0, 1], [0, 0]]]}, "the model takes 2"),
                        ({"inputs": [[[0, 1], [0]], [0, 0, 0]]}, "rectangular"),
                        ([1, 2], '{"inputs"')]:
        with pytest.raises(RequestError, match=re.escape(reason)):
            adapter.decode(bad)
    assert adapter.example_request() == {"inputs": [[[0, 0], [0, 0]], [0.0, 0.0, 0.0]]}


def test_nan_output_is_a_500_with_a_reason_and_serving_goes_on() -> None:
    class Log(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x)  # [B, 2] -> [B, 2]; NaN for negative inputs

    class Task:
        name = "log"

        def example_inputs(self) -> tuple[torch.Tensor]:
            return (torch.ones(1, 2),)

    app = build_app(ServeAdapter(Task(), Log()), ServeOptions())  # type: ignore[arg-type]
    with serve_in_thread(app) as url:
        status, body = post(f"{url}/v1/tasks/log/predict", {"inputs": [[-1.0, 1.0]]})
        assert status == 500 and "NaN" in body["error"]
        status, body = post(f"{url}/v1/tasks/log/predict", {"inputs": [[1.0, 1.0]]})
        assert status == 200 and body == {"outputs": [[0.0, 0.0]]}
