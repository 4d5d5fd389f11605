"""Every lifecycle verb on a built-in plugin task (``translation``), end to end (slow).

A tiny synthetic parallel corpus (with a ``target`` domain whose word order is
reversed) is prepared, a one-layer Transformer is trained for a few dozen steps, and
finetune, distill, compress (prune + dynamic int8), export (all formats, checked
against eager) and serve (real HTTP on loopback) run on it through the task protocol.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

pytest.importorskip("sentencepiece")
pytest.importorskip("sacrebleu")

from torchsuite.core import registry as registry_mod
from torchsuite.core.config import resolve_config
from torchsuite.core.registry import Registry

pytestmark = pytest.mark.slow

WORDS = {"the": "der", "a": "ein", "cat": "katze", "dog": "hund", "sees": "sieht",
         "likes": "mag", "big": "gross", "small": "klein", "red": "rot", "blue": "blau",
         "house": "haus", "tree": "baum", "runs": "rennt", "walks": "geht"}
MODEL = ["model.d_model=32", "model.heads=2", "model.ffn=64", "model.encoder_layers=1",
         "model.decoder_layers=1"]
QUIET = ["train.progress=off", "train.tensorboard=false", "decode.beam=1",
         "decode.eval_sentences=20"]


def _corpus(folder: Path) -> tuple[Path, Path, Path]:
    rng = random.Random(0)
    words = list(WORDS)

    def pairs(n: int, reverse: bool) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            s = [rng.choice(words) for _ in range(rng.randint(3, 7))]
            t = [WORDS[w] for w in s]
            out.append((" ".join(s), " ".join(t[::-1] if reverse else t)))
        return out

    main = folder / "train.tsv"
    main.write_text("".join(f"{s}\t{t}\n" for s, t in pairs(600, False)))
    target = pairs(120, True)
    (folder / "target.en").write_text("".join(s + "\n" for s, _ in target))
    (folder / "target.de").write_text("".join(t + "\n" for _, t in target))
    return main, folder / "target.en", folder / "target.de"


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    from torchsuite.core.train import fit

    root = tmp_path_factory.mktemp("translation")
    reg = Registry().load([EntryPoint("translation", "torchsuite.plugins.translation.plugin",
                                      "suite.plugins")])
    previous = registry_mod._REGISTRY
    registry_mod._REGISTRY = reg
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main, tsrc, ttgt = _corpus(root)
        data = [f"data.dir={root / 'data'}", f"data.target_src={tsrc}",
                f"data.target_tgt={ttgt}", "data.vocab_size=40", "data.workers=0",
                "data.dev_ratio=0.1", "data.test_ratio=0.1"]
        cls = reg.task("translation")
        task = cls(resolve_config(cls.Config, overrides=data))
        task.prepare(main)
        task = cls(resolve_config(cls.Config, overrides=[
            *data, *MODEL, *QUIET, "train.max_steps=60", "train.eval_every=30",
            "optim.warmup_steps=10", "optim.lr=3e-3"]))
        fit(task, root / "base")
        yield root, root / "base"
    finally:
        registry_mod._REGISTRY = previous
        torch.set_num_threads(threads)


def test_finetune_distill_compress_on_translation(translation_run: tuple[Path, Path]) -> None:
    from torchsuite.core.lifecycle.compress import CompressOptions, run_compress
    from torchsuite.core.lifecycle.distill import run_distill
    from torchsuite.core.lifecycle.transfer import run_finetune

    root, base = translation_run
    ft = run_finetune("translation", str(base), overrides=[
        *QUIET, "finetune.mode=freeze", 'finetune.trainable=["decoder"]', "train.max_steps=10",
        "train.eval_every=10"], run_dir=str(root / "ft"))
    report = json.loads((ft / "transfer.json").read_text())
    assert {"bleu", "chrf"} <= set(report["after"]["target (held-out)"])

    st = run_distill("translation", str(base), overrides=[
        *QUIET, "model.d_model=16", "model.ffn=32", "train.max_steps=10", "train.eval_every=10"],
        run_dir=str(root / "st"))
    result = json.loads((st / "distill.json").read_text())
    assert result["student"]["params"] < result["teacher"]["params"]

    cmp = run_compress("translation", str(base),
                       CompressOptions(prune=0.5, quantize=["dynamic-int8"], latency_runs=2),
                       overrides=QUIET, run_dir=str(root / "cmp"))
    variants = {v["name"]: v for v in json.loads((cmp / "compress.json").read_text())["variants"]}
    assert variants["pruned-unstructured-0.5"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert variants["dynamic-int8"]["size_bytes"] < variants["float"]["size_bytes"]


def test_export_and_serve_translation(translation_run: tuple[Path, Path]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("fastapi")
    from torchsuite.core.lifecycle.export import run_export
    from torchsuite.core.lifecycle.serve import (
        ServeAdapter,
        ServeOptions,
        build_app,
        serve_in_thread,
    )
    from torchsuite.core.lifecycle.source import load_source

    root, base = translation_run
    out = root / "export"
    assert run_export("translation", str(base), ["exported", "torchscript", "onnx"],
                      safetensors=True, overrides=QUIET, out_dir=str(out))
    checks = json.loads((out / "export.json").read_text())["checks"]
    assert [c["format"] for c in checks] == ["exported", "torchscript", "onnx", "safetensors"]
    assert all(c["ok"] for c in checks)

    source = load_source("translation", str(base), overrides=QUIET)
    adapter = ServeAdapter(source.task, source.model)
    with serve_in_thread(build_app(adapter, ServeOptions())) as url:
        with urllib.request.urlopen(f"{url}/v1/tasks/translation", timeout=60) as resp:
            info = json.loads(resp.read())
        req = urllib.request.Request(f"{url}{info['predict']}",
                                     data=json.dumps(info["example_request"]).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
    assert body  # the task's own JSON (serve_* hooks) or the default {"outputs": [...]}
