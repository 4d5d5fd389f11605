"""Mixed precision: which dtype to autocast to, and whether a GradScaler is needed.

``auto`` means bf16 autocast on a CUDA device that supports it (fp16 otherwise)
and plain fp32 on CPU, where autocast rarely pays off. ``bf16`` on CPU uses CPU
autocast; ``fp16`` needs CUDA and a GradScaler (bf16 has fp32's range and needs
none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..errors import ConfigError

__all__ = ["Precision"]


@dataclass(frozen=True)
class Precision:
    """The resolved precision of a run."""

    device_type: str
    dtype: torch.dtype | None  # None: fp32, no autocast

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> Precision:
        """Turn ``train.precision`` into a concrete choice for ``device``."""
        kind = device.type
        if name == "auto":
            if kind == "cuda":
                name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                name = "fp32"
        if name == "fp32":
            return cls(kind, None)
        if name == "fp16" and kind != "cuda":
            raise ConfigError(
                f"train.precision=fp16 needs a CUDA device (this run uses '{device}'); "
                "use train.precision=bf16 or fp32 on CPU."
            )
        return cls(kind, torch.bfloat16 if name == "bf16" else torch.float16)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast region for forward passes (a no-op for fp32)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for fp16 (bf16 and fp32 do not underflow)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype is torch.float16)
