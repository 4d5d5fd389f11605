"""The third-party plugin template, discovered through its entry point and trained end to end."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from suite_testing import run_suite


def test_template_plugin_is_listed(tmp_path: Path, template_site: Path) -> None:
    out = run_suite(["plugins"], tmp_path, [template_site])
    line = next(line for line in out.stdout.splitlines() if line.startswith("template "))
    assert "suite-template-plugin" in line and "template-regression" in line and " ok " in line


def test_template_task_trains_through_suite_train(tmp_path: Path, template_site: Path) -> None:
    out = run_suite(
        [
            "train",
            "template-regression",
            "train.max_steps=60",
            "train.log_every=20",
            "--set",
            "optim.lr=0.01",
            "--name",
            "first",
        ],
        tmp_path,
        [template_site],
    )
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "template-regression" / "first"
    assert str(run) in out.stdout or "runs/template-regression/first" in out.stdout
    cfg = tomllib.loads((run / "config.toml").read_text())
    assert cfg["train"]["max_steps"] == 60 and cfg["optim"]["lr"] == 0.01
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train.loss"] for r in records if "train.loss" in r]
    assert len(losses) >= 2 and losses[-1] < losses[0]  # it learned something
    assert any(k.startswith("dev.") for r in records for k in r)
    # an explicit name is never reused: nothing the user had is overwritten
    again = run_suite(
        ["train", "template-regression", "--name", "first"], tmp_path, [template_site]
    )
    assert again.returncode == 2 and "already exists" in again.stderr
