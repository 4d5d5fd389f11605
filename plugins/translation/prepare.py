"""``suite prepare translation``: raw parallel text -> sentencepiece + core shards, streamed.

Two passes over each corpus, each holding a bounded amount in memory:

1. *Check pass* (nothing written): decode every line, check the two files pair up
   (else a :class:`DataError` naming both line counts and the first unpairable line),
   and keep a bounded random reservoir of cleaned sentences for sentencepiece.
2. *Write pass*: clean (with counts), encode in worker processes (a bounded window of
   jobs in flight, results in input order), split by a hash of the pair (or the TSV
   document id) and append to :class:`~torchsuite.core.data.DatasetWriter` shards.

Memory is the reservoir + the duplicate filter + ``workers * 2`` chunks, independent of
corpus size. The output directory appears only after the check pass and the vocabulary
succeed, and is removed again if the write pass fails in a directory prepare created.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torchsuite.core import DataError
from torchsuite.core.data import DatasetWriter, SplitSpec, assign_split

from .cleaning import Cleaner, CleaningRules
from .config import TranslationData
from .corpus import Corpus, check_alignment, read_pairs
from .vocab import Reservoir, Vocab, train_sentencepiece

__all__ = ["LENGTHS_DIR", "LENGTHS_SUFFIX", "REPORT_NAME", "prepare_corpus", "read_lengths"]

REPORT_NAME = "prepare_report.json"
LENGTHS_DIR = "lengths"
LENGTHS_SUFFIX = ".i32"  # raw little-endian int32 (src_len, tgt_len) per record

# --------------------------------------------------------------------------- progress


class _Progress:
    """A tqdm bar on a terminal, else a plain line on stderr every few seconds."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self.n = label, total, 0
        self.t0 = self._last = time.monotonic()
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="pair", file=sys.stderr)

    def update(self, k: int) -> None:
        self.n += k
        if self._bar is not None:
            self._bar.update(k)
            return
        now = time.monotonic()
        if now - self._last >= 5.0:
            self._last = now
            of = f"/{self.total}" if self.total else ""
            rate = self.n / max(now - self.t0, 1e-9)
            print(f"{self.label}: {self.n}{of} pairs ({rate:.0f}/s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------- encoding workers

_WORKER_VOCAB: Vocab | None = None


def _init_worker(vocab_dir: str) -> None:
    global _WORKER_VOCAB
    _WORKER_VOCAB = Vocab.load(Path(vocab_dir))


def _id_dtype(vocab_size: int) -> type[np.integer[Any]]:
    return np.int16 if vocab_size <= np.iinfo(np.int16).max else np.int32


def _encode_chunk(pairs: list[tuple[str, str]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Encode a chunk of pairs with the worker's vocabulary (no bos/eos added)."""
    vocab = _WORKER_VOCAB
    assert vocab is not None, "worker not initialised"
    src = vocab.src.encode([p[0] for p in pairs])
    tgt = vocab.tgt.encode([p[1] for p in pairs])
    ds, dt = _id_dtype(vocab.src_size), _id_dtype(vocab.tgt_size)
    return [(np.asarray(s, dtype=ds), np.asarray(t, dtype=dt))
            for s, t in zip(src, tgt, strict=True)]


def _ordered_map(
    fn: Callable[[Any], Any], jobs: Iterable[tuple[Any, Any]], workers: int, vocab_dir: Path
) -> Iterator[tuple[Any, Any]]:
    """``(meta, fn(payload))`` in input order with at most ``2 * workers`` jobs in flight.

    ``Pool.imap`` would read the whole input ahead of the workers (unbounded memory), so
    jobs are submitted one by one against a fixed window instead.
    """
    if workers == 0:
        _init_worker(str(vocab_dir))
        for meta, payload in jobs:
            yield meta, fn(payload)
        return
    ctx = mp.get_context("spawn")  # no inherited state (threads, open shards) in workers
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(vocab_dir),)) as pool:
        pending: deque[tuple[Any, Any]] = deque()
        for meta, payload in jobs:
            pending.append((meta, pool.apply_async(fn, (payload,))))
            if len(pending) >= 2 * workers:
                m, res = pending.popleft()
                yield m, res.get()
        while pending:
            m, res = pending.popleft()
            yield m, res.get()


# --------------------------------------------------------------------------- the two passes


@dataclass
class _CorpusPlan:
    name: str  # main / dev / target
    corpus: Corpus
    lines: int = 0
    cleaner: Cleaner = field(default_factory=Cleaner)


def _rules(cfg: TranslationData) -> CleaningRules:
    return CleaningRules(cfg.min_words, cfg.max_words, cfg.max_ratio, cfg.dedup,
                         cfg.dedup_capacity)


def _check_and_sample(plans: list[_CorpusPlan], cfg: TranslationData
                      ) -> tuple[Reservoir, Reservoir]:
    """Pass 1: alignment/decoding checks of every corpus, sampling from the main one."""
    res_src, res_tgt = Reservoir(cfg.spm_sample, seed=1), Reservoir(cfg.spm_sample, seed=2)
    no_dedup = CleaningRules(cfg.min_words, cfg.max_words, cfg.max_ratio, dedup=False)
    for plan in plans:
        if plan.name != "main":  # dev/target corpora: decoding and alignment only
            plan.lines = check_alignment(plan.corpus, cfg.errors)
            continue
        sampler = Cleaner(no_dedup)
        bar = _Progress(f"check+sample {plan.corpus.describe()}", None)
        for _no, s, t, _doc in read_pairs(plan.corpus, cfg.errors):  # raises on bad input
            plan.lines += 1
            bar.update(1)
            kept = sampler.check(s, t)
            if kept:
                res_src.add(kept[0])
                res_tgt.add(kept[1])
        bar.close()
    if not res_src.items:
        raise DataError(
            f"no usable pairs in {plans[0].corpus.describe()} after cleaning (limits: "
            f"data.min_words={cfg.min_words}, data.max_words={cfg.max_words}, "
            f"data.max_ratio={cfg.max_ratio}). Check the files or relax those limits."
        )
    return res_src, res_tgt


def _train_vocab(cfg: TranslationData, res_src: Reservoir, res_tgt: Reservoir,
                 where: Path) -> dict[str, Any]:
    common = {"vocab_size": cfg.vocab_size, "model_type": cfg.spm_type,
              "character_coverage": cfg.character_coverage}
    if cfg.joint_vocab:
        train_sentencepiece(res_src.items + res_tgt.items, where / "spm", **common)
    else:
        train_sentencepiece(res_src.items, where / "spm.src", **common)
        train_sentencepiece(res_tgt.items, where / "spm.tgt", **common)
    vocab = Vocab.load(where)
    return {"joint": cfg.joint_vocab, "type": cfg.spm_type, "requested_size": cfg.vocab_size,
            "src_size": vocab.src_size, "tgt_size": vocab.tgt_size,
            "sample_sentences": len(res_src.items)}


def _jobs(plans: list[_CorpusPlan], cfg: TranslationData, spec: SplitSpec
          ) -> Iterator[tuple[list[tuple[str, str, str]], list[tuple[str, str]]]]:
    """Chunks of cleaned pairs: meta = [(split, src, tgt)], payload = [(src, tgt)]."""
    for plan in plans:
        bar = _Progress(f"encode {plan.corpus.describe()}", plan.lines)
        meta: list[tuple[str, str, str]] = []
        for _, s, t, doc in read_pairs(plan.corpus, cfg.errors):
            bar.update(1)
            kept = plan.cleaner.check(s, t)
            if kept is None:
                continue
            s, t = kept
            split = plan.name if plan.name != "main" else assign_split(doc or f"{s}\t{t}", spec)
            meta.append((split, s, t))
            if len(meta) >= cfg.chunk_lines:
                yield meta, [(m[1], m[2]) for m in meta]
                meta = []
        if meta:
            yield meta, [(m[1], m[2]) for m in meta]
        bar.close()


def _main_spec(cfg: TranslationData, has_dev: bool) -> SplitSpec:
    dev = 0.0 if has_dev else cfg.dev_ratio
    ratios = {"train": 1.0 - dev - cfg.test_ratio, "dev": dev, "test": cfg.test_ratio}
    return SplitSpec(salt=cfg.salt, ratios={k: v for k, v in ratios.items() if v > 0})


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare_corpus(cfg: TranslationData, out_dir: Path) -> dict[str, Any]:
    """Prepare ``cfg``'s corpora into ``out_dir``; returns (and writes) the report.

    Raises:
        DataError: Missing files, misaligned or undecodable input (nothing is written),
            or an existing data set in ``out_dir`` without ``data.overwrite``.
    """
    t0 = time.monotonic()
    plans = [_CorpusPlan(name,
                         Corpus.from_paths(s, t, "data" if name == "main" else f"data.{name}"),
                         cleaner=Cleaner(_rules(cfg)))
             for name, (s, t) in cfg.sources().items()]
    if (out_dir / "manifest.json").exists() and not cfg.overwrite:
        raise DataError(
            f"{out_dir} already holds a prepared corpus. Pass --overwrite true "
            "(data.overwrite=true) to replace it, or choose another data.dir."
        )
    res_src, res_tgt = _check_and_sample(plans, cfg)
    existed = out_dir.exists()
    with tempfile.TemporaryDirectory(prefix="suite-spm-") as tmp:
        vocab_info = _train_vocab(cfg, res_src, res_tgt, Path(tmp))
        del res_src, res_tgt
        spec = _main_spec(cfg, has_dev=any(p.name == "dev" for p in plans))
        counts: dict[str, int] = {}
        length_files: dict[str, Any] = {}
        lengths_tmp = Path(tmp) / LENGTHS_DIR
        lengths_tmp.mkdir()
        try:
            writer = DatasetWriter(out_dir, salt=cfg.salt, overwrite=cfg.overwrite,
                                   meta={"task": "translation", "vocab": vocab_info})
            with writer:
                for metas, encoded in _ordered_map(_encode_chunk, _jobs(plans, cfg, spec),
                                                   cfg.workers, Path(tmp)):
                    for (split, s, t), (si, ti) in zip(metas, encoded, strict=True):
                        rec: dict[str, Any] = {"src": si, "tgt": ti}
                        if split != "train":  # references for BLEU; train stays ids only
                            rec["src_text"], rec["tgt_text"] = s, t
                        writer.add(rec, split=split, group=f"{s}\t{t}")
                        if split not in length_files:
                            length_files[split] = open(  # noqa: SIM115 - closed below
                                lengths_tmp / f"{split}{LENGTHS_SUFFIX}", "wb")
                        # (src, tgt) token counts streamed to disk for the batch sampler
                        length_files[split].write(
                            np.asarray([len(si), len(ti)], "<i4").tobytes())
                        counts[split] = counts.get(split, 0) + 1
                for fh in length_files.values():
                    fh.close()
            for stale in out_dir.glob("spm*"):  # a joint model must not shadow new ones
                stale.unlink()
            Vocab.copy_models(Path(tmp), out_dir)
            dest = out_dir / LENGTHS_DIR
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(lengths_tmp, dest)
        except BaseException:
            if not existed and out_dir.exists():
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
    seconds = time.monotonic() - t0
    read = sum(p.cleaner.seen for p in plans)
    report = {
        "out_dir": str(out_dir),
        "corpora": {p.name: {"files": p.corpus.describe(), "lines": p.lines, **p.cleaner.report()}
                    for p in plans},
        "splits": dict(sorted(counts.items())),
        "vocab": vocab_info,
        "seconds": round(seconds, 2),
        "sentences_per_s": round(read / max(seconds, 1e-9), 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    (out_dir / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_report(report)
    return report


def _print_report(report: dict[str, Any]) -> None:
    print(f"prepared {report['out_dir']} in {report['seconds']:.1f} s "
          f"({report['sentences_per_s']:.0f} pairs/s, peak RSS {report['peak_rss_mb']:.0f} MB)")
    for name, c in report["corpora"].items():
        dropped = ", ".join(f"{k} {v}" for k, v in c["dropped"].items()) or "none"
        fixed = ", ".join(f"{k} {v}" for k, v in c["fixed"].items()) or "none"
        print(f"  {name}: {c['files']}: {c['lines']} lines, kept {c['kept']}; dropped: {dropped}; "
              f"fixed: {fixed}")
    v = report["vocab"]
    kind = "joint" if v["joint"] else "separate"
    print(f"  vocab: {kind} {v['type']} {v['src_size']}/{v['tgt_size']} pieces "
          f"(trained on {v['sample_sentences']} sampled pairs)")
    print("  splits: " + ", ".join(f"{k} {n}" for k, n in report["splits"].items()))
    print(f"  report: {Path(report['out_dir']) / REPORT_NAME}")


def read_lengths(data_dir: Path, split: str) -> np.ndarray | None:
    """``[N, 2]`` (src, tgt) token counts of ``split`` written by prepare, or None."""
    path = data_dir / LENGTHS_DIR / f"{split}{LENGTHS_SUFFIX}"
    if not path.is_file():
        return None
    return np.fromfile(path, dtype="<i4").reshape(-1, 2)
