"""``suite compress``: magnitude pruning made permanent, dynamic/static int8, the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torchsuite.core.errors import SuiteError
from torchsuite.core.lifecycle.compress import (
    CompressOptions,
    load_quantized,
    make_permanent,
    prune_model,
    quantize_dynamic_int8,
    run_compress,
    sparsity,
)
from torchsuite.core.lifecycle.source import load_source
from torchsuite.core.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("use_registry")


def _zero_fraction(t: torch.Tensor) -> float:
    return float((t == 0).float().mean())


@pytest.mark.parametrize("amount", [0.3, 0.7])
def test_unstructured_pruning_reaches_sparsity_and_is_permanent(
    amount: float, template_run: Path, tmp_path: Path
) -> None:
    out = run_compress("template-regression", str(template_run),
                       CompressOptions(prune=amount, latency_runs=2),
                       run_dir=str(tmp_path / "pruned"))
    report = json.loads((out / "compress.json").read_text())
    pruned = next(v for v in report["variants"] if v["name"].startswith("pruned"))
    assert pruned["sparsity"] == pytest.approx(amount, abs=0.01)
    state = load_checkpoint(out / "checkpoints" / "best.pt")["model"]
    # permanent: plain weights, no masks or *_orig copies left for later verbs to trip on
    assert set(state) == set(load_checkpoint(template_run / "checkpoints" / "best.pt")["model"])
    assert _zero_fraction(state["backbone.0.weight"]) == pytest.approx(amount, abs=0.01)
    assert _zero_fraction(state["head.weight"]) == 0.0  # the output layer stays dense
    # the pruned run is an ordinary run: it loads and evaluates like any other
    again = load_source("template-regression", str(out))
    assert _zero_fraction(again.model.backbone[0].weight) == pytest.approx(amount, abs=0.01)


def test_structured_pruning_removes_whole_rows_and_finetune_keeps_masks(
    template_run: Path, tmp_path: Path, quiet: list[str]
) -> None:
    out = run_compress("template-regression", str(template_run),
                       CompressOptions(prune=0.5, structured=True, finetune_steps=15,
                                       latency_runs=2),
                       overrides=quiet, run_dir=str(tmp_path / "rows"))
    w = load_checkpoint(out / "checkpoints" / "best.pt")["model"]["backbone.0.weight"]
    zero_rows = (w == 0).all(dim=1)
    assert int(zero_rows.sum()) == w.shape[0] // 2  # half the hidden units gone entirely
    assert not (w[~zero_rows] == 0).any()  # fine-tuning with masks did not revive them


def test_dynamic_int8_shrinks_the_model_and_prints_the_table(
    seq_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_compress("lifecycle-seq", str(seq_run),
                       CompressOptions(quantize=["dynamic-int8", "static-int8"], latency_runs=3),
                       run_dir=str(tmp_path / "q"))
    report = json.loads((out / "compress.json").read_text())
    by_name = {v["name"]: v for v in report["variants"]}
    fp, q8 = by_name["float"], by_name["dynamic-int8"]
    assert q8["size_bytes"] < fp["size_bytes"] / 2.5  # LSTM + Linear weights are int8 now
    assert q8["latency_ms"] > 0 and fp["latency_ms"] > 0
    assert abs(q8["metrics"]["acc"] - fp["metrics"]["acc"]) < 0.05
    assert "static-int8" in by_name  # measured, or a row that says why it is not possible
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("variant"))
    for col in ("size MB", "smaller x", "latency ms", "faster x", "dev.loss", "worse %"):
        assert col in header
    assert any(line.startswith("dynamic-int8") for line in printed.splitlines())

    # the saved int8 files rebuild into a fresh model (read with weights_only=True)
    x = torch.randint(0, 12, (3, 8))
    fresh = load_source("lifecycle-seq", str(seq_run))
    reference = quantize_dynamic_int8(fresh.model)
    rebuilt = load_quantized(fresh.task.build_model(), Path(q8["file"]))
    assert torch.allclose(rebuilt(x), reference(x))
    if by_name["static-int8"]["file"]:
        static = load_quantized(fresh.task.build_model(), Path(by_name["static-int8"]["file"]),
                                "static-int8", fresh.task.example_inputs())
        assert static(x).shape == reference(x).shape


def test_prune_helpers_count_exact_zeros() -> None:
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 40), nn.Linear(40, 2))
    names = prune_model(model, 0.6, structured=False)
    assert names == ["0.weight", "2.weight"]
    make_permanent(model)
    assert not any(n.endswith(("_orig", "_mask")) for n, _ in model.named_parameters())
    assert not any(n.endswith("_mask") for n, _ in model.named_buffers())
    assert sparsity(model, names) == pytest.approx(0.6, abs=0.01)
    with pytest.raises(SuiteError, match="between 0 and 1"):
        prune_model(model, 1.5, structured=False)


def test_nothing_to_do_and_missing_split_are_errors(template_run: Path) -> None:
    with pytest.raises(SuiteError, match="nothing to do"):
        run_compress("template-regression", str(template_run), CompressOptions())
    with pytest.raises(SuiteError, match="--split nope"):
        run_compress("template-regression", str(template_run),
                     CompressOptions(prune=0.5, split="nope"))


def test_dynamic_int8_of_torch_transformer_layers_runs_in_eval_mode() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    model = nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                          nn.Linear(16, 4)).eval()
    x = torch.randn(3, 5, 16)
    q = quantize_dynamic_int8(model)
    with torch.no_grad():
        out, ref = q(x), model(x)  # crashed in the fused fast path before
    assert out.shape == ref.shape and float((out - ref).abs().max()) < 0.1
