"""Training callbacks: hook order, stop requests, plugin-registered names, the ``ema`` callback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from suite_testing import install_fake_distribution, run_suite
from torch import nn
from torchsuite.core.errors import ConfigError, PluginError
from torchsuite.core.registry import get_registry, reset_registry
from torchsuite.core.train import (
    Callback,
    EMACallback,
    TrainState,
    ema_weights,
    fit,
    latest_checkpoint,
    load_checkpoint,
)
from torchsuite.core.train.callbacks import resolve_callbacks
from torchsuite.core.train.logs import read_metrics


class Recorder(Callback):
    """Writes down every hook call (name, step)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.dev: list[dict[str, float]] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.calls.append(("fit_start", state.step))

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        assert set(metrics) == {"train.loss", "grad_norm", "lr"}
        self.calls.append(("step", step))

    def on_evaluate_start(self, step: int) -> None:
        self.calls.append(("eval_start", step))

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        self.dev.append(metrics)
        self.calls.append(("eval", step))

    def on_checkpoint(self, path: Path) -> None:
        self.calls.append(("checkpoint", path.name))

    def on_fit_end(self, result: Any) -> None:
        self.calls.append(("fit_end", result.steps))


class StopAt(Callback):
    """Requests a stop from ``on_step_end`` or ``on_evaluate`` at a given step."""

    def __init__(self, step: int, where: str) -> None:
        self.step, self.where = step, where
        self.state: TrainState | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self.state = state

    def _maybe(self, step: int, where: str) -> None:
        if step == self.step and where == self.where and self.state is not None:
            self.state.request_stop(f"asked at step {step}")

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        self._maybe(step, "step")

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        self._maybe(step, "evaluate")


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["train.loss"] for r in read_metrics(run / "metrics.jsonl")
            if "train.loss" in r}


def test_hooks_are_called_in_order(make_task: Any, tmp_path: Path) -> None:
    rec = Recorder()
    result = fit(make_task("train.max_steps=6"), tmp_path / "run", callbacks=[rec])
    assert result.steps == 6 and not result.stopped_early and result.stop_reason == ""
    # eval_every=4: evaluations (and checkpoints) at 4 and at the last step
    assert rec.calls == [
        ("fit_start", 0),
        ("step", 1), ("step", 2), ("step", 3),
        ("step", 4), ("eval_start", 4), ("eval", 4), ("checkpoint", "step-4.pt"),
        ("step", 5),
        ("step", 6), ("eval_start", 6), ("eval", 6), ("checkpoint", "step-6.pt"),
        ("fit_end", 6),
    ]
    assert rec.dev[-1] == result.dev_metrics and "dev.loss" in rec.dev[-1]

    # a resumed run starts the callbacks at the checkpoint's step
    again = Recorder()
    fit(make_task("train.max_steps=8"), tmp_path / "run", resume_from=tmp_path / "run",
        callbacks=[again])
    assert again.calls[:2] == [("fit_start", 6), ("step", 7)]


@pytest.mark.parametrize(("where", "at"), [("step", 3), ("evaluate", 4)])
def test_a_stop_request_saves_and_stops(make_task: Any, tmp_path: Path, where: str,
                                        at: int) -> None:
    run = tmp_path / "run"
    rec = Recorder()
    result = fit(make_task("train.max_steps=20"), run, callbacks=[StopAt(at, where), rec])
    assert result.steps == at and result.stopped_early and not result.interrupted
    assert result.stop_reason == f"asked at step {at}"
    assert latest_checkpoint(run).name == f"step-{at}.pt"  # resumable from where it stopped
    assert rec.calls[-1] == ("fit_end", at)
    last = read_metrics(run / "metrics.jsonl")[-1]
    assert last == {"step": at, "event": "stopped", "reason": f"asked at step {at}"}


def test_unknown_callback_name_names_the_closest(make_task: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'emma'.*Did you mean 'ema'\?"):
        fit(make_task('train.callbacks=["emma"]'), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training
    with pytest.raises(ConfigError, match="Registered callbacks: none"):
        resolve_callbacks(["ema"], {})
    with pytest.raises(PluginError, match=r"'bad'.*not a torchsuite\.core\.train\.Callback"):
        resolve_callbacks(["bad"], {"bad": dict})


def test_the_core_registers_ema_through_the_hook() -> None:
    assert get_registry().callbacks["ema"] is EMACallback


PLUGIN = '''
from torchsuite.core import hookimpl
from torchsuite.core.train import Callback


class StepCounter(Callback):
    """Counts optimizer steps across resumes; rank 0 writes the count at the end."""

    def __init__(self):
        self.steps = 0
        self.state = None

    def on_fit_start(self, state):
        self.state = state

    def on_step_end(self, step, metrics):
        self.steps += 1

    def on_fit_end(self, result):
        if self.state.is_main:
            (self.state.run_dir / "counted.txt").write_text(str(self.steps))

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = int(state["steps"])


class StopOnRankOne(Callback):
    """Requests a stop at step 5 on rank 1 only: every rank must still stop together."""

    def on_fit_start(self, state):
        self.state = state

    def on_step_end(self, step, metrics):
        if step == 5 and self.state.rank == 1:
            self.state.request_stop("rank 1 asked")


@hookimpl
def register_callbacks(register):
    register("step-counter", StepCounter)
    register("stop-on-rank-one", StopOnRankOne)
'''


@pytest.fixture
def counter_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed third-party plugin offering the callback ``step-counter``."""
    site = install_fake_distribution(tmp_path / "site", "counter-plugin",
                                     {"counter_plugin.py": PLUGIN}, {"counter": "counter_plugin"})
    monkeypatch.syspath_prepend(str(site))
    reset_registry()
    yield site
    reset_registry()  # later tests must not see the fake plugin


def test_a_plugin_callback_is_enabled_by_name(make_task: Any, tmp_path: Path,
                                              counter_plugin: Path) -> None:
    assert "step-counter" in get_registry().callbacks
    run = tmp_path / "run"
    fit(make_task("train.max_steps=6", "data.stop_at=4", 'train.callbacks=["step-counter"]'),
        run)
    assert (run / "counted.txt").read_text() == "4"
    assert load_checkpoint(latest_checkpoint(run))["callbacks"] == {"step-counter": {"steps": 4}}
    fit(make_task("train.max_steps=6", 'train.callbacks=["step-counter"]'), run,
        resume_from=run)
    assert (run / "counted.txt").read_text() == "6"  # its state came back from the checkpoint


def test_suite_train_enables_a_plugin_callback_by_name(
    tiny_site: Path, tmp_path: Path, counter_plugin: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torchsuite.core import cli

    monkeypatch.syspath_prepend(str(tiny_site))  # the CLI finds tiny-train as a plugin
    reset_registry()
    common = ["train", "tiny-train", "train.max_steps=3", "train.progress=off",
              "train.tensorboard=false", "--run-dir"]
    assert cli.main([*common, str(tmp_path / "run"), 'train.callbacks=["step-counter"]']) == 0
    assert (tmp_path / "run" / "counted.txt").read_text() == "3"
    capsys.readouterr()
    assert cli.main([*common, str(tmp_path / "bad"), 'train.callbacks=["step-countr"]']) == 2
    assert "Did you mean 'step-counter'?" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "bad").exists()  # refused before the run directory was made


def test_ema_update_rule() -> None:
    model = nn.Linear(2, 1)
    torch.nn.init.zeros_(model.weight)
    cb = EMACallback(decay=0.5)
    cb.on_fit_start(TrainState(model=model, config=None, run_dir=Path("."), step=0,
                               max_steps=3))
    with torch.no_grad():
        model.weight.fill_(1.0)
    cb.on_step_end(1, {})  # warm-up: d = min(0.5, 2/11) = 2/11
    assert torch.allclose(cb.shadow["weight"], torch.full((1, 2), 9 / 11))
    cb.on_step_end(2, {})  # d = min(0.5, 3/12) = 0.25
    assert torch.allclose(cb.shadow["weight"], torch.full((1, 2), 0.25 * 9 / 11 + 0.75))
    # evaluation swaps the average in and restores the raw weights afterwards, exactly
    cb.on_evaluate_start(2)
    assert torch.equal(model.weight, cb.shadow["weight"])
    cb.on_evaluate(2, {})
    assert torch.equal(model.weight, torch.ones(1, 2))


def test_ema_evaluates_the_average_and_resumes_exactly(make_task: Any, tmp_path: Path) -> None:
    common = ["train.max_steps=10", "train.grad_accum=2", "train.ema_decay=0.9"]
    ema = ['train.callbacks=["ema"]']
    plain = fit(make_task(*common), tmp_path / "plain")
    full = fit(make_task(*common, *ema), tmp_path / "full")
    # training itself is untouched; only the evaluated weights differ
    assert _losses(tmp_path / "plain") == _losses(tmp_path / "full")
    assert full.dev_metrics["dev.loss"] != plain.dev_metrics["dev.loss"]

    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "full"))
    shadow = ema_weights(ckpt)
    assert shadow is not None and ema_weights(load_checkpoint(
        latest_checkpoint(tmp_path / "plain"))) is None
    assert set(shadow) == set(ckpt["model"])
    assert not torch.equal(shadow["0.weight"], ckpt["model"]["0.weight"])
    # the logged dev loss is the one of the averaged weights
    task = make_task(*common)
    model = task.build_model()
    model.load_state_dict(shadow)
    model.eval()
    total = weight = 0.0
    with torch.no_grad():
        for batch in task.dataloader("dev", train=False):
            out = task.validation_step(model, batch)
            total += float(out.loss) * out.weight
            weight += out.weight
    assert full.dev_metrics["dev.loss"] == pytest.approx(total / weight, rel=1e-5)

    # interrupted at step 3 (training_step call 6 of grad_accum=2), then resumed
    part = fit(make_task(*common, *ema, "data.stop_at=6"), tmp_path / "part")
    assert part.interrupted and part.steps == 3
    resumed = fit(make_task(*common, *ema), tmp_path / "part", resume_from=tmp_path / "part")
    assert resumed.steps == 10 and resumed.dev_metrics == full.dev_metrics
    again = load_checkpoint(latest_checkpoint(tmp_path / "part"))
    assert again["callbacks"]["ema"]["updates"] == ckpt["callbacks"]["ema"]["updates"] == 10
    assert all(torch.equal(shadow[k], ema_weights(again)[k]) for k in shadow)  # type: ignore[index]
    assert _losses(tmp_path / "part") == _losses(tmp_path / "full")


def test_ema_state_is_json_free_and_loads_weights_only(make_task: Any, tmp_path: Path) -> None:
    fit(make_task("train.max_steps=4", 'train.callbacks=["ema"]'), tmp_path / "run")
    path = latest_checkpoint(tmp_path / "run")
    raw = torch.load(path, weights_only=True)  # no pickled objects in the callback state
    assert raw["callbacks"]["ema"]["decay"] == pytest.approx(0.999)
    config = (tmp_path / "run" / "config.toml").read_text()
    assert 'callbacks = ["ema"]' in config.replace("'", '"')
    json.dumps({k: v for k, v in raw["callbacks"]["ema"].items() if k != "shadow"})


def test_suite_eval_ema_scores_the_averaged_weights(
    tiny_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torchsuite.core import cli

    monkeypatch.syspath_prepend(str(tiny_site))
    reset_registry()
    try:
        run = tmp_path / "run"
        args = ["train.max_steps=8", "train.eval_every=4", "train.batch_size=8",
                "train.progress=off", "train.tensorboard=false", "train.ema_decay=0.9"]
        assert cli.main(["train", "tiny-train", *args, 'train.callbacks=["ema"]',
                         "--run-dir", str(run)]) == 0
        assert cli.main(["eval", "tiny-train", "--from", str(run), "--ema"]) == 0
        assert cli.main(["eval", "tiny-train", "--from", str(run)]) == 0
        ema = json.loads((run / "eval-dev-ema.json").read_text())
        raw = json.loads((run / "eval-dev.json").read_text())
        assert ema["weights"] == "ema" and raw["weights"] == "model"
        assert ema["loss"] != raw["loss"]
        # the trainer's dev evaluations used the averaged weights too (best.pt is step 8 or 4)
        logged = {r["step"]: r["dev.loss"] for r in read_metrics(run / "metrics.jsonl")
                  if "dev.loss" in r}
        assert ema["loss"] == pytest.approx(min(logged.values()), rel=1e-5)

        plain = tmp_path / "plain"
        assert cli.main(["train", "tiny-train", *args, "--run-dir", str(plain)]) == 0
        capsys.readouterr()
        assert cli.main(["eval", "tiny-train", "--from", str(plain), "--ema"]) == 2
        assert "trained without the 'ema' callback" in " ".join(capsys.readouterr().err.split())
    finally:
        reset_registry()


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_average_alike_and_stop_together(tiny_site: Path, tmp_path: Path,
                                                      make_task: Any) -> None:
    site = install_fake_distribution(tmp_path / "site", "counter-plugin",
                                     {"counter_plugin.py": PLUGIN}, {"counter": "counter_plugin"})
    # no dropout or noise (they draw per-rank random numbers), as in test_distributed.py
    common = ["train.max_steps=12", "train.eval_every=6", "train.log_every=1", "optim.lr=0.01",
              "optim.warmup_steps=2", "train.progress=lines", "train.tensorboard=false",
              "model.dropout=0", "data.noise=0", "train.ema_decay=0.9"]
    run = tmp_path / "ddp"
    r = run_suite(["train", "tiny-train", *common, "train.batch_size=4",
                   'train.callbacks=["ema", "stop-on-rank-one"]', "--nproc", "2",
                   "--run-dir", str(run)],
                  cwd=tmp_path, pythonpath=[tiny_site, site], env={"OMP_NUM_THREADS": "1"},
                  timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    records = read_metrics(run / "metrics.jsonl")
    assert max(x["step"] for x in records) == 5  # rank 0 stopped on rank 1's request
    assert records[-1]["event"] == "stopped"
    saved = load_checkpoint(latest_checkpoint(run))
    assert saved["step"] == 5

    single = tmp_path / "single"
    fit(make_task(*common, "train.batch_size=8", 'train.callbacks=["ema"]'), single,
        callbacks=[StopAt(5, "step")])
    want = ema_weights(load_checkpoint(latest_checkpoint(single)))
    got = ema_weights(saved)
    assert want is not None and got is not None
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6)

    # fsdp shards the weights, which an average of whole tensors cannot follow: refused
    r = run_suite(["train", "tiny-train", *common, "train.batch_size=4", "train.strategy=fsdp",
                   'train.callbacks=["ema"]', "--nproc", "2", "--run-dir", str(tmp_path / "f")],
                  cwd=tmp_path, pythonpath=[tiny_site, site], env={"OMP_NUM_THREADS": "1"},
                  timeout=600)
    assert r.returncode != 0 and "train.strategy=fsdp" in " ".join((r.stdout + r.stderr).split())
