"""torchsuite.core.data: splits, indexed shards, an exactly-once resumable stream, bucketing.

The pieces, each usable on its own for your own data sets:

* :mod:`.split` — :class:`SplitSpec`, :func:`assign_split` (stable blake2b hash of
  ``(salt, group key)``), :func:`check_splits` / :func:`check_dataset` (leak finder);
* :mod:`.shards` — :class:`DatasetWriter` (atomic, indexed shards + ``manifest.json``),
  :class:`ShardedDataset` (map-style, ``ds[i]`` without scanning), :func:`read_manifest`;
* :mod:`.stream` — :class:`ShardStream` (``IterableDataset``: exactly once per epoch over
  ranks x workers, deterministic order, ``state_dict``/``load_state_dict``/``set_epoch``)
  and :class:`StreamLoader` (a ``DataLoader`` that keeps that state exact with workers);
* :mod:`.batching` — :class:`TokenBudgetBatcher`, :class:`TokenBudgetBatchSampler`,
  :func:`pad_collate`, :func:`padding_ratio`;
* :mod:`.preprocess` — feature statistics saved with the manifest, :class:`Normalize` /
  PCA modules for the model input, class balancing (``ShardStream(sampling=...)``, loss
  weights) and cleaning helpers (import from ``torchsuite.core.data.preprocess``).

End to end::

    import torch
    from torchsuite.core.data import (DatasetWriter, ShardStream, SplitSpec, StreamLoader,
                                      pad_collate)

    spec = SplitSpec(salt="my-corpus-v1", ratios={"train": .9, "dev": .05, "test": .05})
    with DatasetWriter("data/corpus", spec=spec) as w:
        for doc_id, ids in documents():                  # your raw data
            w.add({"ids": torch.tensor(ids)}, group=doc_id)

    stream = ShardStream("data/corpus", "train", seed=0)
    loader = StreamLoader(stream, batch_size=16, num_workers=2,
                          collate_fn=lambda rs: pad_collate([r["ids"] for r in rs]))
    for padded, mask in loader:
        ...
"""

from . import preprocess
from ._manifest import FORMAT_VERSION
from .batching import (
    TokenBudgetBatcher,
    TokenBudgetBatchSampler,
    pad_collate,
    padding_ratio,
    token_budget_batches,
)
from .shards import DatasetWriter, Manifest, ShardedDataset, ShardInfo, SplitInfo, read_manifest
from .split import (
    SPLIT_NAMES,
    SplitReport,
    SplitSpec,
    assign_split,
    check_dataset,
    check_splits,
    group_hash,
)
from .stream import ShardStream, StreamLoader, rank_and_world

__all__ = [
    "FORMAT_VERSION",
    "SPLIT_NAMES",
    "DatasetWriter",
    "Manifest",
    "ShardInfo",
    "ShardStream",
    "ShardedDataset",
    "SplitInfo",
    "SplitReport",
    "SplitSpec",
    "StreamLoader",
    "TokenBudgetBatchSampler",
    "TokenBudgetBatcher",
    "assign_split",
    "check_dataset",
    "check_splits",
    "group_hash",
    "pad_collate",
    "padding_ratio",
    "preprocess",
    "rank_and_world",
    "read_manifest",
    "token_budget_batches",
]
