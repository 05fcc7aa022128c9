"""Data-parallel ESCNN training across processes (one per GPU), launched by `torchrun`.

Huang et al. (2022) dispatched one image per GPU per step and averaged the gradients (Horovod). This is the
same computation as `torch.nn.parallel.DistributedDataParallel`, done by hand: DDP's reducer hooks
fire when autograd accumulates into `.grad` during a module forward/backward, but the streaming
engine accumulates gradients tile by tile outside any module call (`pathstream.services.escnn.streaming`), so
the gradients are averaged with one `all_reduce` per optimiser step instead. Every rank starts from
the same weights (broadcast from rank 0) and applies the same averaged step, so they stay equal.

Launch (one machine, 4 GPUs):

    torchrun --standalone --nproc_per_node=4 -m pathstream.services.cli train escnn --train DATA --out OUT

`torchrun` sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the group; rank 0 writes checkpoints and logs metrics."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        """cuda:LOCAL_RANK when CUDA is present, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank."""
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """Replace each parameter's `.grad` by its mean over the ranks (a missing grad counts as 0)."""
        grads = []
        for param in parameters:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            grads.append(param.grad)
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def barrier(self) -> None:
        """Wait until every rank is here."""
        dist.barrier()

    def gather(self, item: Any) -> list[Any]:
        """Every rank's `item` (picklable), in rank order."""
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, item)
        return gathered

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any (e.g. one rank was interrupted)."""
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int64)
        if dist.get_backend() == "nccl":
            tensor = tensor.to(self.device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())


def from_environment() -> DistributedContext | None:
    """Join the process group `torchrun` describes (NCCL on CUDA, else gloo); None when the
    environment names no group of more than one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    context = DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if torch.cuda.is_available():
        torch.cuda.set_device(context.local_rank)
    return context


def shard(count: int, order: list[int], context: DistributedContext | None) -> list[int]:
    """This rank's share of an epoch's `order` (indices into `count` items): every rank gets the
    same number, the last ones wrapping around to the start, so that all ranks step together."""
    if context is None or context.world_size == 1:
        return list(order)
    per_rank = -(-count // context.world_size)
    padded = list(order) + list(order[: per_rank * context.world_size - count])
    return padded[context.rank :: context.world_size]
