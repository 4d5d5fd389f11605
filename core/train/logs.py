"""Where training numbers go: ``metrics.jsonl``, TensorBoard, and the progress display.

Only the main process creates these; other ranks get :class:`NullLog`-like
objects by passing ``enabled=False``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

__all__ = ["MetricsLog", "Progress", "read_metrics"]


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (+ TensorBoard scalars)."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._fh: TextIO | None = None
        self._tb: Any = None
        if not enabled:
            return
        self._fh = self.path.open("a", buffering=1)  # line-buffered: readable while it runs
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        """Log ``record`` (must hold ``step``); numbers also go to TensorBoard."""
        if self._fh is None:
            return
        self._fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = int(record["step"])
            for key, value in record.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if key != "step" and number:
                    self._tb.add_scalar(key, value, step)

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (a resumed run re-logs them)."""
        if not self.enabled or not self.path.is_file():
            return
        if self._fh is not None:
            self._fh.close()
        kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)
        self._fh = self.path.open("a", buffering=1)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl``; a torn last line (crash mid-write) is skipped."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """A tqdm bar on a terminal, plain periodic lines otherwise, or nothing.

    Shows step, loss, throughput and ETA.
    """

    def __init__(self, mode: str, total: int, start: int, *, enabled: bool,
                 every: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.every = total, every
        self._t0, self._s0 = time.perf_counter(), start
        self.bar: Any = None
        if not enabled or mode == "off":
            self.mode = "off"
            return
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode = mode
        if mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", file=self.stream,
                            dynamic_ncols=True)

    def update(self, step: int, loss: float | None, samples_per_s: float | None) -> None:
        """Called every step by the trainer; draws only every ``every`` steps for lines."""
        if self.mode == "off":
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if loss is not None:
                post = {"loss": f"{loss:.4f}"}
                if samples_per_s:
                    post["samples/s"] = f"{samples_per_s:.0f}"
                self.bar.set_postfix(post, refresh=False)
            return
        if loss is None or (step % self.every and step != self.total):
            return
        elapsed = time.perf_counter() - self._t0
        rate = (step - self._s0) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        tput = f" {samples_per_s:.0f} samples/s" if samples_per_s else ""
        print(f"step {step}/{self.total} loss {loss:.4f} {rate:.1f} steps/s{tput} "
              f"eta {_duration(eta)}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """A message that does not break the bar."""
        if self.mode == "off":
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
