"""Data-parallel training on a real gloo process group (two CPU processes): averaged gradients
equal the mean of each image's own gradients, and ranks start from the same weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pathstream.services.escnn.model import build_escnn
from pathstream.services.escnn.streaming import StreamingESCNN
from pathstream.services.escnn.training.distributed import DistributedContext, shard


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (160, 192, 3), dtype=np.uint8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        context = DistributedContext(rank=rank, world_size=2, local_rank=rank)
        torch.manual_seed(100 + rank)  # different initial weights on purpose
        model = build_escnn("compact16")
        context.broadcast_parameters(model)
        engine = StreamingESCNN(model, tile_size=256, device="cpu")
        engine.train_step(_image(rank), float(rank))
        params = [p for p in model.parameters() if p.requires_grad]
        context.average_gradients(params)
        torch.save(
            {
                "weights": {k: v.clone() for k, v in model.state_dict().items()},
                "grads": [p.grad.clone() for p in params],  # type: ignore[union-attr]
                "gathered": context.gather(rank * 10),
                "any": context.any(rank == 1),
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_ranks_average_exactly_what_one_process_would(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    assert ranks[0]["gathered"] == [0, 10] and ranks[0]["any"] and ranks[1]["any"]

    torch.manual_seed(100)  # rank 0's weights, which the broadcast gave both ranks
    reference = build_escnn("compact16")
    engine = StreamingESCNN(reference, tile_size=256, device="cpu")
    params = [p for p in reference.parameters() if p.requires_grad]
    per_image = []
    for rank in (0, 1):
        for p in params:
            p.grad = None
        engine.train_step(_image(rank), float(rank))
        per_image.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params])
    for index, (a, b) in enumerate(zip(*per_image, strict=True)):
        expected = (a + b) / 2
        for rank in (0, 1):
            assert torch.allclose(ranks[rank]["grads"][index], expected, rtol=1e-5, atol=1e-7), index


def test_shard_gives_every_rank_the_same_number_of_images() -> None:
    order = [4, 2, 0, 1, 3]
    parts = [shard(5, order, DistributedContext(rank, 2, rank)) for rank in (0, 1)]
    assert parts == [[4, 0, 3], [2, 1, 4]]
    assert shard(5, order, None) == order
