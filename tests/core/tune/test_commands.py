"""``suite tune`` through the CLI (in this process): flags, a [tune] table, bad input."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from torchsuite.core.config import load_toml

pytest.importorskip("optuna")

LR = "optim.lr=loguniform:1e-4:1e-1"


def test_flags_search_and_the_best_config_trains(
    suite: Any, fast: list[str], workdir: Path
) -> None:
    argv = ["tune", "template-regression", *fast, "--trials", "2", "--param", LR,
            "--param", "model.hidden=choice:8,16", "--metric", "dev.loss", "--direction", "min",
            "--seed", "0"]
    code, out, err = suite(*argv)
    assert code == 0, err
    study = workdir / "runs" / "template-regression" / "tune"
    assert (study / "study.db").is_file()  # SQLite in the study directory by default
    header = next(line for line in out.splitlines() if "state" in line)
    assert header.split() == ["trial", "state", "dev.loss", "optim.lr", "model.hidden"]
    best_toml = study / "best.toml"
    assert f"suite train template-regression --config {best_toml}" in out
    summary = json.loads((study / "summary.json").read_text())
    best = summary["best"]["params"]
    assert best["model.hidden"] in (8, 16)

    # the same command again: the study is complete, nothing is trained twice
    code, out, err = suite(*argv)
    assert code == 0 and "already has 2 finished trials" in out
    assert sorted(p.name for p in study.glob("trial-*")) == ["trial-000", "trial-001"]

    code, out, err = suite("train", "template-regression", "--config", str(best_toml),
                           "--run-dir", "trained")
    assert code == 0, err
    trained = load_toml(workdir / "trained" / "config.toml")
    assert trained["optim"]["lr"] == best["optim.lr"]
    assert trained["model"]["hidden"] == best["model.hidden"]


def test_a_tune_table_in_the_config_file(suite: Any, fast: list[str], workdir: Path) -> None:
    (workdir / "search.toml").write_text(
        '[train]\nmax_steps = 30\n'
        '[tune]\ntrials = 5\nstudy = "fromfile"\nmetric = "dev.mse"\n'
        'pruner = "successive-halving"\nsampler = "random"\nseed = 3\n'
        '[tune.params]\n"optim.lr" = "loguniform:1e-3:1e-1"\nmodel.hidden = [4, 8]\n'
    )
    overrides = [a for a in fast if not a.startswith("train.max_steps")]
    # (bare KEY=VALUE words go before the flags: argparse takes positionals once)
    code, _, err = suite("tune", "template-regression", *overrides, "--config", "search.toml",
                         "--trials", "2")  # the flag wins over the table
    assert code == 0, err
    study = workdir / "runs" / "template-regression" / "fromfile"
    summary = json.loads((study / "summary.json").read_text())
    assert summary["metric"] == "dev.mse" and sum(summary["trials"].values()) == 2
    for run in study.glob("trial-*"):
        cfg = load_toml(run / "config.toml")
        assert cfg["train"]["max_steps"] == 30 and cfg["model"]["hidden"] in (4, 8)
        assert 1e-3 <= cfg["optim"]["lr"] <= 1e-1
    assert "tune" not in load_toml(study / "best.toml")  # a plain task config


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--param", "optim.lr=logunifrom:1e-4:1e-2"], "Did you mean 'loguniform'"),
        (["--param", "optim.lrr=loguniform:1e-4:1e-2"], "Did you mean 'optim.lr'"),
        (["--param", "model.hidden=int:0:4"], "value 0 is refused"),
        (["--param", LR, "--metric", "loss"], "must name a dev metric"),
        (["--param", LR, "--storage", "study.db"], "not a database URL"),
        (["--param", LR, "--set", "tune.trials=3"], "set tune settings with flags"),
        ([], "nothing to tune"),
        (["--param", LR, "--metric", "dev.bleu"], "did not report 'dev.bleu'"),
    ],
)
def test_bad_input_is_a_one_paragraph_error(
    suite: Any, fast: list[str], args: list[str], needle: str
) -> None:
    code, _, err = suite("tune", "template-regression", *fast, "--trials", "1", *args)
    assert code == 2
    assert err.startswith("error: ") and needle in " ".join(err.split())
    assert "Traceback" not in err


def test_without_optuna_the_verb_still_exists_and_names_the_extra(
    suite: Any, fast: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchsuite.core

    monkeypatch.setitem(sys.modules, "optuna", None)  # what `import optuna` sees uninstalled
    for name in [m for m in sys.modules if m.startswith("torchsuite.core.tune")]:
        monkeypatch.delitem(sys.modules, name)  # restored, with the real modules, afterwards
    monkeypatch.setattr(torchsuite.core, "tune", None, raising=False)
    importlib.import_module("torchsuite.core.tune.commands")  # registers without Optuna
    code, _, err = suite("tune", "template-regression", *fast, "--param", LR)
    assert code == 2 and "pip install 'torchsuite[tune]'" in " ".join(err.split())
    code, out, _ = suite("tune", "--help")
    assert code == 0 and "loguniform:LO:HI" in out
