"""The task end to end: prepare -> train through the core Trainer -> BLEU, translate, average."""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from suite_testing import post_json
from torchsuite.core import resolve_config
from torchsuite.core.cli import main
from torchsuite.core.train import best_checkpoint, fit, load_checkpoint
from torchsuite.core.train.checkpoint import step_checkpoints
from torchsuite.plugins.translation.commands import translate_stream
from torchsuite.plugins.translation.task import TranslationTask, collate_pairs
from torchsuite.plugins.translation.translate import Translator

# A model small enough to overfit 24 toy pairs in under a hundred CPU steps.
TINY = [
    "model.d_model=64", "model.ffn=128", "model.heads=4", "model.encoder_layers=2",
    "model.decoder_layers=2", "model.dropout=0.0", "model.activation_dropout=0.0",
    "optim.lr=0.005", "optim.warmup_steps=20", "optim.label_smoothing=0.0",
    "optim.weight_decay=0.0", "train.max_steps=80", "train.eval_every=0", "train.log_every=50",
    "train.progress=off", "train.tensorboard=false", "train.monitor=loss",
    "train.monitor_mode=min", "train.keep_last=3", "train.checkpoint_every=40",
    "data.max_tokens=2000", "decode.beam=2",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory,
            toy_pairs: Callable[..., list[tuple[str, str]]]) -> dict[str, Any]:
    """Prepare 24 toy pairs (all in train), train the tiny model once for the module."""
    root = tmp_path_factory.mktemp("translation")
    pairs = toy_pairs(24, seed=11)
    (root / "toy.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    data = root / "data"
    overrides = [*TINY, f"data.dir={data}", f"data.src={root / 'toy.tsv'}", "data.vocab_size=60",
                 "data.workers=0", "data.dev_ratio=0.0", "data.test_ratio=0.0",
                 "data.dedup_capacity=10000"]
    task = TranslationTask(resolve_config(TranslationTask.Config, overrides=overrides))
    task.prepare()
    run = root / "runs" / "translation" / "toy"
    torch.manual_seed(0)
    result = fit(task, run)
    return {"task": task, "run": run, "result": result, "pairs": pairs, "root": root}


def _model(trained: dict[str, Any]) -> torch.nn.Module:
    task = trained["task"]
    model = task.build_model()
    model.load_state_dict(load_checkpoint(best_checkpoint(trained["run"]))["model"])
    return model.eval()


def test_collate_builds_shifted_targets() -> None:
    batch = collate_pairs([{"src": [5, 6, 7], "tgt": [8, 9]}, {"src": [5], "tgt": [10, 11, 12]}])
    assert batch["src"].tolist() == [[5, 6, 7, 3], [5, 3, 0, 0]]
    assert batch["tgt_in"].tolist() == [[2, 8, 9, 0], [2, 10, 11, 12]]
    assert batch["tgt_out"].tolist() == [[8, 9, 3, 0], [10, 11, 12, 3]]


def test_training_step_is_label_smoothed_cross_entropy(
    trained: dict[str, Any],
) -> None:
    task, model = trained["task"], _model(trained)
    batch = next(iter(task.dataloader("train", train=False)))
    out = task._loss(model, batch, 0.1)
    logits = model(batch["src"], batch["tgt_in"])
    ref = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["tgt_out"].reshape(-1),
                          ignore_index=0, label_smoothing=0.1)
    assert torch.allclose(out.loss, ref, atol=1e-5)
    assert out.weight == int((batch["tgt_out"] != 0).sum())


def test_token_budget_batches_cover_the_split_once(trained: dict[str, Any]) -> None:
    task = trained["task"]
    loader = task.dataloader("train", train=True)
    seen = []
    for indices in loader.batch_sampler:
        seen += indices
    assert sorted(seen) == list(range(24))
    for batch in loader:
        assert batch["src"].shape[0] * max(batch["src"].shape[1], batch["tgt_in"].shape[1]) <= 2000


def test_tiny_model_overfits_to_bleu_above_90(trained: dict[str, Any]) -> None:
    assert trained["result"].steps == 80
    scores = trained["task"].evaluate(_model(trained), "train")
    assert scores["bleu"] > 90, scores
    assert scores["chrf"] > 90
    assert "BLEU" in trained["task"].last_signatures["bleu"] or "nrefs" in \
        trained["task"].last_signatures["bleu"]


def test_translate_keeps_input_order(trained: dict[str, Any]) -> None:
    task, pairs = trained["task"], trained["pairs"]
    translator = Translator(_model(trained), task.vocab, task.decode_options(), max_tokens=60)
    lines = [p[0] for p in pairs[:12]]
    random.Random(0).shuffle(lines)
    lines.insert(4, "")  # an empty line stays an empty line
    one_by_one = [translator.translate([s])[0] if s else "" for s in lines]
    out = io.StringIO()
    assert translate_stream(translator, io.StringIO("\n".join(lines) + "\n"), out, chunk=5) == 13
    assert out.getvalue().splitlines() == one_by_one
    reference = {s: t for s, t in pairs}
    correct = sum(h == reference[s] for s, h in zip(lines, one_by_one, strict=True) if s)
    assert correct >= 10  # the overfitted model knows these sentences


def test_cli_translate_evaluate_and_average(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    run = trained["run"]
    monkeypatch.chdir(trained["root"])
    pairs = trained["pairs"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(p[0] + "\n" for p in pairs[:4])))
    assert main(["translation", "translate", "--from", str(run), "--beam", "1"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 4 and "translated 4 lines" in out.err

    assert main(["translation", "evaluate", "--from", str(run), "--split", "train"]) == 0
    report = json.loads((run / "eval-train-bleu.json").read_text())
    assert report["bleu"] > 90 and "nrefs:1" in report["signatures"]["bleu"]
    assert len((run / "samples" / "hyp-train.txt").read_text().splitlines()) == 24

    assert main(["translation", "average", "--from", str(run), "--last", "2"]) == 0
    steps = [p for _, p in step_checkpoints(run)[-2:]]
    assert [p.name for p in steps] == ["step-40.pt", "step-80.pt"]
    states = [load_checkpoint(p)["model"] for p in steps]
    avg = load_checkpoint(run / "checkpoints" / "averaged.pt")["model"]
    key = "encoder.0.ffn.fc1.weight"
    assert torch.allclose(avg[key], (states[0][key] + states[1][key]) / 2)


def test_fresh_user_gets_prepare_instructions(
    workdir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["train", "translation", "train.max_steps=1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no prepared corpus" in err and "suite prepare translation --src" in err


def test_serve_translates_text_over_http(trained: dict[str, Any]) -> None:
    pytest.importorskip("fastapi")
    import threading

    from torchsuite.core.lifecycle.serve import (
        ServeAdapter,
        ServeOptions,
        build_app,
        serve_in_thread,
    )

    task, pairs = trained["task"], trained["pairs"]
    model = _model(trained)
    expected = Translator(model, task.vocab, task.decode_options()).translate(
        [p[0] for p in pairs[:6]])

    app = build_app(ServeAdapter(task, model), ServeOptions(max_wait_ms=50.0))
    with serve_in_thread(app) as url:
        predict = f"{url}/v1/tasks/translation/predict"
        got: dict[int, Any] = {}
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(
            i, post_json(predict, {"text": pairs[i][0]}))) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [got[i] for i in range(6)] == [(200, {"translation": e}) for e in expected]
        status, body = post_json(predict, {"txt": "x"})
        assert status == 422 and '{"text"' in body["error"]
        status, body = post_json(predict, {"text": "x" * 3000})
        assert status == 422 and "at most 2000" in body["error"]


def test_core_eval_writes_hypotheses_and_signatures(
    trained: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    run = trained["run"]
    assert main(["eval", "translation", "--from", str(run), "--split", "train",
                 "decode.beam=1"]) == 0
    out = capsys.readouterr().out
    assert "train.bleu = " in out and "nrefs:1|case:mixed" in out
    saved = json.loads((run / "eval-train.json").read_text())
    assert saved["signatures"]["bleu"].startswith("nrefs:1")
    hyps = (run / "samples" / "hyp-train.txt").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == len(trained["pairs"]) and saved["hypotheses"].endswith("hyp-train.txt")
