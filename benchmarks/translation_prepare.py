"""Benchmark: ``suite prepare translation`` memory stays flat as the corpus grows.

Generates ``--pairs`` distinct toy sentence pairs (1x) and ``8 * --pairs`` (8x, the 1x
pairs plus new ones), prepares each in a fresh process and prints peak resident memory
of the preparing process and its encoding workers, pairs/s, and the 8x/1x memory ratio
(goal: within 15%). Memory is bounded by design: a fixed-size reservoir for the
sentencepiece sample (``--spm-sample``, set below the 1x size so both runs fill it), a
fixed-size Bloom filter for duplicates and a bounded window of encoding jobs.

    OMP_NUM_THREADS=1 python benchmarks/translation_prepare.py
    python benchmarks/translation_prepare.py --pairs 50000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

_TEXT = ("the a man woman dog cat runs sleeps eats big small red blue house ball in park with "
         "and child street water green old young sits stands looks at on under two three girl "
         "boy black white bike car road beach snow grass tree city shirt hat jumps plays")
WORDS = _TEXT.split()

_CHILD = """
import json, resource, sys
from pathlib import Path
from torchsuite.plugins.translation.config import TranslationData
from torchsuite.plugins.translation.prepare import prepare_corpus
args = json.loads(sys.argv[1])
cfg = TranslationData(src=args["src"], tgt=args["tgt"], workers=args["workers"],
                      spm_sample=args["spm_sample"], vocab_size=2000,
                      dedup_capacity=args["dedup_capacity"])
report = prepare_corpus(cfg, Path(args["out"]))
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("RESULT " + json.dumps({"pairs_per_s": report["sentences_per_s"],
                              "peak_mb": report["peak_rss_mb"], "workers_peak_mb": kids,
                              "kept": report["corpora"]["main"]["kept"]}))
"""


def _write(folder: Path, n: int) -> tuple[Path, Path]:
    rnd = random.Random(0)  # the same generator: the 8x corpus starts with the 1x pairs
    src, tgt = folder / f"{n}.de", folder / f"{n}.en"
    with open(src, "w", encoding="utf-8") as fs, open(tgt, "w", encoding="utf-8") as ft:
        for i in range(n):
            en = [rnd.choice(WORDS) for _ in range(rnd.randint(4, 20))] + [f"n{i}"]
            fs.write(" ".join(w[::-1] + "en" for w in en) + "\n")
            ft.write(" ".join(en) + "\n")
    return src, tgt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=10000, help="size of the 1x corpus")
    p.add_argument("--factor", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--spm-sample", type=int, default=5000)
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (args.pairs, args.pairs * args.factor):
            src, tgt = _write(root, n)
            spec = {"src": str(src), "tgt": str(tgt), "out": str(root / f"out{n}"),
                    "workers": args.workers, "spm_sample": args.spm_sample,
                    "dedup_capacity": 10 * args.pairs * args.factor}
            proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)],
                                  capture_output=True, text=True, check=True)
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            results[n] = json.loads(line[len("RESULT "):])
    (n1, r1), (n8, r8) = results.items()
    for n, r in results.items():
        print(f"{n:>9} pairs: {r['pairs_per_s']:8.0f} pairs/s, peak RSS {r['peak_mb']:7.1f} MB "
              f"(largest worker {r['workers_peak_mb']:.1f} MB), kept {r['kept']}")
    ratio = r8["peak_mb"] / r1["peak_mb"]
    print(f"peak memory {n8 // n1}x corpus / 1x corpus: {ratio:.3f} (goal <= 1.15)")


if __name__ == "__main__":
    main()
