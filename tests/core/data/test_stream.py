"""ShardStream: exactly once, determinism, resume (also with other worker counts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from torchsuite.core.data import ShardStream, StreamLoader
from torchsuite.core.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def ids_of(batches: list) -> list[int]:
    return [int(i) for b in batches for i in b["id"]]


def loader(path: Path, workers: int, bs: int = 8, **kw) -> StreamLoader:
    stream = ShardStream(path, "train", shuffle_buffer=128, block_size=8, **kw)
    return StreamLoader(stream, batch_size=bs, num_workers=workers)


def test_epoch_is_a_permutation_and_epochs_differ(ids_dataset: Path) -> None:
    s = ShardStream(ids_dataset, "train", shuffle_buffer=128, block_size=8)
    e0 = [r["id"] for r in s]
    e1 = [r["id"] for r in s]  # a finished pass moves to the next epoch
    assert sorted(e0) == list(range(1000)) and sorted(e1) == list(range(1000))
    assert e0 != e1 and e0 != sorted(e0)
    assert s.epoch == 1


def test_order_is_pure_function_of_seed_and_epoch(ids_dataset: Path) -> None:
    def run(seed: int, epoch: int) -> list[int]:
        s = ShardStream(ids_dataset, "train", seed=seed, epoch=epoch)
        return [r["id"] for r in s]

    assert run(0, 3) == run(0, 3)
    assert run(0, 3) != run(1, 3)
    assert run(0, 3) != run(0, 4)


def test_one_rank_three_workers_exactly_once(ids_dataset: Path) -> None:
    got = ids_of(list(loader(ids_dataset, 3)))
    assert sorted(got) == list(range(1000))


def test_order_independent_of_worker_count(ids_dataset: Path) -> None:
    a = ids_of(list(loader(ids_dataset, 0)))
    b = ids_of(list(loader(ids_dataset, 3)))
    assert a == b


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_partition_the_epoch(ids_dataset: Path, world: int) -> None:
    per_rank = []
    for rank in range(world):
        s = ShardStream(ids_dataset, "train", rank=rank, world_size=world,
                        drop_last_to_equalize=False)
        per_rank.append([r["id"] for r in s])
    union = [i for ids in per_rank for i in ids]
    assert sorted(union) == list(range(1000))
    # Training mode: equal counts, the few leftovers skipped, nothing repeated.
    eq = [[r["id"] for r in ShardStream(ids_dataset, "train", rank=r, world_size=world)]
          for r in range(world)]
    assert len({len(x) for x in eq}) == 1 and len(eq[0]) == 1000 // world
    flat = [i for x in eq for i in x]
    assert len(set(flat)) == len(flat)


def test_resume_mid_epoch_with_different_worker_count(ids_dataset: Path) -> None:
    full = ids_of(list(loader(ids_dataset, 2)))
    first = loader(ids_dataset, 2)
    seen: list = []
    for n, b in enumerate(first, start=1):
        seen.append(b)
        if n == 37:
            state = first.state_dict()
            break
    assert state["consumed"] == 37 * 8
    resumed = loader(ids_dataset, 3)
    resumed.load_state_dict(state)
    resumed.set_epoch(state["epoch"])  # a no-op for the current epoch
    rest = list(resumed)
    assert ids_of(seen) + ids_of(rest) == full
    # The next pass is the next epoch from its beginning.
    nxt = ids_of(list(resumed))
    assert sorted(nxt) == list(range(1000)) and nxt != full


def test_resume_plain_iteration_and_dataloader_no_workers(ids_dataset: Path) -> None:
    s = ShardStream(ids_dataset, "train", seed=5)
    full = [r["id"] for r in ShardStream(ids_dataset, "train", seed=5)]
    it = iter(s)
    head = [next(it)["id"] for _ in range(123)]
    state = s.state_dict()
    s2 = ShardStream(ids_dataset, "train", seed=5)
    s2.load_state_dict(state)
    dl = DataLoader(s2, batch_size=10)
    tail = [int(i) for b in dl for i in b["id"]]
    assert head + tail == full


def test_state_dict_survives_weights_only_load(ids_dataset: Path, tmp_path: Path) -> None:
    s = ShardStream(ids_dataset, "train")
    torch.save({"stream": s.state_dict()}, tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)["stream"]
    s.load_state_dict(state)


def test_state_from_other_settings_refused(ids_dataset: Path) -> None:
    state = ShardStream(ids_dataset, "train", seed=1).state_dict()
    with pytest.raises(DataError, match="seed"):
        ShardStream(ids_dataset, "train", seed=2).load_state_dict(state)


def test_len_and_equal_batches(ids_dataset: Path) -> None:
    lens = [len(StreamLoader(ShardStream(ids_dataset, "train", rank=r, world_size=3),
                             batch_size=16)) for r in range(3)]
    assert lens == [21, 21, 21]  # 333 records each


def test_every_rank_runs_the_same_number_of_batches(tmp_path: Path, make_ids) -> None:
    path = make_ids(tmp_path / "d", 211, shard_bytes=1024)  # prime: no world divides it
    for world in (2, 3, 4):
        counts = []
        for rank in range(world):
            ld = StreamLoader(ShardStream(path, "train", rank=rank, world_size=world),
                              batch_size=8, num_workers=0)
            batches = list(ld)
            counts.append(len(batches))
            assert len(batches) == len(ld)
        assert len(set(counts)) == 1, (world, counts)


def test_resume_with_a_different_world_size(ids_dataset: Path) -> None:
    def rank_stream(rank: int, world: int) -> ShardStream:
        return ShardStream(ids_dataset, "train", rank=rank, world_size=world,
                           drop_last_to_equalize=False, shuffle_buffer=128, block_size=8)

    head: list[int] = []
    states = []
    for rank in range(2):  # two ranks each take 100 records, then the job stops
        s = rank_stream(rank, 2)
        it = iter(s)
        head += [next(it)["id"] for _ in range(100)]
        states.append(s.state_dict())
    assert states[0]["consumed"] == states[1]["consumed"] == 200
    tail: list[int] = []
    for rank in range(3):  # ... and resumes on three
        s = rank_stream(rank, 3)
        s.load_state_dict(states[0])
        tail += [r["id"] for r in s]
    assert sorted(head + tail) == list(range(1000))
