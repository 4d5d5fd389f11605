"""Benchmark: `suite tune` with a median pruner vs without pruning (compute to the same search).

Runs the same search twice on the plugin template's ``template-regression`` task:
the **same** trials (a seeded random sampler proposes the same learning rates and
widths whatever the pruner decides, so the two arms are directly comparable), once
with the median pruner (``--pruner median``) and once without (``--pruner none``).
Prints, for each arm, the optimizer steps actually trained (read back from every
trial's ``metrics.jsonl``), the wall time, the best dev loss and how many trials
were pruned, then the ratios: the compute pruning saves and what it costs in best
loss. Wall time includes each trial's fixed costs (storage, run directory,
reports), which pruning does not remove; the steps ratio is the compute saved.

    python benchmarks/tune_pruning.py
    python benchmarks/tune_pruning.py --trials 30 --steps 400 --pruner successive-halving
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torchsuite.core.train.logs import read_metrics
from torchsuite.core.tune import TuneConfig, Tuner

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(msg, flush=True)


def template_task() -> Any:
    """The template task class, importable straight from examples/ (no install needed)."""
    sys.path.insert(0, str(REPO / "examples" / "plugin-template"))
    return importlib.import_module("suite_template.task").TemplateRegression


def run_arm(task: Any, pruner: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    settings = TuneConfig(
        trials=args.trials, pruner=pruner, sampler="random", seed=args.seed, study=pruner,
        params={"optim.lr": "loguniform:1e-5:3e-1", "model.hidden": "choice:8,32,64"},
    )
    overrides = [f"train.max_steps={args.steps}", f"train.eval_every={args.steps // 10}",
                 "train.log_every=100000", "train.progress=off", "train.checkpoints=false",
                 "train.tensorboard=false", "optim.warmup_steps=0", "data.train_size=1024"]
    tuner = Tuner(task, settings, overrides=overrides, study_dir=root / pruner,
                  echo=lambda _: None)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the trainer's per-trial lines
        result = tuner.run()
    seconds = time.perf_counter() - start
    trials = result.study.get_trials()
    steps = 0
    for t in trials:
        records = read_metrics(Path(t.user_attrs["run_dir"]) / "metrics.jsonl")
        steps += max((int(r["step"]) for r in records), default=0)
    return {"steps": steps, "seconds": seconds, "best": result.best_value,
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "params": [t.params for t in trials]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--steps", type=int, default=300, help="train.max_steps of each trial")
    p.add_argument("--pruner", default="median", choices=("median", "successive-halving",
                                                          "hyperband"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    task = template_task()
    # one-time lazy imports (torch.optim pulls in dynamo, the report matplotlib) would
    # otherwise be charged to whichever arm runs first
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    import matplotlib.pyplot  # noqa: F401
    with tempfile.TemporaryDirectory() as tmp:
        pruned = run_arm(task, args.pruner, args, Path(tmp))
        full = run_arm(task, "none", args, Path(tmp))
    assert pruned["params"] == full["params"], "the arms must search the same trials"
    log(f"{args.trials} trials x {args.steps} steps, template-regression, same random trials")
    log(f"{'arm':<30}{'steps trained':>14}{'seconds':>9}{'best dev.loss':>15}{'pruned':>8}")
    for name, r in ((f"pruner={args.pruner}", pruned), ("pruner=none", full)):
        log(f"{name:<30}{r['steps']:>14}{r['seconds']:>9.1f}{r['best']:>15.5g}{r['pruned']:>8}")
    log(f"steps ratio (none / {args.pruner}): {full['steps'] / pruned['steps']:.2f}x; "
        f"time ratio: {full['seconds'] / pruned['seconds']:.2f}x; best-loss ratio "
        f"({args.pruner} / none): {pruned['best'] / full['best']:.3f}")


if __name__ == "__main__":
    main()
