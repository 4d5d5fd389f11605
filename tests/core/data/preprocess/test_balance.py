"""Class balancing in the stream (deterministic, resumable) and loss re-weighting."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchsuite.core.data import DatasetWriter, ShardStream, StreamLoader
from torchsuite.core.data.preprocess import (
    SamplingPlan,
    bucketize,
    class_loss_weights,
    class_mix,
    read_labels,
)
from torchsuite.core.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

MIX = {"straight": 0.80, "turn": 0.15, "lane_change": 0.05}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1000 records, classes 80 / 15 / 5 %, in ~30 shards."""
    path = tmp_path_factory.mktemp("bal") / "d"
    rng = np.random.default_rng(0)
    labels = rng.choice(list(MIX), size=1000, p=list(MIX.values()))
    with DatasetWriter(path, shard_bytes=1024) as w:
        for i, lab in enumerate(labels):
            w.add({"id": i, "maneuver": str(lab)}, "train")
    return path


def served(stream: ShardStream) -> list[tuple[int, str]]:
    return [(r["id"], r["maneuver"]) for r in stream]


def test_balanced_sampling_reaches_the_requested_mix(labelled: Path) -> None:
    labels = read_labels(labelled, "train", key="maneuver")
    plan = SamplingPlan(labels, "balanced", epoch_size=1500)
    before = class_mix(labels)
    assert before["lane_change"] < 0.08 and before["straight"] > 0.75
    stream = ShardStream(labelled, "train", sampling=plan, shuffle_buffer=128, seed=3)
    got = served(stream)
    assert len(got) == 1500 == len(stream)
    after = class_mix([lab for _, lab in got])
    for c in MIX:
        assert after[c] == pytest.approx(1 / 3, abs=1 / 1500 + 1e-9), after
    # The rare class is repeated as evenly as possible: every record once before any twice.
    per_rec = Counter(i for i, lab in got if lab == "lane_change")
    assert set(per_rec) == set(np.flatnonzero(labels == "lane_change").tolist())
    assert max(per_rec.values()) - min(per_rec.values()) <= 1
    # The common class is sub-sampled without repeats.
    assert max(Counter(i for i, lab in got if lab == "straight").values()) == 1
    # Every window of the shuffle buffer is already in the target mix (no long runs).
    for lo in range(0, 1500 - 128, 128):
        window = Counter(lab for _, lab in got[lo:lo + 128])
        assert min(window.values()) >= 42, window
    text = str(plan.report())
    assert "before" in text and "lane_change" in text


def test_custom_mix_and_power(labelled: Path) -> None:
    labels = read_labels(labelled, "train", key="maneuver")
    want = {"straight": 0.5, "turn": 0.3, "lane_change": 0.2}
    plan = SamplingPlan(labels, want)
    got = class_mix([lab for _, lab in served(ShardStream(labelled, "train", sampling=plan))])
    for c, share in want.items():
        assert got[c] == pytest.approx(share, abs=0.002)
    sqrt = SamplingPlan(labels, "balanced", power=0.5).report()
    assert sqrt.before[0] < sqrt.after[0] < 1 / 3  # lane_change: raised, not to uniform


def test_deterministic_resumable_and_split_over_ranks_and_workers(labelled: Path) -> None:
    plan = SamplingPlan(read_labels(labelled, "train", key="maneuver"), "balanced")

    def make(**kw) -> ShardStream:
        return ShardStream(labelled, "train", sampling=plan, shuffle_buffer=64, seed=1, **kw)

    full = served(make())
    assert full == served(make())
    assert full != served(make(epoch=1))
    # Ranks partition the positions.
    ranks = [served(make(rank=r, world_size=3, drop_last_to_equalize=False)) for r in range(3)]
    assert sorted(x for r in ranks for x in r) == sorted(full)
    # Resume mid-epoch with another worker count: the same continuation.
    first = StreamLoader(make(), batch_size=10, num_workers=0)
    head = []
    for n, batch in enumerate(first, start=1):
        head += batch["id"].tolist()
        if n == 23:
            state = first.state_dict()
            break
    resumed = StreamLoader(make(), batch_size=10, num_workers=2)
    resumed.load_state_dict(state)
    tail = [i for b in resumed for i in b["id"].tolist()]
    assert head + tail == [i for i, _ in full]
    # A state from the unweighted stream cannot silently resume a weighted one.
    with pytest.raises(DataError, match="sampling"):
        make().load_state_dict(ShardStream(labelled, "train", seed=1,
                                           shuffle_buffer=64).state_dict())


def test_plan_for_another_split_size_is_refused(labelled: Path) -> None:
    with pytest.raises(DataError, match="999 labels"):
        ShardStream(labelled, "train", sampling=SamplingPlan(["a", "b"] * 499 + ["a"]))


def test_loss_weights_give_each_class_its_target_share() -> None:
    y = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    w, report = class_loss_weights(y.numpy(), classes=range(3))
    p = torch.tensor([0.80, 0.15, 0.05])
    assert float((p * w).sum()) == pytest.approx(1.0)  # the loss keeps its scale
    assert report.after == pytest.approx([1 / 3] * 3) and report.before == pytest.approx(p)
    logits = torch.zeros(100, 3)  # equal per-sample loss: contributions follow the weights
    per = F.cross_entropy(logits, y, weight=w, reduction="none")
    share = torch.stack([per[y == c].sum() for c in range(3)]) / per.sum()
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=1e-5)
    w4, _ = class_loss_weights([0, 0, 1], classes=range(4))  # absent classes keep weight 1
    assert w4.shape == (4,) and float(w4[3]) == 1.0


def test_bucket_balancing_by_length() -> None:
    lengths = np.r_[np.full(900, 10), np.full(100, 200)]
    buckets = bucketize(lengths, [50, 150])
    assert Counter(buckets.tolist()) == {0: 900, 2: 100}
    plan = SamplingPlan(buckets, {0: 0.5, 2: 0.5})
    assert plan.classes == [0, 2]
    assert plan.expected_repeats() == pytest.approx({0: 1000 * 0.5 / 900, 2: 5.0})


def test_labels_saved_with_the_manifest(labelled: Path, tmp_path: Path) -> None:
    import shutil

    from torchsuite.core.data.preprocess import load_labels, save_labels

    path = tmp_path / "copy"
    shutil.copytree(labelled, path)
    labels = read_labels(path, "train", key="maneuver")
    save_labels(path, "train", "maneuver", labels)
    got = load_labels(path, "train", "maneuver")
    assert got.tolist() == labels.tolist()
    with pytest.raises(DataError, match="has 1000 records"):
        save_labels(path, "train", "short", labels[:10])
    with pytest.raises(DataError, match=r"no labels called 'labels/train/other'"):
        load_labels(path, "train", "other")
    f = path / "labels-train-maneuver.npy"
    f.write_bytes(f.read_bytes()[:-4] + b"xxxx")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_labels(path, "train", "maneuver")
