"""Record encoding: raw bytes, or a dict of tensors / arrays / str / numbers / bytes.

Layout of one encoded record (no pickle anywhere, so loading untrusted data
cannot run code)::

    b"\\x00" + payload                                  # a bytes record
    b"\\x01" + u32 header_len + header (JSON, UTF-8) + payload   # a dict record

The JSON header is a list of fields ``[name, kind, ...]``; scalars and strings
live in the header, tensors/arrays/bytes live in the payload as raw
little-endian bytes at ``[offset, offset + nbytes)``::

    ["x", "t", "float32", [3, 4], 0, 48]     # torch.Tensor (dtype, shape, offset, nbytes)
    ["y", "a", "<i8", [5], 48, 40]            # numpy array
    ["b", "b", 88, 3]                          # bytes
    ["s", "s", "hello"]   ["n", "i", 3]   ["f", "f", 0.5]   ["ok", "?", true]   ["z", "0"]
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import torch

__all__ = ["Record", "decode", "encode"]

Record = bytes | dict[str, Any]

_BYTES = 0
_DICT = 1
_U32 = struct.Struct("<I")
_ALIGN = 8

# torch dtypes stored by name; the name is looked up with getattr(torch, name) on read,
# restricted to this table so a crafted header cannot reach arbitrary attributes.
_TORCH_DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float64, torch.float32, torch.float16, torch.bfloat16,
        torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
        torch.complex64, torch.complex128,
    )
}


def encode(record: Record) -> bytes:
    """Encode a record to bytes.

    Args:
        record: ``bytes``/``bytearray``/``memoryview``, or a dict mapping ``str`` to
            ``torch.Tensor``, ``np.ndarray``, ``str``, ``int``, ``float``, ``bool``,
            ``bytes`` or ``None``.

    Raises:
        TypeError: For any other value (the message names the key and type).
    """
    if isinstance(record, bytes | bytearray | memoryview):
        return bytes([_BYTES]) + bytes(record)
    if not isinstance(record, dict):
        raise TypeError(
            f"a record must be bytes or a dict of tensors/arrays/str/numbers, got "
            f"{type(record).__name__}"
        )
    header: list[list[Any]] = []
    chunks: list[bytes | memoryview] = []
    pos = 0
    for key, value in record.items():
        if not isinstance(key, str):
            raise TypeError(f"record keys must be str, got {key!r}")
        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu").contiguous()
            name = str(t.dtype).removeprefix("torch.")
            if name not in _TORCH_DTYPES:
                raise TypeError(f"record[{key!r}]: tensor dtype {t.dtype} is not supported")
            # view as uint8 so every dtype (bfloat16 included) serialises without numpy.
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            header.append([key, "t", name, list(t.shape), pos, len(raw)])
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise TypeError(f"record[{key!r}]: object arrays are not supported")
            a = np.ascontiguousarray(value)
            if a.dtype.byteorder == ">":
                a = a.astype(a.dtype.newbyteorder("<"))
            raw = a.tobytes()
            header.append([key, "a", a.dtype.str, list(a.shape), pos, len(raw)])
        elif isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            header.append([key, "b", pos, len(raw)])
        elif isinstance(value, str):
            header.append([key, "s", value])
            continue
        elif isinstance(value, bool):
            header.append([key, "?", value])
            continue
        elif isinstance(value, int | np.integer):
            header.append([key, "i", int(value)])
            continue
        elif isinstance(value, float | np.floating):
            header.append([key, "f", float(value)])
            continue
        elif value is None:
            header.append([key, "0"])
            continue
        else:
            raise TypeError(
                f"record[{key!r}] has type {type(value).__name__}; supported: torch.Tensor, "
                "np.ndarray, str, int, float, bool, bytes, None"
            )
        chunks.append(raw)
        pos += len(raw)
        pad = -pos % _ALIGN
        if pad:
            chunks.append(b"\0" * pad)
            pos += pad
    hdr = json.dumps(header, separators=(",", ":"), allow_nan=True).encode("utf-8")
    # Pad the header with spaces (valid JSON whitespace) so the payload starts 8-byte
    # aligned: decoded arrays can then alias the read buffer instead of copying.
    hdr += b" " * (-(5 + len(hdr)) % _ALIGN)
    return b"".join([bytes([_DICT]), _U32.pack(len(hdr)), hdr, *chunks])


def decode(buf: bytes | bytearray | memoryview) -> Record:
    """Decode bytes written by :func:`encode`.

    If ``buf`` is a ``bytearray`` (what the shard reader passes), aligned arrays and
    tensors are views into it — writable and without a copy; otherwise they are copied.

    Raises:
        ValueError: If the bytes are not a valid encoded record.
    """
    mv = memoryview(buf)
    if len(mv) == 0:
        raise ValueError("empty record")
    tag = mv[0]
    if tag == _BYTES:
        return bytes(mv[1:])
    if tag != _DICT:
        raise ValueError(f"unknown record tag {tag}")
    if len(mv) < 5:
        raise ValueError("record header truncated")
    (hlen,) = _U32.unpack_from(mv, 1)
    start = 5 + hlen
    if start > len(mv):
        raise ValueError("record header truncated")
    header = json.loads(str(mv[5:start], "utf-8"))
    size = len(mv) - start
    owned = isinstance(buf, bytearray)
    out: dict[str, Any] = {}
    for field in header:
        key, kind = field[0], field[1]
        if kind == "t":
            _, _, dname, shape, off, n = field
            dtype = _TORCH_DTYPES.get(dname)
            if dtype is None:
                raise ValueError(f"field {key!r}: unknown tensor dtype {dname!r}")
            _check_range(key, off, n, size)
            item = dtype.itemsize
            if n == 0:
                out[key] = torch.empty(shape, dtype=dtype)
            elif owned and (start + off) % _ALIGN == 0:
                out[key] = torch.frombuffer(buf, dtype=dtype, count=n // item,
                                            offset=start + off).reshape(shape)
            else:
                out[key] = torch.frombuffer(bytearray(mv[start + off:start + off + n]),
                                            dtype=dtype).reshape(shape)
        elif kind == "a":
            _, _, dstr, shape, off, n = field
            dt = np.dtype(dstr)
            if dt.hasobject:
                raise ValueError(f"field {key!r}: object dtype refused")
            _check_range(key, off, n, size)
            arr = np.frombuffer(buf if owned else mv, dtype=dt, count=n // max(dt.itemsize, 1),
                                offset=start + off).reshape(shape)
            out[key] = arr if owned else arr.copy()
        elif kind == "b":
            _, _, off, n = field
            _check_range(key, off, n, size)
            out[key] = bytes(mv[start + off:start + off + n])
        elif kind in ("s", "i", "f", "?"):
            out[key] = field[2]
        elif kind == "0":
            out[key] = None
        else:
            raise ValueError(f"field {key!r}: unknown kind {kind!r}")
    return out


def _check_range(key: str, off: int, n: int, size: int) -> None:
    if off < 0 or n < 0 or off + n > size:
        raise ValueError(f"field {key!r}: payload range [{off}, {off + n}) outside record")
