"""Run under torchrun by test_stream_distributed.py: each rank streams with 2 workers.

Usage: torchrun --nproc_per_node N dist_stream_worker.py DATA_DIR OUT_JSON
"""

from __future__ import annotations

import json
import sys

import torch.distributed as dist
from torchsuite.core.data import ShardStream, StreamLoader


def main() -> None:
    data_dir, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    result = {}
    for drop in (False, True):
        stream = ShardStream(data_dir, "train", drop_last_to_equalize=drop,
                             shuffle_buffer=64, block_size=4)
        loader = StreamLoader(stream, batch_size=4, num_workers=2)
        batches = [[int(i) for i in b["id"]] for b in loader]
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, {"batches": batches, "len": len(loader)})
        result["drop" if drop else "full"] = gathered
    if dist.get_rank() == 0:
        with open(out, "w") as fh:
            json.dump(result, fh)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
