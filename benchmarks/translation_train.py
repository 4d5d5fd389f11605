"""Benchmark: training tokens/s of the translation task through the suite (core ``fit``)
vs. a bare PyTorch loop over the same model, batches, loss and optimizer.

The goal (issue #9): the suite reaches >= 0.95x the bare loop's target tokens/s. A
generated toy corpus is prepared once (``prepare_corpus``); both sides then train
``--steps`` steps from the same initial weights on the same token-budget batches.
Runs alternate (bare, suite, bare, suite, ...) and the best of ``--repeats`` counts, so
other load on the machine hurts both alike.

    OMP_NUM_THREADS=2 python benchmarks/translation_train.py
    python benchmarks/translation_train.py --steps 40 --repeats 3 --d-model 256
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch
from torchsuite.core import resolve_config
from torchsuite.core.train import fit
from torchsuite.core.train.optim import build_optimizer, build_scheduler
from torchsuite.plugins.translation.prepare import prepare_corpus
from torchsuite.plugins.translation.task import TranslationTask

_TEXT = ("the a man woman dog cat runs sleeps eats big small red blue house ball in park with "
         "and child street water green old young sits stands looks at on under two three")
WORDS = _TEXT.split()


def _corpus(folder: Path, n: int) -> Path:
    rnd = random.Random(0)
    lines = []
    for _ in range(n):
        en = [rnd.choice(WORDS) for _ in range(rnd.randint(5, 25))]
        de = [w[::-1] + "en" for w in en]
        lines.append(" ".join(de) + "\t" + " ".join(en))
    path = folder / "corpus.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _task(data: Path, args: argparse.Namespace, steps: int) -> TranslationTask:
    cfg = resolve_config(TranslationTask.Config, overrides=[
        f"data.dir={data}", f"model.d_model={args.d_model}", f"model.ffn={4 * args.d_model}",
        f"train.max_steps={steps}", "train.eval_every=0", "train.progress=off",
        "train.tensorboard=false", "train.checkpoints=false", f"data.max_tokens={args.tokens}",
        "train.log_every=1000000",
    ])
    return TranslationTask(cfg)


def _bare(task: TranslationTask, steps: int) -> tuple[float, int]:
    """The same work as fit() without the Trainer: build, batches, step loop."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = task.build_model()
    opt = build_optimizer(model, task.cfg.optim)
    sched = build_scheduler(opt, task.cfg.optim, steps)
    loader = task.dataloader("train", train=True)
    tokens, step, epoch = 0, 0, 0
    model.train()
    while step < steps:
        loader.batch_sampler.set_epoch(epoch)  # the order the Trainer uses per epoch
        epoch += 1
        for batch in loader:
            out = task.training_step(model, batch)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            tokens += int(out.weight)
            step += 1
            if step == steps:
                break
    return time.perf_counter() - t0, tokens


def _suite(task: TranslationTask, steps: int, run: Path) -> tuple[float, int]:
    tokens = 0
    step_fn = task.training_step

    def counting(model: torch.nn.Module, batch: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
        nonlocal tokens
        out = step_fn(model, batch)
        tokens += int(out.weight)
        return out

    task.training_step = counting  # type: ignore[method-assign]
    t0 = time.perf_counter()
    fit(task, run)
    return time.perf_counter() - t0, tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--tokens", type=int, default=3000, help="data.max_tokens")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        cfg = _task(data, args, 1).cfg.data
        cfg.src, cfg.workers, cfg.vocab_size = str(_corpus(root, args.pairs)), 0, 2000
        cfg.dev_ratio = cfg.test_ratio = 0.0
        prepare_corpus(cfg, data)
        bare, suite = [], []
        for r in range(args.repeats):
            bare.append(_bare(_task(data, args, args.steps), args.steps))
            suite.append(_suite(_task(data, args, args.steps), args.steps, root / f"run{r}"))
    b = max(tok / sec for sec, tok in bare)
    s = max(tok / sec for sec, tok in suite)
    assert bare[0][1] == suite[0][1], "both sides must see the same batches"
    print(f"{args.steps} steps, d_model {args.d_model}, {bare[0][1]} target tokens per run, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"  bare PyTorch loop: {b:9.1f} tokens/s")
    print(f"  suite (core fit):  {s:9.1f} tokens/s")
    print(f"  ratio suite/bare: {s / b:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
