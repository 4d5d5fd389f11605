"""Benchmark: ShardStream vs WebDataset vs a map-style Dataset over per-record files.

Writes the same records (``{"x": uint8[record_kb KiB] random, "label": int}``) three
ways, then reads each with a DataLoader (same batch size, same worker count, a
shuffled epoch) and prints samples/s, peak RSS (main process + workers) and the
ratios, plus the time to the first batch from a manifest of ~10k shards.

    python benchmarks/stream.py                     # the issue's size: 200k x 10 KiB
    python benchmarks/stream.py --records 20000     # scaled down

Reads come from the page cache for all three (the data were just written), so the
figures compare the software path, not the disk. Needs ``webdataset`` and ``psutil``
(the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, Dataset
from torchsuite.core.data import DatasetWriter, ShardStream, StreamLoader

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


def log(msg: str) -> None:
    print(msg, flush=True)


def records(n: int, nbytes: int, seed: int = 0) -> Iterable[tuple[int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    block = rng.integers(0, 256, size=nbytes * 64, dtype=np.uint8)  # reuse: generation is slow
    for i in range(n):
        off = (i * 997) % (nbytes * 63)
        x = block[off:off + nbytes].copy()
        x[:8] = np.frombuffer(np.int64(i).tobytes(), dtype=np.uint8)  # make each unique
        yield i, x


def progress(it: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
    if tqdm is not None and sys.stderr.isatty():
        return tqdm(it, total=total, desc=desc, leave=False)
    return it


# ----------------------------------------------------------------------------- writers


def write_ours(root: Path, n: int, nbytes: int, shard_bytes: int) -> Path:
    out = root / f"ours-{shard_bytes}"
    with DatasetWriter(out, salt="bench", shard_bytes=shard_bytes, overwrite=True) as w:
        for i, x in progress(records(n, nbytes), n, "write shards"):
            w.add({"x": x, "label": i}, split="train")
    return out


def write_wds(root: Path, n: int, nbytes: int, shard_bytes: int) -> list[str]:
    import webdataset as wds

    out = root / "wds"
    out.mkdir(exist_ok=True)
    pattern = str(out / "shard-%06d.tar")
    with wds.ShardWriter(pattern, maxsize=shard_bytes, maxcount=10**9, verbose=0) as sink:
        for i, x in progress(records(n, nbytes), n, "write tar"):
            sink.write({"__key__": f"{i:09d}", "x.npy": x, "cls": i})
    return sorted(str(p) for p in out.glob("shard-*.tar"))


def write_files(root: Path, n: int, nbytes: int) -> Path:
    out = root / "files"
    out.mkdir(exist_ok=True)
    for i, x in progress(records(n, nbytes), n, "write files"):
        buf = io.BytesIO()
        np.save(buf, x)
        (out / f"{i:09d}.npy").write_bytes(buf.getvalue())
    return out


# ----------------------------------------------------------------------------- readers


class FilesDataset(Dataset):
    """The plain baseline: one .npy file per record, label from the name."""

    def __init__(self, root: Path) -> None:
        self.paths = sorted(str(p) for p in root.iterdir())

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.paths[i]
        return {"x": np.load(p), "label": int(os.path.basename(p)[:-4])}


def wds_loader(urls: list[str], batch_size: int, workers: int) -> DataLoader:
    import webdataset as wds

    ds = (
        wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.split_by_node,
                       workersplitter=wds.split_by_worker, empty_check=False)
        .shuffle(1000)
        .decode()
        .to_tuple("x.npy", "cls")
        .map(lambda t: {"x": t[0], "label": t[1]})
        .batched(batch_size, partial=True)
    )
    return DataLoader(ds, batch_size=None, num_workers=workers)


def ours_loader(path: Path, batch_size: int, workers: int) -> DataLoader:
    return StreamLoader(ShardStream(path, "train", seed=0), batch_size=batch_size,
                        num_workers=workers)


def files_loader(path: Path, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(FilesDataset(path), batch_size=batch_size, shuffle=True,
                      num_workers=workers)


def _pss(p: psutil.Process) -> int:
    try:
        return p.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):  # no PSS on this platform: RSS
        return p.memory_info().rss


class RssSampler:
    """Peak memory (PSS, else RSS) of this process plus its children, sampled in a thread."""

    def __init__(self, every: float = 0.1) -> None:
        self.peak = 0
        self.every = every
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        # PSS: shared pages (torch's libraries in every worker) counted once overall.
        me = psutil.Process()
        total = _pss(me)
        for c in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += _pss(c)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def measure(name: str, make: Callable[[], DataLoader], n: int) -> dict[str, float]:
    seen = 0
    labels = set()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        loader = make()
        first = None
        for batch in loader:
            if first is None:
                first = time.perf_counter() - t0
            lab = batch["label"]
            seen += len(lab)
            labels.update(int(v) for v in lab)
        total = time.perf_counter() - t0
    if seen != n or len(labels) != n:
        log(f"  note: {name} served {seen} samples, {len(labels)} distinct (split has {n})")
    r = {"samples_s": seen / total, "first_batch_s": first or 0.0, "rss_mib": rss.peak / 2**20,
         "seconds": total, "samples": seen}
    log(f"  {name:10s} {r['samples_s']:10.0f} samples/s  first batch {r['first_batch_s']:.2f} s"
        f"  peak PSS {r['rss_mib']:.0f} MiB  ({seen} samples in {total:.1f} s)")
    return r


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-kb", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--shard-mb", type=int, default=64)
    ap.add_argument("--many-shards", type=int, default=10_000,
                    help="shard count of the manifest used for the time-to-first-batch figure")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the written data")
    ap.add_argument("--skip-files", action="store_true", help="skip the per-file baseline")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    n, nbytes = args.records, int(args.record_kb * 1024)
    # At least 4 shards per worker, so WebDataset's shard-per-worker split keeps all busy.
    shard_bytes = min(args.shard_mb << 20, n * nbytes // (4 * max(args.workers, 1)) + 1)
    root = args.dir or Path(tempfile.mkdtemp(prefix="stream-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    log(f"{n} records of {nbytes} bytes, batch {args.batch_size}, {args.workers} workers, "
        f"data in {root}")
    try:
        t = time.perf_counter()
        ours = write_ours(root, n, nbytes, shard_bytes)
        log(f"wrote ours in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        urls = write_wds(root, n, nbytes, shard_bytes)
        log(f"wrote {len(urls)} tar shards in {time.perf_counter() - t:.1f} s")
        files = None
        if not args.skip_files:
            t = time.perf_counter()
            files = write_files(root, n, nbytes)
            log(f"wrote {n} files in {time.perf_counter() - t:.1f} s")

        log("reading one shuffled epoch each:")
        res = {"ours": measure("ShardStream", lambda: ours_loader(ours, args.batch_size,
                                                                  args.workers), n)}
        res["wds"] = measure("WebDataset", lambda: wds_loader(urls, args.batch_size,
                                                             args.workers), n)
        if files is not None:
            res["files"] = measure("files", lambda: files_loader(files, args.batch_size,
                                                                args.workers), n)

        # Time to first batch from a manifest with many small shards.
        per_shard = max(1, n // args.many_shards)
        rec_size = nbytes + 200
        shutil.rmtree(ours, ignore_errors=True)  # make room
        many = write_ours(root, min(n, per_shard * args.many_shards), nbytes,
                          per_shard * rec_size)
        from torchsuite.core.data import read_manifest

        nshards = len(read_manifest(many).splits["train"].shards)
        t0 = time.perf_counter()
        loader = ours_loader(many, args.batch_size, args.workers)
        next(iter(loader))
        ttfb = time.perf_counter() - t0
        log(f"  first batch from a {nshards}-shard manifest: {ttfb:.3f} s "
            f"({args.workers} workers, includes reading the manifest and starting workers)")

        log("ratios (ShardStream / other):")
        log(f"  samples/s vs WebDataset: {res['ours']['samples_s'] / res['wds']['samples_s']:.2f}x")
        if "files" in res:
            log(f"  samples/s vs files:      "
                f"{res['ours']['samples_s'] / res['files']['samples_s']:.2f}x")
        log(f"  peak PSS vs WebDataset:  {res['ours']['rss_mib'] / res['wds']['rss_mib']:.2f}x")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"data kept in {root}")


if __name__ == "__main__":
    main()
