"""``suite export``: torch.export / TorchScript / ONNX / safetensors, each checked against eager."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from suite_testing import run_suite
from torch import nn
from torchsuite.core.errors import SuiteError
from torchsuite.core.lifecycle.export import compare_outputs, export_format, run_export

pytestmark = pytest.mark.usefixtures("use_registry")


def test_all_formats_written_reloaded_and_matching(
    template_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("safetensors")
    out = tmp_path / "export"
    ok = run_export("template-regression", str(template_run),
                    ["exported", "torchscript", "onnx"], safetensors=True, atol=1e-5, rtol=1e-4,
                    out_dir=str(out))
    assert ok
    report = json.loads((out / "export.json").read_text())
    checks = {c["format"]: c for c in report["checks"]}
    assert set(checks) == {"exported", "torchscript", "onnx", "safetensors"}
    for c in checks.values():
        assert Path(c["file"]).is_file() and c["ok"]
        assert c["max_abs_diff"] <= 1e-5
    assert checks["exported"]["dynamic_batch"] is True  # re-checked at twice the batch
    assert checks["onnx"]["note"] == "checked with onnxruntime"
    printed = capsys.readouterr().out
    assert "atol=1e-05 rtol=0.0001" in printed and "max |diff|" in printed

    # the files are usable on their own: a fresh process would do exactly this
    x = torch.randn(7, 8)
    from torchsuite.core.lifecycle.source import load_source

    eager = load_source("template-regression", str(template_run)).model
    program = torch.export.load(str(out / "model.pt2")).module()
    assert torch.allclose(program(x), eager(x), atol=1e-6)
    from safetensors.torch import load_file

    weights = load_file(str(out / "model.safetensors"))
    assert torch.equal(weights["head.weight"], eager.head.weight.detach())


def test_sequence_model_exports_with_dynamic_batch(seq_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "seq-export"
    assert run_export("lifecycle-seq", str(seq_run), ["exported"], out_dir=str(out))
    check = json.loads((out / "export.json").read_text())["checks"][0]
    assert check["ok"] and check["dynamic_batch"] is True


def test_compare_outputs_catches_a_mismatch() -> None:
    a = {"logits": torch.zeros(2, 3), "aux": (torch.ones(2),)}
    worst, ok = compare_outputs(a, [torch.zeros(2, 3), torch.ones(2) + 1e-6], 1e-5, 0.0)
    assert ok and worst == pytest.approx(1e-6, rel=0.1)
    worst, ok = compare_outputs(a, [torch.zeros(2, 3), torch.ones(2) + 1e-3], 1e-5, 0.0)
    assert not ok and worst == pytest.approx(1e-3, rel=0.1)
    with pytest.raises(SuiteError, match="shape"):
        compare_outputs(torch.zeros(2, 3), torch.zeros(3, 2), 1e-5, 0.0)


class _NumpyRoundTrip(nn.Module):
    """Leaves the graph through numpy: no exporter can follow it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.detach().numpy() * 2.0)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.odd = _NumpyRoundTrip()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.odd(self.fc(x))


def test_unexportable_layer_is_named(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 4), _Block(), nn.Linear(4, 2))
    with pytest.raises(SuiteError, match=r"layer '1\.odd' \(_NumpyRoundTrip\)"):
        export_format(model, (torch.randn(3, 4),), "exported", tmp_path)
    assert not list(tmp_path.glob("*.tmp*"))  # nothing half-written left behind


@pytest.mark.slow
def test_cli_export_in_a_fresh_process(template_run: Path, template_site_session: Path,
                                       tmp_path: Path) -> None:
    env = {"OMP_NUM_THREADS": "1", "SUITE_DISABLE_PLUGINS": "music,music-audio,translation,"
           "driving"}
    ok = run_suite(["export", "template-regression", "--from", str(template_run), "--format",
                    "torchscript", "--out", str(tmp_path / "cli")], tmp_path,
                   [template_site_session], env)
    assert ok.returncode == 0, ok.stderr
    assert "torchscript  ok" in ok.stdout and "atol=0.0001 rtol=0.001" in ok.stdout
    assert (tmp_path / "cli" / "model.torchscript.pt").is_file()


def test_cli_verbs_and_bad_input(template_run: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from torchsuite.core.cli import main

    out = tmp_path / "cli"
    assert main(["export", "template-regression", "--from", str(template_run), "--format",
                 "torchscript", "--out", str(out), "--atol", "1e-6"]) == 0
    printed = capsys.readouterr().out
    assert "torchscript  ok" in printed and "atol=1e-06 rtol=0.001" in printed
    assert (out / "model.torchscript.pt").is_file()
    assert main(["export", "template-regression", "--from", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--from nope" in err and "Traceback" not in err
    assert main(["compress", "template-regression", "--from", str(template_run), "--prune",
                 "0.5", "--latency-runs", "1", "--run-dir", str(tmp_path / "c"),
                 "train.progress=off"]) == 0
    assert (tmp_path / "c" / "compress.json").is_file()
    assert main(["compress", "template-regression", "--from", str(template_run),
                 "--run-dir", str(tmp_path / "c")]) == 2  # nothing to do; the run is untouched
    assert "nothing to do" in capsys.readouterr().err
    assert main(["finetune", "template-regression", "--from", str(template_run),
                 "finetune.mode=sideways"]) == 2
    assert "finetune.mode" in capsys.readouterr().err
    assert os.listdir(out)


def test_onnx_without_its_packages_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(SuiteError, match=r"needs onnxscript: pip install 'torchsuite\[export\]'"):
        export_format(nn.Linear(2, 2), (torch.randn(1, 2),), "onnx", tmp_path)


class _Flatten(nn.Module):
    def forward(self, img: torch.Tensor, speed: torch.Tensor) -> torch.Tensor:
        return img.flatten(1).float().mean(1, keepdim=True) + speed  # [B, 1]


@pytest.mark.parametrize("fmt", ["exported", pytest.param("onnx", marks=pytest.mark.slow)])
def test_batch_of_one_example_still_exports_a_dynamic_batch(fmt: str, tmp_path: Path) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    inputs = (torch.randint(0, 255, (1, 3, 4, 4), dtype=torch.uint8), torch.ones(1, 1))
    check = export_format(_Flatten(), inputs, fmt, tmp_path)
    assert check.ok and check.dynamic_batch is True
    if fmt == "exported":
        program = torch.export.load(str(tmp_path / "model.pt2")).module()
        for b in (1, 5):
            img = torch.randint(0, 255, (b, 3, 4, 4), dtype=torch.uint8)
            assert program(img, torch.ones(b, 1)).shape == (b, 1)
