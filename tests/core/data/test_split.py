"""Group-aware hash splits and the leak checker."""

from __future__ import annotations

from pathlib import Path

import pytest
from torchsuite.core.data import (
    DatasetWriter,
    SplitSpec,
    assign_split,
    check_dataset,
    check_splits,
    group_hash,
)
from torchsuite.core.errors import ConfigError, DataError


def test_group_hash_is_pinned() -> None:
    # blake2b-64 of b"salt\xffkey", little-endian: a change here changes every user's splits.
    import hashlib

    expect = int.from_bytes(hashlib.blake2b(b"s\xffk", digest_size=8).digest(), "little")
    assert group_hash("k", "s") == expect
    assert group_hash("ab", "c") != group_hash("a", "bc")


def test_ratios_are_respected_roughly() -> None:
    spec = SplitSpec(salt="x", ratios={"train": 0.8, "dev": 0.1, "test": 0.1})
    counts: dict[str, int] = {}
    for i in range(20000):
        s = assign_split(f"group-{i}", spec)
        counts[s] = counts.get(s, 0) + 1
    assert abs(counts["train"] / 20000 - 0.8) < 0.02
    assert abs(counts["dev"] / 20000 - 0.1) < 0.01
    assert "target" not in counts


def test_adding_ten_percent_moves_nothing() -> None:
    spec = SplitSpec(salt="x")
    before = {f"g{i}": assign_split(f"g{i}", spec) for i in range(5000)}
    # "Re-run" with 10% more groups interleaved: existing assignments must not change.
    after = {f"g{i}": assign_split(f"g{i}", spec) for i in range(5500)}
    moved = [k for k in before if before[k] != after[k]]
    assert moved == []


def test_target_predicate_and_ratio() -> None:
    spec = SplitSpec(target=lambda g, meta: meta == "chopin")
    assert assign_split("a", spec, "chopin") == "target"
    assert assign_split("a", spec, "bach") != "target"
    spec2 = SplitSpec(target_ratio=0.2)
    n = sum(assign_split(f"g{i}", spec2) == "target" for i in range(5000))
    assert 0.17 < n / 5000 < 0.23


def test_bad_specs_refused() -> None:
    with pytest.raises(ConfigError, match="sum to 1"):
        SplitSpec(ratios={"train": 0.5})
    with pytest.raises(ConfigError, match="unknown split"):
        SplitSpec(ratios={"train": 0.5, "valid": 0.5})


def test_checker_finds_planted_group_and_duplicate() -> None:
    recs = [("train", "song1", b"a"), ("train", "song2", b"b"), ("test", "song3", b"c")]
    assert check_splits(recs).ok
    planted = [*recs, ("dev", "song1", b"d"), ("test", "song9", b"b")]
    report = check_splits(planted)
    assert report.group_overlaps == {"song1": ["train", "dev"]}
    assert list(report.duplicate_overlaps.values()) == [{"train": "song2", "test": "song9"}]
    with pytest.raises(DataError, match="song1"):
        report.raise_if_bad()


def test_check_dataset_on_disk(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "ok", salt="s") as w:
        w.add(b"one", "train", group="g1")
        w.add(b"two", "dev", group="g2")
    assert check_dataset(tmp_path / "ok").ok
    with DatasetWriter(tmp_path / "bad", salt="s") as w:
        w.add(b"one", "train", group="g1")
        w.add(b"two", "dev", group="g1")  # group straddles
        w.add(b"one", "test", group="g3")  # exact duplicate across splits
    report = check_dataset(tmp_path / "bad")
    assert len(report.group_overlaps) == 1 and len(report.duplicate_overlaps) == 1


def test_predicate_leaving_target_empty_is_an_error(tmp_path: Path) -> None:
    spec = SplitSpec(target=lambda g, meta: meta == "nobody")
    with pytest.raises(DataError, match="target"), DatasetWriter(tmp_path / "d", spec=spec) as w:
        for i in range(200):
            w.add(b"x%d" % i, group=f"g{i}", meta="somebody")
    assert not (tmp_path / "d" / "manifest.json").exists()


def _split_of_each_record(path: Path) -> dict[int, str]:
    from torchsuite.core.data import ShardedDataset, read_manifest

    out: dict[int, str] = {}
    for split in read_manifest(path).splits:
        for rec in ShardedDataset(path, split):
            out[rec["id"]] = split
    return out


def test_rewriting_with_ten_percent_more_records_moves_none_on_disk(tmp_path: Path) -> None:
    spec = SplitSpec(salt="grow", ratios={"train": 0.7, "dev": 0.15, "test": 0.15},
                     target_ratio=0.1)
    # Groups of 1-3 records; the grown data set interleaves the new records.
    def write(path: Path, n: int) -> None:
        with DatasetWriter(path, spec=spec, shard_bytes=2048) as w:
            for i in range(n):
                w.add({"id": i}, group=f"doc{i // 3 if i < 1500 else i}")

    write(tmp_path / "v1", 1500)
    write(tmp_path / "v2", 1650)
    before, after = _split_of_each_record(tmp_path / "v1"), _split_of_each_record(tmp_path / "v2")
    assert len(before) == 1500 and len(after) == 1650
    assert set(before.values()) == {"train", "dev", "test", "target"}
    assert [i for i in before if after[i] != before[i]] == []
    assert check_dataset(tmp_path / "v2").ok
