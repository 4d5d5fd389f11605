"""Shard writer/reader: round trip, random access, atomicity, overhead and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torchsuite.core.data import DatasetWriter, ShardedDataset, read_manifest
from torchsuite.core.errors import DataError


def test_round_trip_all_value_types(tmp_path: Path) -> None:
    rec = {
        "f32": torch.randn(3, 4),
        "bf16": torch.randn(5).to(torch.bfloat16),
        "bool": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
        "arr": np.arange(6, dtype=">i4").reshape(2, 3),  # big-endian input
        "s": "héllo",
        "i": 7,
        "f": 0.25,
        "ok": True,
        "none": None,
        "raw": b"\x00\x01",
    }
    with DatasetWriter(tmp_path / "d", salt="s") as w:
        w.add(rec, "train")
        w.add(b"plain bytes", "train")
    ds = ShardedDataset(tmp_path / "d", "train")
    got = ds[0]
    for k in ("f32", "bf16", "bool", "empty"):
        assert got[k].dtype == rec[k].dtype and torch.equal(got[k], rec[k])
    np.testing.assert_array_equal(got["arr"], rec["arr"])
    assert {k: got[k] for k in ("s", "i", "f", "ok", "none", "raw")} == {
        k: rec[k] for k in ("s", "i", "f", "ok", "none", "raw")}
    got["f32"].add_(1)  # decoded tensors own writable memory
    assert ds[1] == b"plain bytes"


def test_random_access_across_shards(tmp_path: Path, make_ids) -> None:
    path = make_ids(tmp_path / "d", 500, shard_bytes=2048)
    m = read_manifest(path)
    assert len(m.splits["train"].shards) > 10
    ds = ShardedDataset(path, "train")
    for i in [0, 1, 17, 250, 499, -1]:
        assert ds[i]["id"] == (i % 500)
    with pytest.raises(IndexError):
        ds[500]
    assert [r["id"] for r in ds] == list(range(500))


def test_manifest_contents(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "d", salt="pepper", meta={"vocab": 12}) as w:
        for i in range(30):
            w.add(b"r%d" % i, "train" if i % 3 else "dev")
    raw = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert raw["format_version"] == 1 and raw["salt"] == "pepper" and raw["meta"] == {"vocab": 12}
    assert raw["splits"]["train"]["records"] == 20 and raw["splits"]["dev"]["records"] == 10
    shard = raw["splits"]["train"]["shards"][0]
    assert len(shard["blake2b"]) == 64 and len(shard["index_blake2b"]) == 64


def test_storage_overhead_under_two_percent_at_10kb(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    payload = 0
    with DatasetWriter(tmp_path / "d", salt="s", shard_bytes=1 << 20) as w:
        for i in range(300):
            data = rng.integers(0, 255, 10 * 1024, dtype=np.uint8)
            w.add({"x": data, "label": i}, "train", group=str(i))
            payload += data.nbytes
    on_disk = sum(f.stat().st_size for f in (tmp_path / "d").iterdir())
    assert (on_disk - payload) / payload <= 0.02


def test_writer_refuses_existing_and_overwrites_on_request(tmp_path: Path, make_ids) -> None:
    make_ids(tmp_path / "d", 10)
    with pytest.raises(DataError, match="overwrite=True"):
        DatasetWriter(tmp_path / "d")
    with DatasetWriter(tmp_path / "d", overwrite=True, shard_bytes=1 << 20) as w:
        w.add(b"new", "train")
    assert len(ShardedDataset(tmp_path / "d", "train")) == 1
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == ["manifest.json", "train-00000.idx", "train-00000.rec"]


def test_crash_mid_write_never_looks_complete(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), DatasetWriter(tmp_path / "d") as w:
        w.add(b"x", "train")
        raise RuntimeError("crash")
    assert not (tmp_path / "d" / "manifest.json").exists()
    # A hard crash (no cleanup) leaves only the temp folder: readers say so.
    w = DatasetWriter(tmp_path / "e")
    w.add(b"x", "train")
    w._finish("train")
    with pytest.raises(DataError, match="interrupted"):
        ShardedDataset(tmp_path / "e", "train")


def test_missing_manifest_names_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"No manifest at .*manifest\.json"):
        ShardedDataset(tmp_path, "train")


def test_wrong_format_version(ids_dataset: Path) -> None:
    mf = ids_dataset / "manifest.json"
    raw = json.loads(mf.read_text())
    raw["format_version"] = 99
    mf.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="format version 99"):
        read_manifest(ids_dataset)


def test_unknown_and_empty_split(tmp_path: Path, make_ids) -> None:
    path = make_ids(tmp_path / "d", 5)
    with pytest.raises(DataError, match="no split 'dev'"):
        ShardedDataset(path, "dev")
    mf = path / "manifest.json"
    raw = json.loads(mf.read_text())
    raw["splits"]["dev"] = {"records": 0, "bytes": 0, "shards": []}
    mf.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"'dev' .* is empty"):
        ShardedDataset(path, "dev")


def test_corrupted_record_names_shard_and_record(ids_dataset: Path) -> None:
    shard = ids_dataset / "train-00002.rec"
    ds = ShardedDataset(ids_dataset, "train")
    k0 = int(ds.reader.offsets[2])
    entry = ds.reader.shard(2).index[3]
    with open(shard, "r+b") as fh:
        fh.seek(int(entry["offset"]) + int(entry["length"]) - 2)
        fh.write(b"\xff\xfe")
    ds = ShardedDataset(ids_dataset, "train")
    with pytest.raises(DataError, match=r"Record 3 of shard .*train-00002\.rec is corrupted"):
        ds[k0 + 3]
    assert ds[k0 + 2]["id"] == k0 + 2  # neighbours still read
    with pytest.raises(DataError, match=r"train-00002\.rec"):
        ds.verify()


def test_truncated_shard_names_shard(ids_dataset: Path) -> None:
    shard = ids_dataset / "train-00001.rec"
    os.truncate(shard, shard.stat().st_size - 10)
    ds = ShardedDataset(ids_dataset, "train")
    last = read_manifest(ids_dataset).splits["train"].shards[1].records - 1
    with pytest.raises(DataError, match=r"train-00001\.rec is \d+ bytes .* truncated") as e:
        ds[int(ds.reader.offsets[1])]
    assert f"Records {last}..{last} of this shard are cut off" in str(e.value)
    assert ds[0]["id"] == 0  # other shards still read


def test_shard_from_another_dataset(tmp_path: Path, make_ids) -> None:
    a = make_ids(tmp_path / "a", 50, shard_bytes=1 << 20)
    b = make_ids(tmp_path / "b", 50, shard_bytes=1 << 20)
    for suffix in (".rec", ".idx"):
        (a / f"train-00000{suffix}").write_bytes((b / f"train-00000{suffix}").read_bytes())
    with pytest.raises(DataError, match="checksum mismatch"):
        ShardedDataset(a, "train")[0]
    # Same index, other data file: caught by the data set id in the shard header.
    make_ids(tmp_path / "c", 50, shard_bytes=1 << 20)
    (tmp_path / "c" / "train-00000.rec").write_bytes((b / "train-00000.rec").read_bytes())
    with pytest.raises(DataError, match="belongs to data set"):
        ShardedDataset(tmp_path / "c", "train")[0]
