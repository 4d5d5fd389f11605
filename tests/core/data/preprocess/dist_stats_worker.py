"""Run under torchrun by test_stats_distributed.py: each rank reduces its share, then all_reduce.

Usage: torchrun --nproc_per_node N dist_stats_worker.py DATA_DIR OUT_JSON
"""

from __future__ import annotations

import json
import sys

import torch.distributed as dist
from torchsuite.core.data import ShardStream, StreamLoader
from torchsuite.core.data.preprocess import FeatureStats


def main() -> None:
    data_dir, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    stream = ShardStream(data_dir, "train", drop_last_to_equalize=False)
    stats = FeatureStats(bins=8, hist_range=(-4.0, 4.0))
    for batch in StreamLoader(stream, batch_size=16, num_workers=2):  # 2 workers per rank
        stats.update(batch["x"])
    local_rows = stats.rows
    stats.all_reduce()
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {"local_rows": local_rows, "stats": stats.to_dict()})
    if dist.get_rank() == 0:
        with open(out, "w") as fh:
            json.dump(gathered, fh)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
